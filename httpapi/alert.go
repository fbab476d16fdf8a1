package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"syscall"
	"time"

	"onsale/actors"
)

// Alerts: rules over the server's own figures, evaluated every
// alertInterval. A rule's condition must hold for its For before the alert
// fires; it resolves once the value is back past a lower threshold (the
// threshold times alertResolveRatio) for alertHoldDown, so that a value
// hovering at the threshold does not flap. Every transition is logged, shown
// on the dashboard, exported as onsale_alert and, with a webhook, POSTed.
const (
	alertInterval = time.Second
	// alertWindowTicks is how many ticks rates and quantiles are taken
	// over: long enough for a p99 to mean something at a few requests per
	// second, short enough that an alert resolves a few seconds after its
	// cause ends.
	alertWindowTicks = 5
	// alertResolveTicks is the shorter window an alert that fires is
	// judged on to resolve: the cause gone, it resolves within these ticks
	// plus alertHoldDown, not after the whole window has forgotten it.
	alertResolveTicks = 2
	// alertResolveRatio: an alert above its threshold resolves below
	// threshold×ratio; one below it (free disk) above threshold÷ratio.
	alertResolveRatio = 0.8
	// alertHoldDown is how long the value must stay on the good side of
	// the resolve threshold before the alert resolves.
	alertHoldDown = 2 * time.Second
	// alertHistoryMax is how many transitions the dashboard keeps.
	alertHistoryMax = 100
	// alertKeysMax bounds the alerts tracked at once: one per rule, plus
	// one per sale for the per-sale rule.
	alertKeysMax = 10_000
)

// Rule names, as in onsale_alert{rule=...} and webhook payloads.
const (
	RuleHTTP5xx        = "http_5xx_rate"
	RuleHoldP99        = "hold_p99"
	RulePaymentErrors  = "payment_error_rate"
	RulePaymentP99     = "payment_p99"
	RuleLineStuck      = "line_stuck"
	RuleFsyncP99       = "log_fsync_p99"
	RuleDiskFree       = "disk_free"
	RuleRateLimited    = "rate_limited_share"
	RuleClusterMember  = "cluster_member_down"
	alertStateFiring   = "firing"
	alertStateResolved = "resolved"
)

// What the rules read.
const (
	alertMinRequests = 20 // a share of fewer requests in the window is noise
	alertMinPayments = 5  // likewise for gateway calls
	holdRoute        = "/v1/sales/{sale}/holds"
	diskFreeUnit     = 1 << 20 // --alert-disk-free is in MiB
)

// AlertOptions are the thresholds; zero fields take the defaults, a
// negative one turns its rule off.
type AlertOptions struct {
	Webhook       string        // POST every transition here as JSON; "" for none
	DashboardURL  string        // the link put in webhook payloads
	HTTP5xxRate   float64       // share of requests answered 5xx
	HoldP99       time.Duration // p99 of placing a hold
	PaymentErrors float64       // share of gateway calls that fail
	PaymentP99    time.Duration // p99 of a gateway call
	LineStuck     time.Duration // people wait, nobody is admitted, this long
	FsyncP99      time.Duration // p99 of a log write and fsync
	DiskFreeMiB   float64       // free space in the data directory, MiB
	RateLimited   float64       // share of requests refused 429
	// ClusterLag is how many log entries a cluster member may trail the
	// leader's commit before it counts as down.
	ClusterLag float64

	// Tests: manual makes the server evaluate only when the test calls
	// tick; backoffMax caps the webhook's retry interval instead of
	// webhookBackoffMax.
	manual     bool
	backoffMax time.Duration
}

// Defaults of AlertOptions: quiet on a healthy on-sale, loud within seconds
// when buyers are hurt.
var AlertDefaults = AlertOptions{
	HTTP5xxRate:   0.05,
	HoldP99:       500 * time.Millisecond,
	PaymentErrors: 0.2,
	PaymentP99:    3 * time.Second,
	LineStuck:     30 * time.Second,
	FsyncP99:      100 * time.Millisecond,
	DiskFreeMiB:   1024,
	RateLimited:   0.3,
	ClusterLag:    10_000,
}

func (o AlertOptions) withDefaults() AlertOptions {
	d := AlertDefaults
	pick := func(v, def float64) float64 {
		if v == 0 {
			return def
		}
		return v
	}
	pickD := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	o.HTTP5xxRate = pick(o.HTTP5xxRate, d.HTTP5xxRate)
	o.HoldP99 = pickD(o.HoldP99, d.HoldP99)
	o.PaymentErrors = pick(o.PaymentErrors, d.PaymentErrors)
	o.PaymentP99 = pickD(o.PaymentP99, d.PaymentP99)
	o.LineStuck = pickD(o.LineStuck, d.LineStuck)
	o.FsyncP99 = pickD(o.FsyncP99, d.FsyncP99)
	o.DiskFreeMiB = pick(o.DiskFreeMiB, d.DiskFreeMiB)
	o.RateLimited = pick(o.RateLimited, d.RateLimited)
	o.ClusterLag = pick(o.ClusterLag, d.ClusterLag)
	return o
}

