package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// client sends JSON requests to one server over keep-alive connections and
// records each endpoint's latency.
type client struct {
	hc    *fasthttp.HostClient
	admin string
	lat   *latencies
	codes *counts
	// conns has a token per connection: a request takes one before its
	// clock starts.
	conns chan struct{}
	// retryAfter is a hint only (shared by all buyers): the last Retry-After
	// the server sent with a 429 or 503.
	retryAfter atomic.Int64 // nanoseconds
}

func newClient(addr, admin string, conns int) *client {
	return &client{
		hc: &fasthttp.HostClient{
			// Idle connections are dropped well before the server's own
			// idle timeout (60 s), or a request can race its close.
			Addr: addr, MaxConns: conns, MaxIdleConnDuration: 20 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 10 * time.Second,
			MaxConnWaitTimeout: time.Minute,
		},
		admin: admin, lat: newLatencies(), codes: &counts{}, conns: make(chan struct{}, conns),
	}
}

// sibling is a client of the same server with connections of its own,
// which reports into the same latencies and answer counts.
func (c *client) sibling(conns int) *client {
	s := newClient(c.hc.Addr, c.admin, conns)
	s.lat, s.codes = c.lat, c.codes
	return s
}

// do sends a request and decodes the answer into out (when non-nil). It
// returns the status; transport failures are errors.
func (c *client) do(endpoint, method, path, token, idem string, body, out any) (int, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://" + c.hc.Addr + path)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	switch b := body.(type) {
	case nil:
	case []byte:
		req.Header.SetContentType("application/json")
		req.SetBody(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		req.Header.SetContentType("application/json")
		req.SetBody(j)
	}
	// The wait for a free connection is the load generator's own delay, not
	// the server's: it is left out of the latency.
	c.conns <- struct{}{}
	start := time.Now()
	err := c.hc.Do(req, resp)
	c.lat.add(endpoint, time.Since(start))
	<-c.conns
	if err != nil {
		c.codes.add(endpoint, "transport")
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	st := resp.StatusCode()
	if st >= 400 {
		c.codes.add(endpoint, strconv.Itoa(st))
	}
	if st == 429 || st == 503 {
		c.retryAfter.Store(int64(retryAfter(resp)))
	}
	if out != nil && len(resp.Body()) > 0 {
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return st, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return st, nil
}

// retryAfter reads Retry-After (whole seconds), at least a second.
func retryAfter(resp *fasthttp.Response) time.Duration {
	n, err := strconv.Atoi(string(resp.Header.Peek("Retry-After")))
	if err != nil || n < 1 {
		n = 1
	}
	return time.Duration(n) * time.Second
}

// counts counts answers by endpoint and status (or "transport").
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(endpoint, code string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int)
	}
	c.m[endpoint+" "+code]++
	c.mu.Unlock()
}

func (c *counts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// latencySamplesMax bounds the memory of one endpoint's samples; past it a
// reservoir keeps a uniform sample.
const latencySamplesMax = 200_000

type latencies struct {
	mu sync.Mutex
	m  map[string]*series
	// window holds each endpoint's latencies since the last takeWindow,
	// for the report's p99 over time; bounded by a second's requests.
	window map[string][]time.Duration
}

type series struct {
	n       int
	samples []time.Duration
}

func newLatencies() *latencies {
	return &latencies{m: make(map[string]*series), window: make(map[string][]time.Duration)}
}

// windowSamplesMax bounds one endpoint's window (a second at most).
const windowSamplesMax = 1 << 20

// takeWindow returns each endpoint's p99 since the last call, in ms.
func (l *latencies) takeWindow() map[string]float64 {
	l.mu.Lock()
	w := l.window
	l.window = make(map[string][]time.Duration, len(w))
	l.mu.Unlock()
	out := make(map[string]float64, len(w))
	for ep, v := range w {
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		out[ep] = float64(v[min(len(v)-1, len(v)*99/100)].Microseconds()) / 1000
	}
	return out
}

func (l *latencies) add(endpoint string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[endpoint]
	if s == nil {
		s = &series{}
		l.m[endpoint] = s
	}
	s.n++
	if w := l.window[endpoint]; len(w) < windowSamplesMax {
		l.window[endpoint] = append(w, d)
	}
	if len(s.samples) < latencySamplesMax {
		s.samples = append(s.samples, d)
	} else if i := rand.IntN(s.n); i < latencySamplesMax {
		s.samples[i] = d
	}
}

// quantiles are an endpoint's latency figures.
type quantiles struct {
	N                        int
	P50, P90, P99, P999, Max time.Duration
}

// quantiles returns the figures of an endpoint.
func (l *latencies) quantiles(endpoint string) quantiles {
	l.mu.Lock()
	s := l.m[endpoint]
	if s == nil || len(s.samples) == 0 {
		l.mu.Unlock()
		return quantiles{}
	}
	v := append([]time.Duration(nil), s.samples...)
	n := s.n
	l.mu.Unlock()
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	q := func(p float64) time.Duration { return v[min(len(v)-1, int(p*float64(len(v))))] }
	return quantiles{N: n, P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: v[len(v)-1]}
}

func (l *latencies) endpoints() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.m))
	for k := range l.m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// count is how many requests an endpoint has had.
func (l *latencies) count(endpoint string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.m[endpoint]; s != nil {
		return s.n
	}
	return 0
}
