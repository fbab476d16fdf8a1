package httpapi

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"onsale/actors"
)

// Histogram bounds: classic le buckets, so that stock Prometheus computes
// quantiles (VictoriaMetrics' vmrange buckets are not understood by it).
var (
	latencyBuckets = metrics.ExponentialBuckets(50e-6, 2, 18) // 50 µs .. 6.5 s
	batchBuckets   = metrics.ExponentialBuckets(1, 2, 14)     // 1 .. 8192 records
)

// Metrics are the server's own numbers, in a set of their own so that two
// servers in one process (tests) never collide.
type Metrics struct {
	set *metrics.Set

	paymentLatency  *metrics.PrometheusHistogram
	paymentErrors   *metrics.Counter
	paymentDeclines *metrics.Counter
	paymentInFlight atomic.Int64
	walBatch        *metrics.PrometheusHistogram
	walFsync        *metrics.PrometheusHistogram
	walRecords      *metrics.Counter
	panics          *metrics.Counter
	rateLimited     *metrics.Counter
	series          sync.Map // routeStatus -> *requestSeries

	// Totals for the dashboard, which shows rates from their differences.
	totals totals
}

// totals are running sums; the dashboard turns them into rates per second.
type totals struct {
	requests, clientErrors, serverErrors atomic.Int64
	payments, paymentNanos               atomic.Int64
	batches, fsyncNanos                  atomic.Int64
}

// NewMetrics makes the server's metric set.
func NewMetrics() *Metrics {
	s := metrics.NewSet()
	m := &Metrics{
		set:             s,
		paymentLatency:  s.NewPrometheusHistogramExt("onsale_payment_gateway_duration_seconds", latencyBuckets),
		paymentErrors:   s.NewCounter("onsale_payment_gateway_errors_total"),
		paymentDeclines: s.NewCounter("onsale_payment_declines_total"),
		walBatch:        s.NewPrometheusHistogramExt("onsale_log_batch_records", batchBuckets),
		walFsync:        s.NewPrometheusHistogramExt("onsale_log_fsync_duration_seconds", latencyBuckets),
		walRecords:      s.NewCounter("onsale_log_records_total"),
		panics:          s.NewCounter("onsale_http_panics_total"),
		rateLimited:     s.NewCounter("onsale_http_rate_limited_total"),
	}
	s.NewGauge("onsale_payment_gateway_in_flight", func() float64 { return float64(m.paymentInFlight.Load()) })
	return m
}

// OnBatch is the log's hook: one durable batch of records.
func (m *Metrics) OnBatch(records, _ int, fsync time.Duration) {
	m.walBatch.Update(float64(records))
	m.walFsync.Update(fsync.Seconds())
	m.totals.batches.Add(1)
	m.totals.fsyncNanos.Add(int64(fsync))
	m.walRecords.Add(records)
}

// routeStatus names one request series. Routes are the fixed names the
// router returns, never user input, so the series are bounded.
type routeStatus struct {
	route  string
	status int
}

// requestSeries are one route and status's metrics, made once: building
// metric names per request cost more than the rest of the metrics.
type requestSeries struct {
	requests *metrics.Counter
	errors   *metrics.Counter // nil below 400
	duration *metrics.PrometheusHistogram
}

// request records one answered request.
func (m *Metrics) request(route string, status int, d time.Duration) {
	k := routeStatus{route, status}
	v, ok := m.series.Load(k)
	if !ok {
		rs := &requestSeries{
			requests: m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_http_requests_total{route=%q,status="%d"}`, route, status)),
			duration: m.set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`onsale_http_request_duration_seconds{route=%q}`, route), latencyBuckets),
		}
		if status >= 400 {
			rs.errors = m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_http_errors_total{route=%q,status="%d"}`, route, status))
		}
		v, _ = m.series.LoadOrStore(k, rs)
	}
	rs := v.(*requestSeries)
	m.totals.requests.Add(1)
	switch {
	case status >= 500:
		m.totals.serverErrors.Add(1)
	case status >= 400:
		m.totals.clientErrors.Add(1)
	}
	rs.requests.Inc()
	rs.duration.Update(d.Seconds())
	if rs.errors != nil {
		rs.errors.Inc()
	}
}

// write renders every metric: ours, the sales' live figures, and the Go
// runtime's.
func (m *Metrics) write(w io.Writer, eng *actors.Engine) {
	m.set.WritePrometheus(w)
	if eng != nil {
		for _, s := range eng.Sales() {
			id := s.ID()
			q := s.Queue()
			st := s.Stats()
			fmt.Fprintf(w, "onsale_queue_waiting{sale=%q} %d\n", id, q.Waiting)
			fmt.Fprintf(w, "onsale_queue_admitted{sale=%q} %d\n", id, q.Admitted)
			fmt.Fprintf(w, "onsale_queue_admissions_total{sale=%q} %d\n", id, q.AdmittedTotal)
			fmt.Fprintf(w, "onsale_queue_admit_rate{sale=%q} %g\n", id, q.AdmitPerS)
			fmt.Fprintf(w, "onsale_holds_placed_total{sale=%q} %d\n", id, st.HoldsPlaced)
			fmt.Fprintf(w, "onsale_holds_expired_total{sale=%q} %d\n", id, st.HoldsExpired)
			for _, z := range s.Counts() {
				fmt.Fprintf(w, "onsale_seats{sale=%q,zone=%q,state=\"free\"} %d\n", id, z.ID, z.Free)
				fmt.Fprintf(w, "onsale_seats{sale=%q,zone=%q,state=\"held\"} %d\n", id, z.ID, z.Held)
				fmt.Fprintf(w, "onsale_seats{sale=%q,zone=%q,state=\"sold\"} %d\n", id, z.ID, z.Sold)
			}
		}
	}
	metrics.WriteProcessMetrics(w)
}
