package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// client sends JSON requests to one server over keep-alive connections and
// records each endpoint's latency.
type client struct {
	hc    *fasthttp.HostClient
	admin string
	lat   *latencies
}

func newClient(addr, admin string, conns int) *client {
	return &client{
		hc: &fasthttp.HostClient{
			Addr: addr, MaxConns: conns, MaxIdleConnDuration: time.Minute,
			ReadTimeout: 30 * time.Second, WriteTimeout: 10 * time.Second,
			MaxConnWaitTimeout: time.Minute,
		},
		admin: admin, lat: newLatencies(),
	}
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
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		req.Header.SetContentType("application/json")
		req.SetBody(b)
	}
	start := time.Now()
	err := c.hc.Do(req, resp)
	c.lat.add(endpoint, time.Since(start))
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil && len(resp.Body()) > 0 {
		if err := json.Unmarshal(resp.Body(), out); err != nil {
			return resp.StatusCode(), fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.StatusCode(), nil
}

// latencySamplesMax bounds the memory of one endpoint's samples; past it a
// reservoir keeps a uniform sample.
const latencySamplesMax = 200_000

type latencies struct {
	mu sync.Mutex
	m  map[string]*series
}

type series struct {
	n       int
	samples []time.Duration
}

func newLatencies() *latencies { return &latencies{m: make(map[string]*series)} }

func (l *latencies) add(endpoint string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[endpoint]
	if s == nil {
		s = &series{}
		l.m[endpoint] = s
	}
	s.n++
	if len(s.samples) < latencySamplesMax {
		s.samples = append(s.samples, d)
	} else if i := rand.IntN(s.n); i < latencySamplesMax {
		s.samples[i] = d
	}
}

// quantiles returns p50, p90, p99 and max of an endpoint.
func (l *latencies) quantiles(endpoint string) (n int, p50, p90, p99, mx time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.m[endpoint]
	if s == nil || len(s.samples) == 0 {
		return 0, 0, 0, 0, 0
	}
	v := append([]time.Duration(nil), s.samples...)
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	q := func(p float64) time.Duration { return v[min(len(v)-1, int(p*float64(len(v))))] }
	return s.n, q(0.50), q(0.90), q(0.99), v[len(v)-1]
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
