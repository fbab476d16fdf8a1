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

	// storageDown, set by the server, tells whether the log cannot write
	// now: the onsale_storage_unavailable gauge to alert on.
	storageDown atomic.Pointer[func() bool]

	paymentLatency *metrics.PrometheusHistogram
	paymentErrors  *metrics.Counter
	// paymentsClosed counts charges refused because their key was closed
	// (Void): an attempt settled as unpaid, not a gateway failure.
	paymentsClosed  *metrics.Counter
	paymentDeclines *metrics.Counter
	paymentInFlight atomic.Int64
	// refundsOwed reads the engine's payments still owed a refund or an
	// outcome (actors.Engine.RefundsOwed); nil until the engine is open.
	refundsOwed atomic.Pointer[func() int64]
	walBatch    *metrics.PrometheusHistogram
	walFsync    *metrics.PrometheusHistogram
	walRecords  *metrics.Counter
	panics      *metrics.Counter
	rateLimited *metrics.Counter
	acceptFull  *metrics.Counter // accepts that met EMFILE/ENFILE
	// availabilityEncodes counts seat-map pages encoded; availabilityShared
	// counts answers given from a page another request encoded. Their ratio
	// is how well readers share.
	availabilityEncodes *metrics.Counter
	availabilityShared  *metrics.Counter
	connections         atomic.Int64
	streams             atomic.Int64 // open event streams (buyers' and dashboards')
	connectionsCap      atomic.Int64
	series              sync.Map // routeStatus -> *requestSeries

	// Totals for the dashboard, which shows rates from their differences.
	totals totals
	// Latencies the alert rules and the dashboard take quantiles of: per
	// route (the hold alert reads holdRoute's), and of the gateway and the
	// log.
	routeLat               routeLatency
	livePayment, liveFsync liveHist
	webhookDropped         *metrics.Counter
	webhookFailures        *metrics.Counter
	// alerts reads the alerts firing now; nil until the server has them.
	alerts atomic.Pointer[func() []Alert]
}

// totals are running sums; the dashboard turns them into rates per second.
type totals struct {
	requests, clientErrors, serverErrors atomic.Int64
	payments, paymentNanos               atomic.Int64
	batches, fsyncNanos                  atomic.Int64
}

