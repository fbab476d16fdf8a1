package httpapi

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func withAlerts(a AlertOptions) serverOption { return func(o *Options) { o.Alerts = a } }

// withManualAlerts: the test steps the rules with alertTick, so that a
// rule's For and hold-down pass on the fake clock instead of in real time.
func withManualAlerts() serverOption { return func(o *Options) { o.Alerts.manual = true } }

// alertTick moves the clock on by a tick and evaluates the rules, as the
// server's own ticker would.
func (ts *testServer) alertTick() {
	ts.clock.Advance(alertInterval)
	ts.srv.alerts.tick()
}

func (ts *testServer) firing(rule, sale string) bool {
	active, _ := ts.srv.alerts.view()
	for _, a := range active {
		if a.Rule == rule && a.Sale == sale {
			return true
		}
	}
	return false
}

func TestAlertStateFiresAfterForAndResolvesWithoutFlapping(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var st alertState
	f, r := st.step(at(0), true, false, 3*time.Second)
	requireTrue(t, !f && !r, "not before For")
	f, _ = st.step(at(2), true, false, 3*time.Second)
	requireTrue(t, !f, "not before For")
	f, _ = st.step(at(3), true, false, 3*time.Second)
	requireTrue(t, f, "fires once For has passed")
	// Between the thresholds: neither bad nor good; it stays firing.
	for s := 4; s < 20; s++ {
		f, r = st.step(at(s), false, false, 3*time.Second)
		requireTrue(t, !f && !r, "no flapping in the band, second %d", s)
	}
	_, r = st.step(at(20), false, true, 3*time.Second)
	requireTrue(t, !r, "not before the hold-down")
	_, r = st.step(at(21), true, false, 3*time.Second)
	requireTrue(t, !r, "bad again: still firing")
	_, r = st.step(at(22), false, true, 3*time.Second)
	_, r = st.step(at(23), false, true, 3*time.Second)
	requireTrue(t, !r, "the hold-down starts again")
	_, r = st.step(at(24), false, true, 3*time.Second)
	requireTrue(t, r, "resolves after the hold-down")
	f, _ = st.step(at(25), true, false, 3*time.Second)
	requireTrue(t, !f, "a new For after resolving")
}

func TestHistWindowP99(t *testing.T) {
	var h liveHist
	w := newHistWindow(&h, alertWindowTicks)
	for range 98 {
		h.observe(time.Millisecond)
	}
	h.observe(time.Second)
	h.observe(time.Second)
	w.tick()
	v, n := w.quantile(0.99, alertWindowTicks)
	requireEqual(t, n, uint64(100))
	requireTrue(t, v >= 1 && v < 2.2, "p99 of 2%% at 1 s: %g", v)
	// Few samples: the p99 of 50 is the slowest of them.
	for range 49 {
		h.observe(time.Millisecond)
	}
	h.observe(time.Second)
	w.tick()
	v, n = w.quantile(0.99, 1)
	requireEqual(t, n, uint64(50))
	requireTrue(t, v >= 1 && v < 2.2, "p99 of 50 with one at 1 s: %g", v)
	for range alertWindowTicks {
		w.tick()
	}
	_, n = w.quantile(0.99, alertWindowTicks)
	requireEqual(t, n, uint64(0), "the window forgets")
}

