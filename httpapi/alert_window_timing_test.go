package httpapi

import (
	"testing"
	"time"
)

// TestAlertFiguresCostNoAllocations: what the alert rules add to a
// request, a gateway call and a log batch allocates nothing.
func TestAlertFiguresCostNoAllocations(t *testing.T) {
	m := NewMetrics()
	m.request(holdRoute, 201, time.Millisecond) // makes the series once
	n := testing.AllocsPerRun(1000, func() {
		m.request(holdRoute, 201, time.Millisecond)
		m.livePayment.observe(time.Millisecond)
		m.OnBatch(10, 1000, time.Millisecond)
	})
	requireEqual(t, n, 0.0, "allocations per request, payment and batch")
}

// BenchmarkLiveHistObserve is the hot-path cost of one latency sample.
func BenchmarkLiveHistObserve(b *testing.B) {
	var h liveHist
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 3 * time.Millisecond
		for pb.Next() {
			h.observe(d)
		}
	})
}
