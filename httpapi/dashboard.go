package httpapi

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

//go:embed pages/*.html
var pages embed.FS

var (
	buyerPage     = mustPage("pages/buyer.html")
	dashboardPage = withCharts(mustPage("pages/dashboard.html"))
	loginPage     = mustPage("pages/login.html")
)

func mustPage(name string) []byte {
	b, err := pages.ReadFile(name)
	if err != nil {
		panic("embedded page missing: " + name)
	}
	return b
}

// withCharts puts the embedded chart library (ChartLibrary) in the page
// where it says <!--CHARTS-->: the page needs nothing from the network.
func withCharts(page []byte) []byte {
	js, css, _ := ChartLibrary()
	return bytes.Replace(page, []byte("<!--CHARTS-->"), []byte("<style>"+css+"</style>\n<script>"+js+"</script>"), 1)
}

func servePage(ctx *fasthttp.RequestCtx, page []byte) {
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'")
	ctx.Response.Header.Set("X-Frame-Options", "DENY")
	ctx.SetBody(page)
}

// sessionTTL is how long a dashboard login lasts: an on-sale day.
const sessionTTL = 12 * time.Hour

const sessionCookie = "onsale_session"

// dashboard serves the operators' live page. A session is a cookie holding
// its expiry and an HMAC of it under the signing key, so no session table is
// kept.
type dashboard struct {
	s      *Server
	logins *limiter // login attempts per client address
	frames dashFrames

	// changed is closed, and replaced, when an alert fires or resolves:
	// streams then send a fresh frame at once instead of at the next tick.
	changedMu sync.Mutex
	changed   chan struct{} // guarded by changedMu
}

// dashFrames is the event-stream frame of the current tick, made by the
// first stream that asks for it and shared by all: the figures grow with
// the sales, so they are gathered and encoded once a tick, never per open
// dashboard. Safe for any goroutine.
type dashFrames struct {
	mu    sync.Mutex
	tick  time.Time // guarded by mu; the tick frame is of (time.Now truncated to dashboardInterval)
	frame []byte    // guarded by mu; "data: {...}\n\n"; shared, never changed; nil before the first
	prev  dashMark  // guarded by mu; the marks at frame, for the next frame's rates
	made  atomic.Int64

	// lat are the per-route latency windows, moved on once per tick by the
	// frame maker; latTick is the tick they were last moved on at.
	lat     *routeWindows // guarded by mu
	latTick time.Time     // guarded by mu
}

func newDashboard(s *Server) *dashboard {
	d := &dashboard{s: s, logins: newBurstLimiter(loginPerSecond, loginBurst), changed: make(chan struct{})}
	d.frames.lat = newRouteWindows(&s.m.routeLat)
	d.frames.latTick = time.Now().Truncate(dashboardInterval)
	return d
}

func (d *dashboard) session(exp int64) string {
	m := hmac.New(sha256.New, d.s.cfg.SigningKey)
	fmt.Fprintf(m, "dashboard-session:%d", exp)
	return strconv.FormatInt(exp, 10) + "." + hex.EncodeToString(m.Sum(nil))
}

func (d *dashboard) loggedIn(ctx *fasthttp.RequestCtx) bool {
	v := string(ctx.Request.Header.Cookie(sessionCookie))
	dot := strings.IndexByte(v, '.')
	if dot < 0 {
		return false
	}
	exp, err := strconv.ParseInt(v[:dot], 10, 64)
	if err != nil || exp <= d.s.cfg.Now().Unix() {
		return false
	}
	return hmac.Equal([]byte(v), []byte(d.session(exp)))
}

// csrf is the token the dashboard's own page sends with an action, in the
// X-CSRF-Token header: an HMAC of the session cookie, so only a page that
// could read the session's token (GET /dashboard/csrf, same origin) can
// act, on top of the cookie's SameSite=Strict.
func (d *dashboard) csrf(ctx *fasthttp.RequestCtx) string {
	m := hmac.New(sha256.New, d.s.cfg.SigningKey)
	m.Write([]byte("dashboard-csrf:"))
	m.Write(ctx.Request.Header.Cookie(sessionCookie))
	return hex.EncodeToString(m.Sum(nil))
}