// TestAlertRules makes each rule fire and resolve on a running server.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	type rule struct {
		name      string
		sale      string
		setup     func(t *testing.T, ts *testServer)
		bad, good func(t *testing.T, ts *testServer)
		maxTicks  int // to fire: its For plus a tick or two
	}
	requests := func(route string, status int, d time.Duration, n int) func(*testing.T, *testServer) {
		return func(_ *testing.T, ts *testServer) {
			for range n {
				if status == 429 {
					ts.srv.m.rateLimited.Inc()
				}
				ts.srv.m.request(route, status, d)
			}
		}
	}
	payments := func(fail bool, d time.Duration) func(*testing.T, *testServer) {
		return func(t *testing.T, ts *testServer) {
			for range 10 {
				// The bulkhead's own path, as a checkout takes it.
				err := ts.srv.pay.call("charge", func(context.Context) error {
					if fail {
						return ErrGatewayDown
					}
					return nil
				})
				requireEqual(t, err != nil, fail, "charge")
				ts.srv.m.livePayment.observe(d)
			}
		}
	}
	var diskFree atomic.Uint64
	var membersDown atomic.Int64
	rules := []rule{
		{name: RuleHTTP5xx, bad: requests("/v1/sales", 500, time.Millisecond, 30), good: requests("/v1/sales", 200, time.Millisecond, 30), maxTicks: 5},
		{name: RuleRateLimited, bad: requests("rate_limited", 429, time.Millisecond, 30), good: requests("/v1/sales", 200, time.Millisecond, 30), maxTicks: 12},
		{name: RuleHoldP99, bad: requests(holdRoute, 201, 2*time.Second, 10), good: requests(holdRoute, 201, time.Millisecond, 10), maxTicks: 7},
		{name: RulePaymentErrors, bad: payments(true, time.Millisecond), good: payments(false, time.Millisecond), maxTicks: 5},
		{name: RulePaymentP99, bad: payments(false, 10*time.Second), good: payments(false, time.Millisecond), maxTicks: 7},
		{name: RuleFsyncP99, bad: func(_ *testing.T, ts *testServer) { ts.srv.m.OnBatch(1, 0, 400*time.Millisecond) },
			good: func(_ *testing.T, ts *testServer) { ts.srv.m.OnBatch(1, 0, time.Millisecond) }, maxTicks: 7},
		{name: RuleDiskFree,
			setup: func(_ *testing.T, ts *testServer) {
				ts.srv.alerts.diskFree = func(string) (uint64, error) { return diskFree.Load(), nil }
			},
			bad:  func(*testing.T, *testServer) { diskFree.Store(100 << 20) },
			good: func(*testing.T, *testServer) { diskFree.Store(100 << 30) }, maxTicks: 2},
		{name: RuleClusterMember,
			setup: func(_ *testing.T, ts *testServer) {
				ts.srv.alerts.membersDown = func(lag uint64) (int, bool) {
					requireEqual(t, lag, uint64(AlertDefaults.ClusterLag), "the lag the rule is given")
					return int(membersDown.Load()), true
				}
			},
			bad:  func(*testing.T, *testServer) { membersDown.Store(1) },
			good: func(*testing.T, *testServer) { membersDown.Store(0) }, maxTicks: 7},
		{name: RuleLineStuck, sale: "s",
			setup: func(t *testing.T, ts *testServer) {
				// One buyer shops at the active limit of one; the next waits
				// and nobody is admitted.
				ts.createSale(t, newSaleSpec("s").room("active_limit", 1))
				ts.admit(t, "s", "b1")
			},
			bad: func(t *testing.T, ts *testServer) {
				if ts.sale(t, "s").Queue.Waiting == 0 {
					ts.join(t, "s", "b2")
					eventually(t, 5*time.Second, "b2 waits", func() (bool, string) {
						q := ts.sale(t, "s").Queue
						return q.Waiting == 1, fmt.Sprintf("%+v", q)
					})
				}
			},
			good: func(t *testing.T, ts *testServer) {
				if !ts.firing(RuleLineStuck, "s") {
					return // before: nobody waits yet
				}
				if ts.sale(t, "s").Queue.State != "paused" {
					requireStatus(t, ts.do(t, "POST", "/v1/sales/s/pause", nil, adminHdr), 200, "pause")
				}
				eventually(t, 5*time.Second, "paused", func() (bool, string) {
					q := ts.sale(t, "s").Queue
					return q.State == "paused", q.State
				})
			},
			maxTicks: int(AlertDefaults.LineStuck/alertInterval) + 3},
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, withManualAlerts())
			if r.name != RuleDiskFree {
				diskOff := func(string) (uint64, error) { return 1 << 50, nil }
				ts.srv.alerts.diskFree = diskOff
			}
			if r.setup != nil {
				r.setup(t, ts)
			}
			for range 3 {
				r.good(t, ts)
				ts.alertTick()
			}
			requireTrue(t, !ts.firing(r.name, r.sale), "quiet while good")
			ticks := 0
			for !ts.firing(r.name, r.sale) {
				requireTrue(t, ticks < r.maxTicks, "fires within %d ticks", r.maxTicks)
				r.bad(t, ts)
				ts.alertTick()
				ticks++

			}
			_, hist := ts.srv.alerts.view()
			requireEqual(t, len(hist), 1, "one transition: %+v", hist)
			requireEqual(t, hist[0].State, alertStateFiring)
			m := string(ts.do(t, "GET", "/metrics", nil).Body)
			want := fmt.Sprintf("onsale_alert{rule=%q,sale=%q} 1", r.name, r.sale)
			requireTrue(t, strings.Contains(m, want), "/metrics has %s", want)
			snap := string(ts.srv.dash.snapshot(dashLoad{}, nil))
			requireTrue(t, strings.Contains(snap, `"rule":"`+r.name+`"`), "dashboard shows it: %s", snap)

			ticks = 0
			for ts.firing(r.name, r.sale) {
				// The resolve window forgets within alertResolveTicks; the
				// hold-down takes two more.
				requireTrue(t, ticks <= alertResolveTicks+int(alertHoldDown/alertInterval)+1, "resolves within a few ticks")
				r.good(t, ts)
				ts.alertTick()
				ticks++
			}
			_, hist = ts.srv.alerts.view()
			requireEqual(t, len(hist), 2, "fired and resolved: %+v", hist)
			requireEqual(t, hist[1].State, alertStateResolved)
			requireEqual(t, hist[1].StartedAt, hist[0].StartedAt)
			m = string(ts.do(t, "GET", "/metrics", nil).Body)
			requireTrue(t, !strings.Contains(m, want), "/metrics no longer has %s", want)
		})
	}
}

