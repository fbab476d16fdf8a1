package actors

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkMillionLineAndSale builds the largest state the product is
// sized for in one process: a sale of 1,000,000 reserved seats (1,000 rows of
// 1,000) with 1,000,000 buyers waiting in its line, through the engine (log
// with fsync), then reports the process's RSS and Go heap, closes, and
// times recovery of that state from the log. Run it alone:
//
//	go test -run '^$' -bench MillionLineAndSale -benchtime 1x ./actors/
func BenchmarkMillionLineAndSale(b *testing.B) {
	const buyers = 1_000_000
	dir := b.TempDir()
	e, err := Open(Config{Dir: dir, CallTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]RowDef, 1000)
	for i := range rows {
		rows[i] = RowDef{Row: "R" + strconv.Itoa(i+1), Seats: 1000}
	}
	def := SaleDef{ID: "big", Zones: []ZoneDef{{ID: "hall", Rows: rows}},
		WaitingRoom: WaitingRoomDef{ActiveLimit: 1, AdmitPerS: 1, AccessTTLS: 86_400}}
	s, cerr := e.CreateSale(def)
	if cerr != nil {
		b.Fatal(cerr)
	}
	start := time.Now()
	var wg sync.WaitGroup
	const workers = 256
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < buyers; i += workers {
				if r := s.Join("b" + strconv.Itoa(i)); r.Err != nil {
					errs <- fmt.Errorf("join %d: %v", i, r.Err)
					return
				}
				if w == 0 && i%100_000 == 0 && i > 0 {
					b.Logf("… %d joined in %v", i, time.Since(start).Round(time.Millisecond))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	joined := time.Since(start)
	runtime.GC()
	rss, heap := benchRSS(b), benchHeap()
	b.ReportMetric(rss/1e6, "RSS-MB")
	b.ReportMetric(heap/1e6, "heap-MB")
	b.ReportMetric(float64(buyers)/joined.Seconds(), "joins/s")
	if q := s.Queue(); q.Waiting < buyers-10 {
		b.Fatalf("%d waiting, want about %d", q.Waiting, buyers)
	}
	if err := e.Close(); err != nil {
		b.Fatal(err)
	}
	e = nil
	s = nil
	runtime.GC()

	start = time.Now()
	e2, err := Open(Config{Dir: dir, CallTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	recovery := time.Since(start)
	defer e2.Close()
	s2, ok := e2.Sale("big")
	if !ok || s2.Queue().Waiting < buyers-10 {
		b.Fatalf("after recovery: sale %v, waiting %+v", ok, s2.Queue())
	}
	b.ReportMetric(recovery.Seconds(), "recovery-s")
	b.Logf("1,000,000 seats and 1,000,000 waiting: RSS %.0f MB (Go heap %.0f MB); joined at %.0f/s; recovery %v",
		rss/1e6, heap/1e6, float64(buyers)/joined.Seconds(), recovery.Round(time.Millisecond))
}

func benchHeap() float64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse)
}

func benchRSS(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(v), &kb)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