// operator reports whether a request comes from a logged-in operator and
// carries the session's CSRF token, as every action must; if not, it has
// answered 401 or 403.
func (d *dashboard) operator(ctx *fasthttp.RequestCtx) bool {
	if !d.loggedIn(ctx) {
		fail(ctx, codeUnauthorized, "log in to the dashboard first")
		return false
	}
	if !hmac.Equal(ctx.Request.Header.Peek("X-CSRF-Token"), []byte(d.csrf(ctx))) {
		fail(ctx, codeForbidden, "the request lacks the dashboard's CSRF token: reload the dashboard and try again")
		return false
	}
	return true
}

// action pauses or resumes a sale for an operator (see operator).
func (d *dashboard) action(ctx *fasthttp.RequestCtx, saleID, what string) {
	if !d.operator(ctx) {
		return
	}
	if c := d.s.cluster; c != nil && !c.leading.Load() {
		// A follower's copy cannot pause anything: the leader decides.
		msg := "this node follows the cluster's leader; pause and resume from the leader's dashboard"
		if addr := c.node.HTTPAddr(c.node.Leader()); addr != "" {
			msg += " (node " + c.node.Leader() + ", http://" + addr + "/dashboard)"
		}
		fail(ctx, actors.CodeUnavailable, msg)
		return
	}
	eng := d.s.eng.Load()
	if eng == nil {
		fail(ctx, actors.CodeUnavailable, "the server is recovering; try again in a moment")
		return
	}
	sale, ok := eng.Sale(saleID)
	if !ok {
		fail(ctx, actors.CodeNotFound, fmt.Sprintf("no sale %q", saleID))
		return
	}
	r := sale.SetPaused(what == "pause")
	if r.Err == nil {
		d.s.log.Info("sale "+what+"d from the dashboard", "sale", saleID, "from", ctx.RemoteIP().String())
	}
	answer(ctx, r, 200, func() any { return saleBody(sale) })
}

func (d *dashboard) route(ctx *fasthttp.RequestCtx, parts []string) string {
	switch {
	case len(parts) == 1 && parts[0] == "csrf":
		if method(ctx, "GET") {
			if !d.loggedIn(ctx) {
				fail(ctx, codeUnauthorized, "log in to the dashboard first")
			} else {
				writeJSON(ctx, 200, map[string]string{"token": d.csrf(ctx)})
			}
		}
		return "/dashboard/csrf"
	case len(parts) == 3 && parts[0] == "sales" && (parts[2] == "pause" || parts[2] == "resume"):
		if method(ctx, "POST") {
			d.action(ctx, parts[1], parts[2])
		}
		return "/dashboard/sales/{sale}/" + parts[2]
	case len(parts) == 0:
		if method(ctx, "GET") {
			if d.loggedIn(ctx) {
				servePage(ctx, dashboardPage)
			} else {
				servePage(ctx, loginPage)
			}
		}
		return "/dashboard"
	case len(parts) == 1 && parts[0] == "login":
		if method(ctx, "POST") {
			d.login(ctx)
		}
		return "/dashboard/login"
	case len(parts) == 1 && parts[0] == "logout":
		if method(ctx, "POST") {
			d.logout(ctx)
		}
		return "/dashboard/logout"
	case len(parts) == 1 && parts[0] == "events":
		if method(ctx, "GET") {
			if !d.loggedIn(ctx) {
				fail(ctx, codeUnauthorized, "log in to the dashboard first")
			} else {
				d.events(ctx)
			}
		}
		return "/dashboard/events"
	}
	fail(ctx, actors.CodeNotFound, "no such resource")
	return "unknown"
}

// Login attempts per client address: enough for an operator who mistypes,
// far too few to guess a 192-bit token; each address has its own bucket, so
// a flood from one never locks out the operator at another.
const (
	loginBurst     = 10
	loginPerSecond = 0.2
)

