package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// The seat map of the largest zone API.md allows (1,000 rows of 1,000
// seats) over real HTTP, fsync on. Run:
//
//	go test -run '^$' -bench AvailabilityLargestZone -benchtime 2000x ./httpapi/
//
// "page" is one page answer as readers get it (shared); "encode" is the
// making of one page after a change (the zone's copy and the JSON);
// "readers32" has 32 readers loop over every page of the zone while other
// buyers join and hold, and reports the join+hold latency and the
// process's memory; "readers0" is the same joins and holds alone.
func BenchmarkAvailabilityLargestZone(b *testing.B) {
	const (
		rowsN   = 1000
		seatsN  = 1000
		readers = 32
		holders = 8 // buyers joining and holding at once
	)
	ts := startServer(b, withAddressRate(0), withBuyerRate(0))
	seats := make([]int, rowsN)
	for i := range seats {
		seats[i] = seatsN
	}
	ts.createSale(b, hallSpec("big", seats).room("active_limit", 1_000_000).room("admit_per_s", 100_000))
	sale, ok := ts.eng.Sale("big")
	requireTrue(b, ok, "sale")
	rows := zoneRows(sale, "hall")
	c := benchClient(ts.addr)
	// Pages of ten 1,000-seat rows start at R1, R11, ... R991.
	pagePath := func(i int) string {
		return fmt.Sprintf("/v1/sales/big/availability?zone=hall&from_row=R%d", (i%(rowsN/10))*10+1)
	}

	b.Run("page", func(b *testing.B) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + ts.addr + pagePath(0))
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Fatalf("page: %v %d", err, resp.StatusCode())
			}
		}
		b.ReportMetric(float64(len(resp.Body())), "B/answer")
	})

	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			body, _, err := encodePage(sale, "hall", rows, 0)
			if err != nil {
				b.Fatal(err)
			}
			n = len(body)
		}
		b.ReportMetric(float64(n), "B/answer")
	})

	for _, readers := range []int{0, readers} {
		b.Run(fmt.Sprintf("readers%d", readers), func(b *testing.B) { crowd(b, ts, readers, holders, pagePath) })
	}
}

// crowd has readers loop over the pages of zone "hall" while holders
// goroutines make b.N buyers join and hold, and reports the join+hold
// latency, the reads, and the process's memory before and after.
func crowd(b *testing.B, ts *testServer, readers, holders int, pagePath func(int) string) {
	c := benchClient(ts.addr)
	rssBefore := procStatusMB(b, "VmRSS")
	encodedBefore := ts.metricValue(b, "onsale_availability_pages_encoded_total")
	stop := make(chan struct{})
	var reads, readBytes atomic.Int64
	var readErr atomic.Value
	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := r; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req.SetRequestURI("http://" + ts.addr + pagePath(i))
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					readErr.CompareAndSwap(nil, fmt.Sprintf("read: %v %d %.200s", err, resp.StatusCode(), resp.Body()))
					return
				}
				reads.Add(1)
				readBytes.Add(int64(len(resp.Body())))
			}
		})
	}

	lat := make([][]time.Duration, holders)
	var hwg sync.WaitGroup
	var holdErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	for h := range holders {
		hwg.Go(func() {
			for i := h; i < b.N; i += holders {
				t0 := time.Now()
				if err := joinAndHold(ts, fmt.Sprintf("jh-%d", benchBuyers.Add(1))); err != nil {
					holdErr.CompareAndSwap(nil, err.Error())
					return
				}
				lat[h] = append(lat[h], time.Since(t0))
			}
		})
	}
	hwg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	rwg.Wait()
	if e := holdErr.Load(); e != nil {
		b.Fatal(e)
	}
	if e := readErr.Load(); e != nil {
		b.Fatal(e)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "ms-joinhold-p50")
	b.ReportMetric(q(0.99), "ms-joinhold-p99")
	b.ReportMetric(float64(reads.Load())/elapsed.Seconds(), "reads/s")
	b.ReportMetric(float64(readBytes.Load())/elapsed.Seconds()/(1<<20), "MB-read/s")
	b.ReportMetric(ts.metricValue(b, "onsale_availability_pages_encoded_total")-encodedBefore, "encodes")
	b.ReportMetric(rssBefore, "MB-RSS-before")
	b.ReportMetric(procStatusMB(b, "VmRSS"), "MB-RSS-after")
	b.ReportMetric(procStatusMB(b, "VmHWM"), "MB-RSS-peak")
}

// benchBuyers numbers the buyers of the benchmarks: a benchmark runs more
// than once, and a buyer joins once.
var benchBuyers atomic.Int64

// joinAndHold joins the line of sale "big" as buyer, is admitted at once,
// and holds two seats of "hall".
func joinAndHold(ts *testServer, buyer string) error {
	r, err := ts.try("POST", "/v1/sales/big/queue", map[string]string{"buyer": buyer})
	if err != nil || r.Status != 200 {
		return fmt.Errorf("join %s: %v %s", buyer, err, truncate(r.String(), 200))
	}
	var k ticket
	if err := json.Unmarshal(r.Body, &k); err != nil || k.AccessToken == "" {
		return fmt.Errorf("join %s: not admitted at once: %s", buyer, truncate(r.String(), 200))
	}
	r, err = ts.try("POST", "/v1/sales/big/holds", map[string]any{"zone": "hall", "quantity": 2}, bearerHdr(k.AccessToken))
	if err != nil || r.Status != 201 {
		return fmt.Errorf("hold %s: %v %s", buyer, err, truncate(r.String(), 200))
	}
	return nil
}

// procStatusMB reads a memory figure of this process (VmRSS, VmHWM) from
// /proc/self/status, in MiB; the server runs in this process.
func procStatusMB(b *testing.B, field string) float64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			b.Errorf("close /proc/self/status: %v", err)
		}
	}()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			requireNoErr(b, err, field)
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}
