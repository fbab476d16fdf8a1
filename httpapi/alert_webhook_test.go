package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/actors"
)

// receiver is a webhook endpoint that records what it accepted, in order.
type receiver struct {
	mode atomic.Int32 // receiverOK, receiverFail, receiverSlow
	mu   sync.Mutex
	got  []webhookPayload // guarded by mu
	at   []time.Time      // guarded by mu; when each arrived
}

const (
	receiverOK = iota
	receiverFail
	receiverSlow
)

// receiverSlowness is how long a slow receiver takes: slow, but within
// webhookTimeout, so that what it answers counts.
const receiverSlowness = 300 * time.Millisecond

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch rc.mode.Load() {
	case receiverFail:
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case receiverSlow:
		// The receiver's own slowness, not a wait for a condition.
		time.Sleep(receiverSlowness)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var p webhookPayload
	if err := json.Unmarshal(b, &p); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, p)
	rc.at = append(rc.at, time.Now())
	rc.mu.Unlock()
}

func (rc *receiver) received() []webhookPayload {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]webhookPayload{}, rc.got...)
}

// TestAlertWebhookSurvivesADeadReceiver: transitions made while the
// receiver refuses connections, then answers 500, then answers slowly all
// arrive once it is back, each once and in order.
func TestAlertWebhookSurvivesADeadReceiver(t *testing.T) {
	t.Parallel()
	// A port nobody listens on yet: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	addr := ln.Addr().String()
	requireNoErr(t, ln.Close())

	ts := startServer(t, withAlerts(AlertOptions{Webhook: "http://" + addr + "/hook", DashboardURL: "http://example/dashboard", backoffMax: 50 * time.Millisecond}), withManualAlerts())
	var free atomic.Uint64
	free.Store(100 << 30)
	ts.srv.alerts.diskFree = func(string) (uint64, error) { return free.Load(), nil }
	// flip fires and resolves disk_free once: two transitions.
	flip := func() {
		free.Store(1 << 20)
		for !ts.firing(RuleDiskFree, "") {
			ts.alertTick()
		}
		free.Store(100 << 30)
		for ts.firing(RuleDiskFree, "") {
			ts.alertTick()
		}
	}
	flip()
	flip()
	failedSince := func(n uint64) func() (bool, string) {
		return func() (bool, string) {
			f := ts.srv.m.webhookFailures.Get()
			return f > n, fmt.Sprintf("%d failed POSTs", f)
		}
	}
	eventually(t, 5*time.Second, "POSTs refused", failedSince(0))

	rc := &receiver{}
	rc.mode.Store(receiverFail)
	ln, err = net.Listen("tcp", addr)
	requireNoErr(t, err, "listen again on %s", addr)
	hs := httptest.NewUnstartedServer(rc)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	refused := ts.srv.m.webhookFailures.Get()
	eventually(t, 5*time.Second, "POSTs answered 500", failedSince(refused))
	requireEqual(t, len(rc.received()), 0, "nothing accepted yet")
	flip()
	rc.mode.Store(receiverSlow)
	flip()
	eventually(t, 10*time.Second, "the slow receiver takes some", func() (bool, string) {
		n := len(rc.received())
		return n > 0, "none yet"
	})
	rc.mode.Store(receiverOK)
	flip()

	const want = 10 // five flips, two transitions each
	eventually(t, 10*time.Second, "every transition delivered", func() (bool, string) {
		n := len(rc.received())
		return n == want, fmt.Sprintf("got %d", n)
	})
	got := rc.received()
	for i, p := range got {
		requireEqual(t, p.ID, uint64(i+1), "in order, once each")
		requireEqual(t, p.Rule, RuleDiskFree)
		wantState := alertStateFiring
		if i%2 == 1 {
			wantState = alertStateResolved
		}
		requireEqual(t, p.State, wantState)
		requireTrue(t, p.Text != "" && p.Dashboard == "http://example/dashboard" && p.StartedAt != "", "payload %+v", p)
	}
	requireEqual(t, ts.srv.m.webhookDropped.Get(), uint64(0), "none dropped")
}