func (d *dashboard) login(ctx *fasthttp.RequestCtx) {
	if !d.s.limit(ctx, d.logins, ctx.RemoteIP().String()) {
		return
	}
	tok := string(ctx.PostArgs().Peek("token"))
	if !equalToken(tok, d.s.cfg.AdminToken) {
		fail(ctx, codeUnauthorized, "that is not the admin token (printed at first start, or set with --admin-token)")
		return
	}
	exp := d.s.cfg.Now().Add(sessionTTL).Unix()
	var c fasthttp.Cookie
	c.SetKey(sessionCookie)
	c.SetValue(d.session(exp))
	c.SetPath("/dashboard")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetMaxAge(int(sessionTTL.Seconds()))
	ctx.Response.Header.SetCookie(&c)
	writeJSON(ctx, 200, map[string]string{"status": "logged in", "next": "/dashboard"})
}

// logout ends this browser's session: the cookie is removed, for a
// logged-in operator whose request carries the session's CSRF token (so
// that another site cannot log an operator out). Sessions are kept by no
// table: a copy of the cookie taken elsewhere stays valid until it
// expires (sessionTTL).
func (d *dashboard) logout(ctx *fasthttp.RequestCtx) {
	if !d.operator(ctx) {
		return
	}
	var c fasthttp.Cookie
	c.SetKey(sessionCookie)
	c.SetValue("")
	c.SetPath("/dashboard")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetExpire(fasthttp.CookieExpireDelete)
	ctx.Response.Header.SetCookie(&c)
	writeJSON(ctx, 200, map[string]string{"status": "logged out", "next": "/dashboard"})
}

// dashSale is one sale on the dashboard.
type dashSale struct {
	ID    string              `json:"id"`
	Name  string              `json:"name"`
	Queue actors.QueueSummary `json:"queue"`
	Zones []actors.ZoneCounts `json:"zones"`
	Stats actors.SaleStats    `json:"stats"`
}

// dashLoad is the server's load over the last interval.
type dashLoad struct {
	RequestsPerS     float64 `json:"requests_per_s"`
	ClientErrorsPerS float64 `json:"client_errors_per_s"`
	ServerErrorsPerS float64 `json:"server_errors_per_s"`
	PaymentMs        float64 `json:"payment_ms"` // mean gateway call
	PaymentsInFlight int64   `json:"payments_in_flight"`
	// PaymentsOwed counts payments whose outcome or refund is still to be
	// settled with the provider (retried in the background until done).
	PaymentsOwed int64   `json:"payments_owed"`
	FsyncMs      float64 `json:"fsync_ms"` // mean log write and fsync
	BatchesPerS  float64 `json:"batches_per_s"`
}

// dashMark is what a stream saw last, to turn totals into rates.
type dashMark struct {
	at                                     time.Time
	req, cerr, serr, pay, payNs, bat, fsNs int64
}

func (d *dashboard) mark() dashMark {
	t := &d.s.m.totals
	return dashMark{at: time.Now(), req: t.requests.Load(), cerr: t.clientErrors.Load(), serr: t.serverErrors.Load(),
		pay: t.payments.Load(), payNs: t.paymentNanos.Load(), bat: t.batches.Load(), fsNs: t.fsyncNanos.Load()}
}

// load is the rates between two marks.
func (d *dashboard) load(prev, cur dashMark) dashLoad {
	l := dashLoad{PaymentsInFlight: d.s.m.paymentInFlight.Load()}
	if f := d.s.m.refundsOwed.Load(); f != nil {
		l.PaymentsOwed = (*f)()
	}
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return l
	}
	l.RequestsPerS = float64(cur.req-prev.req) / secs
	l.ClientErrorsPerS = float64(cur.cerr-prev.cerr) / secs
	l.ServerErrorsPerS = float64(cur.serr-prev.serr) / secs
	l.BatchesPerS = float64(cur.bat-prev.bat) / secs
	if n := cur.pay - prev.pay; n > 0 {
		l.PaymentMs = float64(cur.payNs-prev.payNs) / float64(n) / 1e6
	}
	if n := cur.bat - prev.bat; n > 0 {
		l.FsyncMs = float64(cur.fsNs-prev.fsNs) / float64(n) / 1e6
	}
	return l
}