// Alert is one transition, or an alert firing now.
type Alert struct {
	ID        uint64  `json:"id"` // transitions are numbered from 1, in order
	Rule      string  `json:"rule"`
	State     string  `json:"state"` // firing or resolved
	Sale      string  `json:"sale,omitempty"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit"`
	StartedAt string  `json:"started_at"`         // when the condition began
	At        string  `json:"at"`                 // when this transition happened
	EndedAt   string  `json:"ended_at,omitempty"` // resolved: when
}

// alertState is one rule (and sale) between ticks. Pure: step decides from
// the time and the value only.
type alertState struct {
	pending time.Time // when the condition began holding; zero if not
	firing  bool
	clear   time.Time // firing: when the value went past the resolve threshold; zero if not
}

// step moves the state on by one observation; it says whether the alert
// fired or resolved now. bad: the condition holds; good: the value is past
// the resolve threshold (bad and good are never both true; neither is the
// band between).
func (st *alertState) step(now time.Time, bad, good bool, hold time.Duration) (fired, resolved bool) {
	if !st.firing {
		if !bad {
			st.pending = time.Time{}
			return false, false
		}
		if st.pending.IsZero() {
			st.pending = now
		}
		if now.Sub(st.pending) >= hold {
			st.firing, st.clear = true, time.Time{}
			return true, false
		}
		return false, false
	}
	if !good {
		st.clear = time.Time{}
		return false, false
	}
	if st.clear.IsZero() {
		st.clear = now
	}
	if now.Sub(st.clear) >= alertHoldDown {
		*st = alertState{}
		return false, true
	}
	return false, false
}

// alertKey names one alert.
type alertKey struct{ rule, sale string }

// observation is one rule's value at a tick.
type observation struct {
	key       alertKey
	value     float64
	threshold float64
	below     bool          // fires when the value is below the threshold
	hold      time.Duration // the rule's For
	unit      string
	known     bool // false: too few samples to judge; never fires
	// recent is the value over alertResolveTicks, which a firing alert
	// resolves on; recentKnown as known.
	recent      float64
	recentKnown bool
}

// alerter evaluates the rules. Its figures and states are owned by its
// goroutine (or the test calling tick); active and history are shared with
// readers under mu.
type alerter struct {
	s    *Server
	o    AlertOptions
	dir  string
	log  *slog.Logger
	hook *webhook // nil without --alert-webhook
	// diskFree reads the data directory's free bytes; tests replace it.
	diskFree func(dir string) (uint64, error)
	// membersDown counts the cluster members this node sees down, if it
	// can judge (see cluster.membersDown); nil on a single node. Tests
	// replace it.
	membersDown func(lag uint64) (int, bool)

	reqs, serrs, limited, pays, payErrs *counterWindow
	holdLat, payLat, fsyncLat           *histWindow
	stuck                               map[string]lineMark // by sale
	diskErr                             string              // the last statfs error logged; "" after a success
	states                              map[alertKey]*alertState

	mu      sync.Mutex
	seq     uint64             // guarded by mu
	active  map[alertKey]Alert // guarded by mu
	history []Alert            // guarded by mu; the last alertHistoryMax, oldest first
	onTrans func(Alert)        // tests: told of each transition, under mu
}

// lineMark is a sale's admissions at the last tick.
type lineMark struct{ total int64 }

func newAlerter(s *Server, o AlertOptions, dir string) *alerter {
	m := s.m
	a := &alerter{
		s: s, o: o.withDefaults(), dir: dir, log: s.log, diskFree: statfsFree,
		reqs:     newCounterWindow(m.totals.requests.Load),
		serrs:    newCounterWindow(m.totals.serverErrors.Load),
		limited:  newCounterWindow(func() int64 { return int64(m.rateLimited.Get()) }),
		pays:     newCounterWindow(m.totals.payments.Load),
		payErrs:  newCounterWindow(func() int64 { return int64(m.paymentErrors.Get()) }),
		holdLat:  newHistWindow(m.routeLat.of(holdRoute), alertWindowTicks),
		payLat:   newHistWindow(&m.livePayment, alertWindowTicks),
		fsyncLat: newHistWindow(&m.liveFsync, alertWindowTicks),
		stuck:    map[string]lineMark{},
		states:   map[alertKey]*alertState{},
		active:   map[alertKey]Alert{},
	}
	if a.o.Webhook != "" {
		a.hook = newWebhook(a.o.Webhook, m, s.log)
		if a.o.backoffMax > 0 {
			a.hook.backMin, a.hook.backMax = min(a.hook.backMin, a.o.backoffMax), a.o.backoffMax
		}
	}
	return a
}

