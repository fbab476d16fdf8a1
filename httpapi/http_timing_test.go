package httpapi

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Throughput over real HTTP: 256 keep-alive connections on 127.0.0.1, fsync
// on. Each benchmark reports requests per second and client-side p50/p99
// latency. Run: go test -run '^$' -bench . -benchtime 3s ./httpapi/

const benchConns = 256

// benchClient is a keep-alive fasthttp client with benchConns connections.
func benchClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                addr,
		MaxConns:            benchConns,
		MaxIdleConnDuration: time.Minute,
		ReadTimeout:         30 * time.Second,
		WriteTimeout:        30 * time.Second,
	}
}

// benchRequest is one request a worker sends: it fills req for request i.
type benchRequest func(req *fasthttp.Request, worker, i int)

// runLoad sends b.N requests from benchConns workers, worker w sending the
// requests i with i % benchConns == w, and reports rate and latency. Every
// answer must have status want.
func runLoad(b *testing.B, c *fasthttp.HostClient, want int, fill benchRequest) {
	b.Helper()
	lat := make([][]time.Duration, benchConns)
	var bad atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for w := range benchConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			mine := make([]time.Duration, 0, b.N/benchConns+1)
			for i := w; i < b.N; i += benchConns {
				req.Reset()
				fill(req, w, i)
				t0 := time.Now()
				err := c.Do(req, resp)
				mine = append(mine, time.Since(t0))
				if err != nil || resp.StatusCode() != want {
					if bad.Add(1) == 1 {
						firstBad.Store(fmt.Sprintf("%v %d %s", err, resp.StatusCode(), resp.Body()))
					}
				}
			}
			lat[w] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", n, b.N, firstBad.Load())
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}

// BenchmarkHTTPHolds: holds per second over HTTP, against a fasthttp no-op
// endpoint on the same machine as the ceiling of the transport alone.
func BenchmarkHTTPHolds(b *testing.B) {
	body := []byte(`{"zone":"ga","quantity":1}`)
	b.Run("noop", func(b *testing.B) {
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetStatusCode(201)
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"hold_id":"h_x","state":"active"}`)
		}, ReadTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		requireNoErr(b, err)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		b.Cleanup(func() {
			requireNoErr(b, srv.Shutdown(), "shutdown")
			requireNoErr(b, <-served, "serve")
		})
		c := benchClient(ln.Addr().String())
		runLoad(b, c, 201, func(req *fasthttp.Request, _, _ int) {
			req.Header.SetMethod("POST")
			req.SetRequestURI("http://" + ln.Addr().String() + "/v1/sales/s/holds")
			req.Header.Set("Authorization", "Bearer x")
			req.Header.SetContentType("application/json")
			req.SetBody(body)
		})
		c.CloseIdleConnections()
	})

	var runs atomic.Int64
	ts := startServer(b)
	b.Run("holds", func(b *testing.B) {
		// A fresh sale per run, so that stock and per-buyer limits never
		// run out: each buyer takes 100 single seats, the most allowed.
		sale := fmt.Sprintf("bench-%d", runs.Add(1))
		ts.createSale(b, newSaleSpec(sale).with("max_per_buyer", 100).with("hold_ttl_s", 3600).
			room("active_limit", 1_000_000).room("admit_per_s", 100_000).
			with("zones", []any{map[string]any{"id": "ga", "price_cents": 100, "capacity": 1_000_000}}))
		toks := make([][]string, benchConns)
		joins := make(chan [2]int, 1024)
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range joins {
					toks[j[0]][j[1]] = admitFast(b, ts, sale, fmt.Sprintf("w%d-%d", j[0], j[1]))
				}
			}()
		}
		for w := range benchConns {
			n := (b.N - w + benchConns - 1) / benchConns // requests of worker w
			toks[w] = make([]string, n/100+1)
			for k := range toks[w] {
				joins <- [2]int{w, k}
			}
		}
		close(joins)
		wg.Wait()
		path := "http://" + ts.addr + "/v1/sales/" + sale + "/holds"
		c := benchClient(ts.addr)
		runLoad(b, c, 201, func(req *fasthttp.Request, w, i int) {
			req.Header.SetMethod("POST")
			req.SetRequestURI(path)
			req.Header.Set("Authorization", "Bearer "+toks[w][(i/benchConns)/100])
			req.Header.SetContentType("application/json")
			req.SetBody(body)
		})
		c.CloseIdleConnections()
	})
}

// admitFast joins and returns the access token; the sale admits at once.
func admitFast(b *testing.B, ts *testServer, sale, buyer string) string {
	r, err := ts.try("POST", "/v1/sales/"+sale+"/queue", map[string]string{"buyer": buyer})
	if err != nil || r.Status != 200 {
		b.Errorf("join %s: %v %s", buyer, err, r)
		return ""
	}
	var k ticket
	if err := json.Unmarshal(r.Body, &k); err != nil || k.AccessToken == "" {
		b.Errorf("join %s: not admitted: %s", buyer, r)
	}
	return k.AccessToken
}

// queuePollBuyers is how many buyers wait while BenchmarkQueuePoll polls.
const queuePollBuyers = 100_000

// BenchmarkQueuePoll: queue status reads per second with a line of
// queuePollBuyers waiting (one shopper at a time, one admission a second, so
// the line stays put). Polls pick random places in line.
func BenchmarkQueuePoll(b *testing.B) {
	ts := startServer(b)
	ts.createSale(b, newSaleSpec("line").room("active_limit", 1).room("admit_per_s", 1))
	ids := make([]string, queuePollBuyers)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range benchConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				r, err := ts.try("POST", "/v1/sales/line/queue", map[string]string{"buyer": fmt.Sprintf("b%d", i)})
				if err != nil || r.Status != 200 {
					b.Errorf("join b%d: %v %s", i, err, r)
					return
				}
				var k ticket
				if err := json.Unmarshal(r.Body, &k); err != nil {
					b.Errorf("join b%d: %v", i, err)
					return
				}
				ids[i] = k.QueueID
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	q := ts.sale(b, "line").Queue
	b.Logf("line of %d built in %s (%.0f joins/s over HTTP, fsync on); waiting %d",
		len(ids), time.Since(start).Round(time.Millisecond), float64(len(ids))/time.Since(start).Seconds(), q.Waiting)

	b.Run("poll", func(b *testing.B) {
		c := benchClient(ts.addr)
		base := "http://" + ts.addr + "/v1/sales/line/queue/"
		runLoad(b, c, 200, func(req *fasthttp.Request, w, i int) {
			req.SetRequestURI(base + ids[rand.IntN(len(ids))])
		})
		c.CloseIdleConnections()
	})
}