// TestAlertReachesOpenDashboard: an open dashboard is sent a fresh frame
// when an alert fires, without waiting for its next tick.
func TestAlertReachesOpenDashboard(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withManualAlerts())
	var free atomic.Uint64
	free.Store(100 << 30)
	ts.srv.alerts.diskFree = func(string) (uint64, error) { return free.Load(), nil }
	br, closeStream := ts.dashboardStream(t, ts.dashboardLogin(t))
	defer closeStream()
	var snap struct {
		Alerts  []Alert `json:"alerts"`
		History []Alert `json:"alert_history"`
	}
	requireNoErr(t, json.Unmarshal([]byte(readEvent(t, br)), &snap))
	requireEqual(t, len(snap.Alerts), 0, "quiet at first")

	made := ts.srv.dash.frames.made.Load()
	free.Store(1 << 20)
	ts.alertTick()
	requireTrue(t, ts.firing(RuleDiskFree, ""), "disk_free fires at once")
	// The frame that was on its way when the alert fired may not have it;
	// the one the alert asked for does.
	for range 2 {
		requireNoErr(t, json.Unmarshal([]byte(readEvent(t, br)), &snap))
		if len(snap.Alerts) > 0 {
			break
		}
	}
	requireEqual(t, len(snap.Alerts), 1, "the dashboard shows the alert")
	requireEqual(t, snap.Alerts[0].Rule, RuleDiskFree)
	requireEqual(t, len(snap.History), 1)
	requireTrue(t, ts.srv.dash.frames.made.Load() > made, "a fresh frame was made")
}

// TestAlertFlags: the defaults hold unless a flag says otherwise, and
// Check refuses what cannot be meant.
func TestAlertFlags(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		o := DefaultOptions()
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.AddFlags(fs)
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		return o, o.Check()
	}
	o, err := parse()
	requireNoErr(t, err)
	requireEqual(t, o.Alerts, AlertDefaults, "defaults")
	o, err = parse("--alert-webhook", "https://hooks.slack.com/services/x", "--alert-payment-errors", "0.5",
		"--alert-line-stuck", "1m", "--alert-disk-free", "-1", "--alert-hold-p99", "250ms")
	requireNoErr(t, err)
	requireEqual(t, o.Alerts.Webhook, "https://hooks.slack.com/services/x")
	requireEqual(t, o.Alerts.PaymentErrors, 0.5)
	requireEqual(t, o.Alerts.LineStuck, time.Minute)
	requireEqual(t, o.Alerts.DiskFreeMiB, -1.0, "negative: off")
	requireEqual(t, o.Alerts.HoldP99, 250*time.Millisecond)
	for _, bad := range [][]string{
		{"--alert-5xx-rate", "5"},
		{"--alert-rate-limited", "1.5"},
		{"--alert-webhook", "hooks.slack.com/x"},
		{"--alert-webhook", "ftp://example/x"},
	} {
		_, err := parse(bad...)
		requireTrue(t, err != nil, "%v is refused", bad)
	}

	// A rule turned off is never observed.
	ts := startServer(t, withManualAlerts(), withAlerts(AlertOptions{DiskFreeMiB: -1}))
	ts.srv.alerts.diskFree = func(string) (uint64, error) { return 0, nil }
	for range 3 {
		ts.alertTick()
	}
	requireTrue(t, !ts.firing(RuleDiskFree, ""), "disk_free is off")
}

// TestAlertLineWaitingForItsOpeningIsNotStuck: buyers who join before the
// opening wait with nobody admitted, as they should.
func TestAlertLineWaitingForItsOpeningIsNotStuck(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withManualAlerts())
	opens := ts.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	ts.createSale(t, newSaleSpec("later").with("opens_at", opens))
	ts.join(t, "later", "b1")
	eventually(t, 5*time.Second, "b1 waits", func() (bool, string) {
		q := ts.sale(t, "later").Queue
		return q.Waiting == 1, fmt.Sprintf("%+v", q)
	})
	for range int(AlertDefaults.LineStuck/alertInterval) + 3 {
		ts.alertTick()
	}
	requireEqual(t, ts.sale(t, "later").Queue.State, "pre_queue")
	requireTrue(t, !ts.firing(RuleLineStuck, "later"), "not stuck before the opening")
}

// TestAlertSlowFailingTrafficStaysFiring: at a few requests a second, all
// failing, the recent ticks alone are too few to judge; the alert stays
// firing instead of resolving and firing again.
func TestAlertSlowFailingTrafficStaysFiring(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withManualAlerts())
	ts.srv.alerts.diskFree = func(string) (uint64, error) { return 1 << 50, nil }
	perTick := alertMinRequests/alertResolveTicks - 2 // too few for the resolve window, enough for the whole
	for range 20 {
		for range perTick {
			ts.srv.m.request("/v1/sales", 503, time.Millisecond)
		}
		ts.alertTick()
	}
	requireTrue(t, ts.firing(RuleHTTP5xx, ""), "fires")
	_, hist := ts.srv.alerts.view()
	requireEqual(t, len(hist), 1, "fired once, never resolved meanwhile: %+v", hist)
}