func statfsFree(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %q: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// run ticks until closing is closed.
func (a *alerter) run(closing <-chan struct{}) {
	if a.hook != nil {
		go a.hook.run(closing)
	}
	if a.o.manual {
		return
	}
	t := time.NewTicker(alertInterval)
	defer t.Stop()
	for {
		select {
		case <-closing:
			return
		case <-t.C:
			a.tick()
		}
	}
}

// tick takes the figures and steps every rule.
func (a *alerter) tick() {
	now := a.s.cfg.Now()
	for _, w := range []*counterWindow{a.reqs, a.serrs, a.limited, a.pays, a.payErrs} {
		w.tick()
	}
	for _, w := range []*histWindow{a.holdLat, a.payLat, a.fsyncLat} {
		w.tick()
	}
	obs := a.observe()
	seen := make(map[alertKey]bool, len(obs))
	for _, o := range obs {
		seen[o.key] = true
		a.step(now, o)
	}
	// A sale that is gone takes its alerts with it.
	for k := range a.states {
		if !seen[k] {
			a.step(now, observation{key: k, hold: 0})
			if !a.states[k].firing {
				delete(a.states, k)
			}
		}
	}
}

func (a *alerter) observe() []observation {
	o := a.o
	var obs []observation
	share := func(rule string, num, den *counterWindow, min int64, thr float64) {
		if thr < 0 {
			return
		}
		ratio := func(ticks int) (float64, bool) {
			n := den.sum(ticks)
			if n == 0 {
				return 0, false
			}
			return float64(num.sum(ticks)) / float64(n), n >= min
		}
		v, known := ratio(alertWindowTicks)
		r, rknown := ratio(alertResolveTicks)
		obs = append(obs, observation{key: alertKey{rule: rule}, value: v, threshold: thr, hold: alertFor[rule], unit: "share", known: known,
			recent: r, recentKnown: rknown})
	}
	share(RuleHTTP5xx, a.serrs, a.reqs, alertMinRequests, o.HTTP5xxRate)
	share(RuleRateLimited, a.limited, a.reqs, alertMinRequests, o.RateLimited)
	share(RulePaymentErrors, a.payErrs, a.pays, alertMinPayments, o.PaymentErrors)
	p99 := func(rule string, w *histWindow, thr time.Duration) {
		if thr < 0 {
			return
		}
		v, n := w.quantile(0.99, alertWindowTicks)
		r, rn := w.quantile(0.99, alertResolveTicks)
		obs = append(obs, observation{key: alertKey{rule: rule}, value: v, threshold: thr.Seconds(), hold: alertFor[rule], unit: "s", known: n > 0,
			recent: r, recentKnown: rn > 0})
	}
	p99(RuleHoldP99, a.holdLat, o.HoldP99)
	p99(RulePaymentP99, a.payLat, o.PaymentP99)
	p99(RuleFsyncP99, a.fsyncLat, o.FsyncP99)
	if o.DiskFreeMiB >= 0 {
		free, err := a.diskFree(a.dir)
		// Once per error, not once a second: the rule cannot judge
		// meanwhile, and the log must not fill the disk it watches.
		if err != nil && err.Error() != a.diskErr {
			a.log.Warn("alerts: cannot read free disk space; disk_free is not judged until it can", "err", err)
		}
		a.diskErr = ""
		if err != nil {
			a.diskErr = err.Error()
		}
		v := float64(free) / diskFreeUnit
		obs = append(obs, observation{key: alertKey{rule: RuleDiskFree}, value: v, threshold: o.DiskFreeMiB,
			below: true, hold: alertFor[RuleDiskFree], unit: "MiB", known: err == nil, recent: v, recentKnown: err == nil})
	}
	if o.ClusterLag >= 0 {
		down := a.membersDown
		if down == nil && a.s.cluster != nil {
			down = a.s.cluster.membersDown
		}
		if down != nil {
			n, known := down(uint64(o.ClusterLag))
			v := float64(n)
			obs = append(obs, observation{key: alertKey{rule: RuleClusterMember}, value: v, threshold: 0,
				hold: alertFor[RuleClusterMember], unit: "members", known: known, recent: v, recentKnown: known})
		}
	}
	if eng := a.s.eng.Load(); eng != nil && o.LineStuck >= 0 {
		sales := eng.Sales()
		marks := make(map[string]lineMark, len(sales))
		for _, s := range sales {
			q := s.Queue()
			prev, ok := a.stuck[s.ID()]
			marks[s.ID()] = lineMark{total: q.AdmittedTotal}
			moved := !ok || q.AdmittedTotal != prev.total
			// "queueing": people wait, and the sale is open (drawn), not
			// paused and not sold out; a line waiting for its opening is
			// "pre_queue" and not stuck.
			bad := q.State == "queueing" && q.Waiting > 0 && !moved
			v := 0.0
			if bad {
				v = float64(q.Waiting)
			}
			// A line is stuck once nobody was admitted for LineStuck:
			// the rule's For is the flag; value is who waits.
			obs = append(obs, observation{key: alertKey{rule: RuleLineStuck, sale: s.ID()}, value: v, threshold: 0, hold: o.LineStuck, unit: "waiting", known: true, recent: v, recentKnown: true})
		}
		a.stuck = marks
	}
	return obs
}

// alertFor is each rule's For: how long its condition must hold. Short,
// because a rule's value is already taken over alertWindowTicks.
var alertFor = map[string]time.Duration{
	RuleHTTP5xx:       3 * time.Second,
	RuleHoldP99:       5 * time.Second,
	RulePaymentErrors: 3 * time.Second,
	RulePaymentP99:    5 * time.Second,
	RuleFsyncP99:      5 * time.Second,
	RuleDiskFree:      0,
	RuleRateLimited:   10 * time.Second,
	// An election takes about a second; a member away for longer is gone.
	RuleClusterMember: 5 * time.Second,
}

func (a *alerter) step(now time.Time, o observation) {
	st := a.states[o.key]
	if st == nil {
		if len(a.states) >= alertKeysMax {
			return
		}
		st = &alertState{}
		a.states[o.key] = st
	}
	// bad judges the whole window; good (for a firing alert) the recent
	// ticks, or the whole window when they have too few samples to judge
	// (slow traffic, all failing, must not resolve); no samples at all are
	// never bad and always good.
	var isBad, isGood func(v float64) bool
	switch {
	case o.key.rule == RuleLineStuck:
		isBad, isGood = func(v float64) bool { return v > 0 }, func(v float64) bool { return v == 0 }
	case o.below:
		isBad = func(v float64) bool { return v < o.threshold }
		isGood = func(v float64) bool { return v >= o.threshold/alertResolveRatio }
	default:
		isBad = func(v float64) bool { return v > o.threshold }
		isGood = func(v float64) bool { return v <= o.threshold*alertResolveRatio }
	}
	bad := o.known && isBad(o.value)
	var good bool
	switch {
	case o.recentKnown:
		good = isGood(o.recent)
	case o.known:
		good = isGood(o.value)
	default:
		good = true
	}
	started := st.pending
	fired, resolved := st.step(now, bad, good, o.hold)
	switch {
	case fired:
		a.transition(Alert{Rule: o.key.rule, Sale: o.key.sale, State: alertStateFiring, Value: o.value, Threshold: o.threshold, Unit: o.unit,
			StartedAt: actors.FormatTime(startOr(started, now)), At: actors.FormatTime(now)}, o.key)
	case resolved:
		a.mu.Lock()
		was := a.active[o.key]
		a.mu.Unlock()
		// The value it resolved on.
		v := o.value
		if o.recentKnown {
			v = o.recent
		}
		was.State, was.Value, was.At, was.EndedAt = alertStateResolved, v, actors.FormatTime(now), actors.FormatTime(now)
		a.transition(was, o.key)
	}
}

func startOr(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// transition records one: numbered, logged, kept, exported and sent.
func (a *alerter) transition(al Alert, k alertKey) {
	a.mu.Lock()
	a.seq++
	al.ID = a.seq
	if al.State == alertStateFiring {
		a.active[k] = al
	} else {
		delete(a.active, k)
	}
	if len(a.history) == alertHistoryMax {
		copy(a.history, a.history[1:])
		a.history = a.history[:alertHistoryMax-1]
	}
	a.history = append(a.history, al)
	if a.onTrans != nil {
		a.onTrans(al)
	}
	a.mu.Unlock()
	lvl := slog.LevelWarn
	if al.State == alertStateResolved {
		lvl = slog.LevelInfo
	}
	a.log.Log(context.Background(), lvl, "alert "+al.State, "rule", al.Rule, "sale", al.Sale, "value", al.Value, "threshold", al.Threshold, "unit", al.Unit, "started_at", al.StartedAt)
	a.s.dash.invalidate()
	if a.hook != nil {
		a.hook.send(al, a.o.DashboardURL)
	}
}

// view is the alerts firing now, by rule and sale, and the history, oldest
// first.
func (a *alerter) view() (active, history []Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	active = make([]Alert, 0, len(a.active))
	for _, al := range a.active {
		active = append(active, al)
	}
	sort.Slice(active, func(i, j int) bool {
		if active[i].Rule != active[j].Rule {
			return active[i].Rule < active[j].Rule
		}
		return active[i].Sale < active[j].Sale
	})
	return active, append([]Alert{}, a.history...)
}
