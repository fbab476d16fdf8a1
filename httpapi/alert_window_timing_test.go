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

// BenchmarkMetricsRequest is the whole per-request cost of the metrics:
// the series lookup, the totals, the Prometheus histogram and the live
// latency histograms, from parallel goroutines as the server calls it.
func BenchmarkMetricsRequest(b *testing.B) {
	m := NewMetrics()
	routes := []string{holdRoute, "/v1/sales/{sale}/availability", "/v1/sales/{sale}/queue/{queue}", "/healthz"}
	for _, r := range routes {
		m.request(r, 200, time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.request(routes[i%len(routes)], 200, time.Duration(i%4096)*time.Microsecond)
			i++
		}
	})
}