func (d *dashboard) snapshot(load dashLoad, routeP99 map[string]float64) []byte {
	out := struct {
		At    string     `json:"at"`
		Ready bool       `json:"ready"`
		Sales []dashSale `json:"sales"`
		Log   int64      `json:"log_records"`
		Load  dashLoad   `json:"load"`
		// RouteP99 is each route's p99 over the last dashLatencyTicks
		// ticks, in ms, for the routes that had requests in them.
		RouteP99 map[string]float64 `json:"route_p99_ms"`
		// Alerts firing now, and the last transitions, oldest first.
		Alerts  []Alert `json:"alerts"`
		History []Alert `json:"alert_history"`
	}{At: actors.FormatTime(d.s.cfg.Now()), Sales: []dashSale{}, Load: load, RouteP99: routeP99}
	out.Alerts, out.History = d.s.alerts.view()
	if eng := d.s.eng.Load(); eng != nil {
		out.Ready = true
		out.Log = int64(eng.LogSeq())
		for _, s := range eng.Sales() {
			out.Sales = append(out.Sales, dashSale{ID: s.ID(), Name: s.Def().Name, Queue: s.Queue(), Zones: s.Counts(), Stats: s.Stats()})
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Only strings, numbers and slices of them: a failure is a bug.
		panic(fmt.Sprintf("dashboard snapshot: %v", err))
	}
	return b
}

// invalidate makes the next frame fresh and wakes the streams: an alert
// changed.
func (d *dashboard) invalidate() {
	d.frames.mu.Lock()
	d.frames.tick = time.Time{}
	d.frames.mu.Unlock()
	d.changedMu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.changedMu.Unlock()
}

func (d *dashboard) changes() <-chan struct{} {
	d.changedMu.Lock()
	defer d.changedMu.Unlock()
	return d.changed
}

// dashboardInterval is how often the dashboard gets fresh figures.
const dashboardInterval = time.Second

// frame is the event-stream frame of the tick now falls in: the one made
// already, or a new one whose rates run from the previous frame. Callers
// that ask together wait for one making, not one each.
func (d *dashboard) frame(now time.Time) []byte {
	tick := now.Truncate(dashboardInterval)
	f := &d.frames
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.frame != nil && !tick.After(f.tick) {
		return f.frame
	}
	cur := d.mark()
	var load dashLoad
	if f.frame != nil {
		load = d.load(f.prev, cur)
	}
	// Once per tick, whoever makes its frame: a frame made again in the
	// same tick (an alert changed) finds the windows moved on already.
	if n := tick.Sub(f.latTick) / dashboardInterval; n > 0 {
		f.lat.advance(int(min(n, dashLatencyTicks+1)))
		f.latTick = tick
	}
	f.frame = fmt.Appendf(nil, "data: %s\n\n", d.snapshot(load, f.lat.p99Ms()))
	f.tick, f.prev = tick, cur
	f.made.Add(1)
	return f.frame
}

func (d *dashboard) events(ctx *fasthttp.RequestCtx) {
	done, closing := ctx.Done(), d.s.closing
	ctx.SetWriteDeadline(time.Now().Add(streamLifetimeMax + time.Minute))
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		end := time.Now().Add(streamLifetimeMax)
		// Every stream wakes on the same tick boundaries, so that the
		// first to wake makes the tick's frame and the others share it.
		t := time.NewTimer(dashboardInterval)
		defer t.Stop()
		for time.Now().Before(end) {
			now := time.Now()
			changed := d.changes()
			if _, err := w.Write(d.frame(now)); err != nil {
				return
			}
			if w.Flush() != nil {
				return
			}
			t.Reset(now.Truncate(dashboardInterval).Add(dashboardInterval).Sub(now))
			select {
			case <-done:
				return
			case <-closing:
				return
			case <-t.C:
			case <-changed:
			}
		}
	})
}