// NewMetrics makes the server's metric set.
func NewMetrics() *Metrics {
	// # HELP and # TYPE for every family: without # TYPE, Prometheus knows
	// no metric's type. The switch is the library's, global and idempotent.
	metrics.ExposeMetadata(true)
	s := metrics.NewSet()
	m := &Metrics{
		set:             s,
		paymentLatency:  s.NewPrometheusHistogramExt("onsale_payment_gateway_duration_seconds", latencyBuckets),
		paymentErrors:   s.NewCounter("onsale_payment_gateway_errors_total"),
		paymentsClosed:  s.NewCounter("onsale_payment_charges_refused_closed_total"),
		paymentDeclines: s.NewCounter("onsale_payment_declines_total"),
		walBatch:        s.NewPrometheusHistogramExt("onsale_log_batch_records", batchBuckets),
		walFsync:        s.NewPrometheusHistogramExt("onsale_log_fsync_duration_seconds", latencyBuckets),
		walRecords:      s.NewCounter("onsale_log_records_total"),
		panics:          s.NewCounter("onsale_http_panics_total"),
		rateLimited:     s.NewCounter("onsale_http_rate_limited_total"),
	}
	m.webhookDropped = s.NewCounter("onsale_alert_webhook_dropped_total")
	m.webhookFailures = s.NewCounter("onsale_alert_webhook_failures_total")
	m.acceptFull = s.NewCounter("onsale_http_accept_fd_exhausted_total")
	m.availabilityEncodes = s.NewCounter("onsale_availability_pages_encoded_total")
	m.availabilityShared = s.NewCounter("onsale_availability_pages_shared_total")
	s.NewGauge("onsale_payment_gateway_in_flight", func() float64 { return float64(m.paymentInFlight.Load()) })
	s.NewGauge("onsale_http_connections", func() float64 { return float64(m.connections.Load()) })
	s.NewGauge("onsale_queue_streams", func() float64 { return float64(m.streams.Load()) })
	s.NewGauge("onsale_payments_owed", func() float64 {
		if f := m.refundsOwed.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	s.NewGauge("onsale_http_connections_max", func() float64 { return float64(m.connectionsCap.Load()) })
	s.NewGauge("onsale_storage_unavailable", func() float64 {
		if f := m.storageDown.Load(); f != nil && (*f)() {
			return 1
		}
		return 0
	})
	return m
}

// OnBatch is the log's hook: one durable batch of records.
func (m *Metrics) OnBatch(records, _ int, fsync time.Duration) {
	m.walBatch.Update(float64(records))
	m.walFsync.Update(fsync.Seconds())
	m.liveFsync.observe(fsync)
	m.totals.batches.Add(1)
	m.totals.fsyncNanos.Add(int64(fsync))
	m.walRecords.Add(records)
}

// routeStatus names one request series. Routes are the fixed names the
// router returns, never user input, so the series are bounded; a name
// missing from routeNames is labelled routeUnknown.
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
	live     *liveHist // the route's, in Metrics.routeLat
}

// request records one answered request.
func (m *Metrics) request(route string, status int, d time.Duration) {
	k := routeStatus{route, status}
	v, ok := m.series.Load(k)
	if !ok {
		name := routeName(route)
		rs := &requestSeries{
			requests: m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_http_requests_total{route=%q,status="%d"}`, name, status)),
			duration: m.set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`onsale_http_request_duration_seconds{route=%q}`, name), latencyBuckets),
			live:     m.routeLat.of(name),
		}
		if status >= 400 {
			rs.errors = m.set.GetOrCreateCounter(fmt.Sprintf(`onsale_http_errors_total{route=%q,status="%d"}`, name, status))
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
	rs.live.observe(d)
	if rs.errors != nil {
		rs.errors.Inc()
	}
}

// write renders every metric: ours, the sales' live figures, and the Go
// runtime's. The Prometheus text format wants all samples of a family in one
// block under one # HELP and # TYPE, so the sales' figures are written family
// by family, not sale by sale.
func (m *Metrics) write(w io.Writer, eng *actors.Engine) {
	m.set.WritePrometheus(w)
	if eng != nil {
		sales := eng.Sales()
		type saleFigures struct {
			id     string
			q      actors.QueueSummary
			st     actors.SaleStats
			counts []actors.ZoneCounts
		}
		figs := make([]saleFigures, len(sales))
		for i, s := range sales {
			figs[i] = saleFigures{id: s.ID(), q: s.Queue(), st: s.Stats(), counts: s.Counts()}
		}
		family := func(name, typ, help string, each func(f *saleFigures)) {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
			for i := range figs {
				each(&figs[i])
			}
		}
		family("onsale_queue_waiting", "gauge", "Buyers waiting in line, per sale.", func(f *saleFigures) {
			fmt.Fprintf(w, "onsale_queue_waiting{sale=%q} %d\n", f.id, f.q.Waiting)
		})
		family("onsale_queue_admitted", "gauge", "Admitted buyers shopping now, per sale.", func(f *saleFigures) {
			fmt.Fprintf(w, "onsale_queue_admitted{sale=%q} %d\n", f.id, f.q.Admitted)
		})
		family("onsale_queue_admissions_total", "counter", "Admissions since the sale was created.", func(f *saleFigures) {
			fmt.Fprintf(w, "onsale_queue_admissions_total{sale=%q} %d\n", f.id, f.q.AdmittedTotal)
		})
		family("onsale_queue_admit_rate", "gauge", "Admission rate in force, admissions per second.", func(f *saleFigures) {
			fmt.Fprintf(w, "onsale_queue_admit_rate{sale=%q} %g\n", f.id, f.q.AdmitPerS)
		})
		family("onsale_holds_placed_total", "counter", "Holds placed since the server started.", func(f *saleFigures) {
			fmt.Fprintf(w, "onsale_holds_placed_total{sale=%q} %d\n", f.id, f.st.HoldsPlaced)
		})
		family("onsale_holds_expired_total", "counter", "Holds that expired unpaid since the server started.", func(f *saleFigures) {
			fmt.Fprintf(w, "onsale_holds_expired_total{sale=%q} %d\n", f.id, f.st.HoldsExpired)
		})
		family("onsale_seats", "gauge", "Seats by state (free, held, sold), per sale and zone.", func(f *saleFigures) {
			for _, z := range f.counts {
				fmt.Fprintf(w, "onsale_seats{sale=%q,zone=%q,state=\"free\"} %d\n", f.id, z.ID, z.Free)
				fmt.Fprintf(w, "onsale_seats{sale=%q,zone=%q,state=\"held\"} %d\n", f.id, z.ID, z.Held)
				fmt.Fprintf(w, "onsale_seats{sale=%q,zone=%q,state=\"sold\"} %d\n", f.id, z.ID, z.Sold)
			}
		})
	}
	fmt.Fprintf(w, "# HELP onsale_alert Alerts firing now, 1 each (rule, and sale for per-sale rules).\n# TYPE onsale_alert gauge\n")
	if f := m.alerts.Load(); f != nil {
		for _, a := range (*f)() {
			fmt.Fprintf(w, "onsale_alert{rule=%q,sale=%q} 1\n", a.Rule, a.Sale)
		}
	}
	metrics.WriteProcessMetrics(w)
}
