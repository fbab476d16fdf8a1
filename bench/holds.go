package bench

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// runHolds measures durable holds per second over HTTP against the ceiling
// of the same machine: a fasthttp endpoint that does nothing, loaded the same
// way in the same run. The ratio is what the figure means; the absolute
// numbers depend on the machine and on sharing it with the load generator.
func runHolds(o Options, c *client) error {
	fmt.Fprintf(o.Out, "holds mode: %d connections, %s per phase\n", o.Conns, o.Duration)
	ceiling, err := noopCeiling(o, "POST")
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "  no-op fasthttp POST ceiling: %.0f requests/s\n", ceiling)

	sale, err := createHoldsSale(c)
	if err != nil {
		return err
	}
	r := holdPhase(o, []*client{c}, sale, nil)
	fmt.Fprintf(o.Out, "  durable holds over HTTP:      %.0f holds/s (%d holds, %d failures)\n", r.rate, r.holds, r.failures)
	fmt.Fprintf(o.Out, "  hold latency: p50 %s  p90 %s  p99 %s  max %s\n", r.q.P50, r.q.P90, r.q.P99, r.q.Max)
	fmt.Fprintf(o.Out, "  holds/s as a share of the no-op ceiling: %.0f%%\n", 100*r.rate/ceiling)
	if r.firstErr != "" {
		fmt.Fprintf(o.Out, "  first failure: %s\n", r.firstErr)
	}
	return nil
}

// createHoldsSale creates a sale of 1,000,000 general-admission seats that
// admits everyone at once.
func createHoldsSale(c *client) (string, error) {
	sale := fmt.Sprintf("bench-holds-%d", time.Now().UnixNano())
	def := map[string]any{
		"id": sale, "max_per_buyer": 100, "hold_ttl_s": 3600,
		"waiting_room": map[string]any{"active_limit": 1_000_000, "access_ttl_s": 3600},
		"zones":        []any{map[string]any{"id": "ga", "capacity": 1_000_000, "price_cents": 1000}},
	}
	return sale, createSales(c, def)
}

// holdResult is one holds phase.
type holdResult struct {
	rate            float64
	holds, failures int64
	q               quantiles
	firstErr        string
}

// holdPhase has o.Conns buyers hold one seat after another for o.Duration
// (after a warm-up), each through one of cs in turn. Buyers join the line
// (admitted at once) and hold up to max_per_buyer seats each. If during is
// set, it runs beside the measured phase, and the buyers go on holding
// until it is done too (a failover it waits for may outlast the phase);
// holds after the phase's end are not counted in its rate.
func holdPhase(o Options, cs []*client, sale string, during func(acked func() time.Time)) holdResult {
	var holds, failures atomic.Int64
	var firstErr atomic.Value
	var lastAck atomic.Int64 // unix ns of the last acknowledged hold's send
	measureFrom := time.Now().Add(warmup)
	deadline := measureFrom.Add(o.Duration)
	var duringDone atomic.Bool
	duringDone.Store(during == nil)
	going := func() bool { return time.Now().Before(deadline) || !duringDone.Load() }
	var wg sync.WaitGroup
	for w := 0; w < o.Conns; w++ {
		c := cs[w%len(cs)]
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			token, left, n := "", 0, 0
			for going() {
				if left == 0 {
					var t struct {
						State       string `json:"state"`
						AccessToken string `json:"access_token"`
					}
					st, err := c.do("join", "POST", "/v1/sales/"+sale+"/queue", "", "", map[string]string{"buyer": fmt.Sprintf("w%d-%d", w, n)}, &t)
					n++
					if err != nil || st != 200 || t.State != "admitted" {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("join: status %d state %q err %v", st, t.State, err))
						time.Sleep(10 * time.Millisecond)
						continue
					}
					token, left = t.AccessToken, 100
				}
				sent := time.Now()
				st, err := c.do("hold", "POST", "/v1/sales/"+sale+"/holds", token, "", map[string]any{"zone": "ga", "quantity": 1}, nil)
				if err != nil || st != 201 {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("hold: status %d err %v", st, err))
					left = 0
					time.Sleep(10 * time.Millisecond)
					continue
				}
				for {
					v := lastAck.Load()
					if sent.UnixNano() <= v || lastAck.CompareAndSwap(v, sent.UnixNano()) {
						break
					}
				}
				if now := time.Now(); now.After(measureFrom) && now.Before(deadline) {
					holds.Add(1)
				}
				left--
			}
		}(w)
	}
	if during != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer duringDone.Store(true)
			during(func() time.Time { return time.Unix(0, lastAck.Load()) })
		}()
	}
	progress(o, deadline, func() string { return fmt.Sprintf("%d holds", holds.Load()) })
	wg.Wait()
	r := holdResult{rate: float64(holds.Load()) / o.Duration.Seconds(), holds: holds.Load(), failures: failures.Load(), q: cs[0].lat.quantiles("hold")}
	if v := firstErr.Load(); v != nil {
		r.firstErr = v.(string)
	}
	return r
}

// noopCeiling loads a do-nothing fasthttp server on loopback with method
// requests the way the measured phase loads onsale.
func noopCeiling(o Options, method string) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString("{}")
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	c := newClient(ln.Addr().String(), "", o.Conns)
	var n atomic.Int64
	measureFrom := time.Now().Add(warmup)
	deadline := measureFrom.Add(o.Duration)
	var wg sync.WaitGroup
	for w := 0; w < o.Conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var body any
				if method == "POST" {
					body = map[string]any{"zone": "ga", "quantity": 1}
				}
				if st, err := c.do("noop", method, "/noop", "", "", body, nil); err == nil && st == 200 && time.Now().After(measureFrom) {
					n.Add(1)
				}
			}
		}()
	}
	progress(o, deadline, func() string { return fmt.Sprintf("%d no-op requests", n.Load()) })
	wg.Wait()
	return float64(n.Load()) / o.Duration.Seconds(), nil
}

// warmup runs before each measured phase, so that connections are open and
// the runtime is warm when counting starts.
const warmup = time.Second

// progress prints a line a second until deadline.
func progress(o Options, deadline time.Time, line func() string) {
	for time.Now().Before(deadline) {
		time.Sleep(min(time.Second, time.Until(deadline)+time.Millisecond))
		fmt.Fprintf(o.Out, "    … %s\n", line())
	}
}