// TestAlertWebhookQueueDropsOldest: a receiver that never comes back costs
// a bounded queue, not memory; the newest transitions are kept.
func TestAlertWebhookQueueDropsOldest(t *testing.T) {
	m := NewMetrics()
	w := newWebhook("http://127.0.0.1:1/", m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range webhookQueueMax + 10 {
		w.send(Alert{ID: uint64(i + 1), Rule: RuleDiskFree, State: alertStateFiring}, "")
	}
	requireEqual(t, m.webhookDropped.Get(), uint64(10))
	var p webhookPayload
	requireNoErr(t, json.Unmarshal(w.head(), &p))
	requireEqual(t, p.ID, uint64(11), "the oldest went first")
	w.mu.Lock()
	requireEqual(t, len(w.queue), webhookQueueMax)
	w.mu.Unlock()
}

// flakyGateway is the simulator until down is set; then every call fails
// as an unreachable provider does.
type flakyGateway struct {
	Simulator
	down atomic.Bool
}

func (g *flakyGateway) Charge(ctx context.Context, p actors.Payment) error {
	if g.down.Load() {
		return ErrGatewayDown
	}
	return g.Simulator.Charge(ctx, p)
}

func (g *flakyGateway) Void(ctx context.Context, p actors.Payment) (actors.ChargeState, error) {
	if g.down.Load() {
		return 0, ErrGatewayDown
	}
	return g.Simulator.Void(ctx, p)
}

func (g *flakyGateway) Lookup(ctx context.Context, p actors.Payment) (actors.ChargeState, error) {
	if g.down.Load() {
		return 0, ErrGatewayDown
	}
	return g.Simulator.Lookup(ctx, p)
}

// TestAlertLatencyGatewayDown measures, with the default rules and the
// server's own ticker, the time from the payment gateway going down under
// buyers' checkouts to the webhook POST that says so.
func TestAlertLatencyGatewayDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds of real time")
	}
	t.Parallel()
	rc := &receiver{}
	hs := httptest.NewServer(rc)
	t.Cleanup(hs.Close)
	gw := &flakyGateway{}
	ts := startServer(t, withAlerts(AlertOptions{Webhook: hs.URL}), func(o *Options) { o.Gateway = gw })
	// Seats for a minute of buyers at ten a second: a failed checkout
	// keeps its hold.
	ts.createSale(t, newSaleSpec("s").with("max_per_buyer", 1).with("zones", []any{
		map[string]any{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": 1000}}))

	stop := make(chan struct{})
	done := make(chan struct{})
	var buyers atomic.Int64
	go func() {
		defer close(done)
		// Buyers check out at their own pace: ten a second, each one seat.
		pace := time.NewTicker(100 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			if err := checkoutOnce(ts, fmt.Sprintf("b%d", i)); err != nil {
				// Not t.Fatal: this is not the test's goroutine.
				t.Errorf("buyer %d: %v", i, err)
				return
			}
			buyers.Add(1)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	eventually(t, 10*time.Second, "a few healthy checkouts", func() (bool, string) {
		return buyers.Load() >= 5, "fewer than 5"
	})
	requireEqual(t, len(rc.received()), 0, "no alert while healthy")
	down := time.Now()
	gw.down.Store(true)
	heard := func(state string) (time.Time, webhookPayload) {
		var posted time.Time
		var alert webhookPayload
		eventually(t, 60*time.Second, "the webhook hears the gateway alert "+state, func() (bool, string) {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			for i, p := range rc.got {
				if p.Rule == RulePaymentErrors && p.State == state {
					posted, alert = rc.at[i], p
					return true, ""
				}
			}
			return false, "nothing yet"
		})
		return posted, alert
	}
	posted, alert := heard(alertStateFiring)
	latency := posted.Sub(down)
	t.Logf("gateway down to webhook POST: %s", latency.Round(10*time.Millisecond))
	requireTrue(t, latency < 10*time.Second, "alert latency %s", latency)
	requireTrue(t, strings.HasSuffix(alert.Dashboard, "/dashboard"), "a link to the dashboard by default: %q", alert.Dashboard)
	requireTrue(t, alert.Value > AlertDefaults.PaymentErrors && alert.Threshold == AlertDefaults.PaymentErrors, "payload %+v", alert)

	up := time.Now()
	gw.down.Store(false)
	resolvedAt, resolved := heard(alertStateResolved)
	t.Logf("gateway back to webhook POST: %s", resolvedAt.Sub(up).Round(10*time.Millisecond))
	requireTrue(t, resolvedAt.Sub(up) < 10*time.Second, "resolve latency %s", resolvedAt.Sub(up))
	requireEqual(t, resolved.StartedAt, alert.StartedAt, "the same alert")
	// Failed checkouts answer 502, so http_5xx_rate fires and resolves
	// alongside; the gateway alert itself fired and resolved once.
	var states []string
	for _, p := range rc.received() {
		t.Logf("transition %d: %s %s (value %.3g)", p.ID, p.Rule, p.State, p.Value)
		if p.Rule == RulePaymentErrors {
			states = append(states, p.State)
		}
	}
	requireEqual(t, states, []string{alertStateFiring, alertStateResolved})
	requireTrue(t, resolved.Value <= AlertDefaults.PaymentErrors*alertResolveRatio, "resolved at %g", resolved.Value)
}

// TestAlertWebhookErrorHidesURL: the log never shows the webhook's URL,
// which for Slack is the secret that lets anyone post.
func TestAlertWebhookErrorHidesURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	addr := ln.Addr().String()
	requireNoErr(t, ln.Close())
	w := newWebhook("http://"+addr+"/services/T000/B000/SECRET", NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	err = w.post([]byte(`{}`))
	requireTrue(t, err != nil, "nobody listens")
	requireTrue(t, !strings.Contains(err.Error(), "SECRET"), "error %q quotes the URL", err)
}

// checkoutOnce is one buyer's visit: join (admitted at once: the line
// admits 1,000/s), hold a seat, check out; a checkout the gateway fails is
// a visit too. Safe for any goroutine.
func checkoutOnce(ts *testServer, buyer string) error {
	r, err := ts.try("POST", "/v1/sales/s/queue", map[string]string{"buyer": buyer})
	if err != nil {
		return err
	}
	var k ticket
	if err := json.Unmarshal(r.Body, &k); err != nil || k.AccessToken == "" {
		return fmt.Errorf("join: %s", r)
	}
	r, err = ts.try("POST", "/v1/sales/s/holds", map[string]any{"zone": "ga", "quantity": 1}, bearerHdr(k.AccessToken))
	if err != nil {
		return err
	}
	var h holdView
	if err := json.Unmarshal(r.Body, &h); err != nil || r.Status != 201 {
		return fmt.Errorf("hold: %s", r)
	}
	r, err = ts.try("POST", "/v1/holds/"+h.HoldID+"/checkout", map[string]any{"payment": map[string]string{"token": "tok_visa"}},
		bearerHdr(k.AccessToken), hdr{"Idempotency-Key", "k-" + buyer})
	if err != nil {
		return err
	}
	if r.Status != 201 && r.Status != 502 {
		return fmt.Errorf("checkout: %s", r)
	}
	return nil
}
