package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"onsale/actors"
)

// TestDashboardLoad: rates and means come from the difference of two marks.
func TestDashboardLoad(t *testing.T) {
	s := New(Config{AdminToken: "a", SigningKey: []byte("k")})
	d := s.dash
	t0 := time.Now()
	prev := dashMark{at: t0, req: 100, cerr: 10, serr: 1, pay: 4, payNs: int64(40 * time.Millisecond), bat: 50, fsNs: int64(100 * time.Millisecond)}
	cur := dashMark{at: t0.Add(2 * time.Second), req: 300, cerr: 14, serr: 3, pay: 6, payNs: int64(60 * time.Millisecond), bat: 60, fsNs: int64(120 * time.Millisecond)}
	l := d.load(prev, cur)
	want := dashLoad{RequestsPerS: 100, ClientErrorsPerS: 2, ServerErrorsPerS: 1, PaymentMs: 10, FsyncMs: 2, BatchesPerS: 5}
	if l != want {
		t.Fatalf("load = %+v, want %+v", l, want)
	}
	if z := d.load(cur, cur); z != (dashLoad{}) {
		t.Fatalf("load over no time = %+v, want zeros", z)
	}
	// Requests and batches move the totals.
	s.m.request("/healthz", 200, time.Millisecond)
	s.m.request("/x", 404, time.Millisecond)
	s.m.request("/x", 503, time.Millisecond)
	s.m.OnBatch(10, 100, 3*time.Millisecond)
	m := d.mark()
	if m.req != 3 || m.cerr != 1 || m.serr != 1 || m.bat != 1 || m.fsNs != int64(3*time.Millisecond) {
		t.Fatalf("mark after 3 requests and a batch = %+v", m)
	}
}

// TestDashboardLoginRateLimit: a flood of wrong tokens from one address is
// cut off with 429 and Retry-After, while the operator at another address
// still logs in.
func TestDashboardLoginRateLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	form := func(c *http.Client, tok string) *http.Response {
		resp, err := c.Post(ts.base+"/dashboard/login", "application/x-www-form-urlencoded",
			strings.NewReader(url.Values{"token": {tok}}.Encode()))
		requireNoErr(t, err, "login")
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	limited := 0
	for i := 0; i < 300; i++ {
		resp := form(ts.c, "wrong")
		switch resp.StatusCode {
		case 401:
		case 429:
			limited++
			requireTrue(t, resp.Header.Get("Retry-After") != "", "429 without Retry-After")
		default:
			t.Fatalf("wrong token: status %d", resp.StatusCode)
		}
	}
	requireTrue(t, limited >= 300-loginBurst-5, "only %d of 300 wrong tokens were rate limited", limited)
	requireEqual(t, form(ts.c, testAdminToken).StatusCode, 429, "the flooding address is limited even with the right token")

	// The operator elsewhere: another loopback address.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	requireEqual(t, form(other, testAdminToken).StatusCode, 200, "the operator at another address logs in")
}

// TestDashboardFrameOncePerTick: the frame of a tick is made once, by the
// first caller, and the same bytes go to every later caller of that tick;
// the next tick makes the next frame, with rates from the one before.
func TestDashboardFrameOncePerTick(t *testing.T) {
	s := New(Config{AdminToken: "a", SigningKey: []byte("k")})
	d := s.dash
	t0 := time.Now().Truncate(dashboardInterval)
	a := d.frame(t0.Add(10 * time.Millisecond))
	b := d.frame(t0.Add(dashboardInterval - time.Millisecond))
	requireTrue(t, &a[0] == &b[0], "one tick, one frame shared")
	requireEqual(t, d.frames.made.Load(), int64(1), "made once")
	requireTrue(t, strings.HasPrefix(string(a), "data: {") && strings.HasSuffix(string(a), "}\n\n"), "an SSE event: %q", a)
	c := d.frame(t0.Add(dashboardInterval))
	requireTrue(t, &c[0] != &a[0], "the next tick makes a new frame")
	requireEqual(t, d.frames.made.Load(), int64(2))
	late := d.frame(t0.Add(time.Millisecond))
	requireTrue(t, &late[0] == &c[0], "a caller behind the clock gets the newest frame")
	requireEqual(t, d.frames.made.Load(), int64(2))
}

// TestDashboardStreamsShareFrames: two open dashboards get the same bytes
// on each tick, made once for both.
func TestDashboardStreamsShareFrames(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	session := ts.dashboardLogin(t)
	open := func() (*bufio.Reader, func()) { return ts.dashboardStream(t, session) }
	made := &ts.srv.dash.frames.made
	// Both streams open within one tick, unless the clock crosses a tick
	// boundary meanwhile: then once more, from the start of a tick.
	for attempt := 0; ; attempt++ {
		requireTrue(t, attempt < 3, "the streams never opened within one tick")
		if attempt > 0 {
			next := time.Now().Truncate(dashboardInterval).Add(dashboardInterval)
			time.Sleep(time.Until(next) + 20*time.Millisecond)
		}
		tick := time.Now().Truncate(dashboardInterval)
		m0 := made.Load()
		a, closeA := open()
		b, closeB := open()
		first := [2]string{readEvent(t, a), readEvent(t, b)}
		if !time.Now().Truncate(dashboardInterval).Equal(tick) {
			closeA()
			closeB()
			continue
		}
		requireEqual(t, first[0], first[1], "two streams, one tick: the same bytes")
		// At most: streams of an earlier attempt may have made it.
		requireTrue(t, made.Load()-m0 <= 1, "made once for both, not %d times", made.Load()-m0)
		// Both wake at the next tick boundary and share its frame.
		second := [2]string{readEvent(t, a), readEvent(t, b)}
		requireEqual(t, second[0], second[1], "the next tick: the same bytes")
		requireTrue(t, made.Load()-m0 <= 2, "a frame per tick, not per stream: %d made", made.Load()-m0)
		closeA()
		closeB()
		return
	}
}

// dashboardLogin logs in to the dashboard and returns the session cookie.
func (ts *testServer) dashboardLogin(t testing.TB) *http.Cookie {
	t.Helper()
	r := ts.do(t, "POST", "/dashboard/login", url.Values{"token": {testAdminToken}}.Encode(),
		hdr{"Content-Type", "application/x-www-form-urlencoded"})
	requireStatus(t, r, 200, "login")
	cookies := (&http.Response{Header: r.Header}).Cookies()
	requireEqual(t, len(cookies), 1, "one session cookie")
	return cookies[0]
}

// dashboardStream opens the dashboard's event stream; read frames with
// readEvent, and close it with the function returned.
func (ts *testServer) dashboardStream(t testing.TB, session *http.Cookie) (*bufio.Reader, func()) {
	t.Helper()
	req, err := http.NewRequest("GET", ts.base+"/dashboard/events", nil)
	requireNoErr(t, err)
	req.AddCookie(session)
	resp, err := ts.c.Do(req)
	requireNoErr(t, err)
	requireEqual(t, resp.StatusCode, 200)
	return bufio.NewReader(resp.Body), func() { requireNoErr(t, resp.Body.Close(), "close stream") }
}

// TestDashboardPageCharts: the dashboard page carries its charts' library
// inline (nothing fetched from the network) and a container per chart.
func TestDashboardPageCharts(t *testing.T) {
	page := string(dashboardPage)
	js, _, _ := ChartLibrary()
	requireTrue(t, strings.Contains(page, js), "the page embeds uPlot")
	requireTrue(t, !strings.Contains(page, "<!--CHARTS-->"), "the marker is replaced")
	for _, id := range []string{"c-load", "c-pay", "c-line", "c-seats", "c-log", "c-p99"} {
		requireTrue(t, strings.Contains(page, `id="`+id+`"`), "a chart %s", id)
	}
	for _, ext := range []string{`src="http`, `href="http`, "src='http"} {
		requireTrue(t, !strings.Contains(page, ext), "the page loads nothing from the network (%s)", ext)
	}
}

// TestDashboardPauseResume: a logged-in operator pauses and resumes a sale
// from the dashboard with the session's CSRF token; without the session,
// or without (or with a wrong) token, nothing changes.
func TestDashboardPauseResume(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	login := ts.do(t, "POST", "/dashboard/login", url.Values{"token": {testAdminToken}}.Encode(),
		hdr{"Content-Type", "application/x-www-form-urlencoded"})
	requireStatus(t, login, 200, "login")
	ck := (&http.Response{Header: login.Header}).Cookies()[0]
	session := hdr{"Cookie", ck.Name + "=" + ck.Value}

	requireError(t, ts.do(t, "GET", "/dashboard/csrf", nil), 401, "unauthorized", "no session, no token")
	var tok struct {
		Token string `json:"token"`
	}
	r := ts.do(t, "GET", "/dashboard/csrf", nil, session)
	requireStatus(t, r, 200, "csrf token")
	r.decode(t, &tok)
	requireTrue(t, len(tok.Token) == 64, "a token: %q", tok.Token)

	requireError(t, ts.do(t, "POST", "/dashboard/sales/s/pause", nil, hdr{"X-CSRF-Token", tok.Token}), 401, "unauthorized", "no session")
	requireError(t, ts.do(t, "POST", "/dashboard/sales/s/pause", nil, session), 403, "forbidden", "no token")
	requireError(t, ts.do(t, "POST", "/dashboard/sales/s/pause", nil, session, hdr{"X-CSRF-Token", strings.Repeat("0", 64)}), 403, "forbidden", "wrong token")
	requireEqual(t, ts.sale(t, "s").Queue.State != "paused", true, "refused actions changed nothing")

	requireStatus(t, ts.do(t, "POST", "/dashboard/sales/s/pause", nil, session, hdr{"X-CSRF-Token", tok.Token}), 200, "pause")
	requireEqual(t, ts.sale(t, "s").Queue.State, "paused")
	requireStatus(t, ts.do(t, "POST", "/dashboard/sales/s/resume", nil, session, hdr{"X-CSRF-Token", tok.Token}), 200, "resume")
	requireTrue(t, ts.sale(t, "s").Queue.State != "paused", "resumed")
	requireError(t, ts.do(t, "POST", "/dashboard/sales/nope/pause", nil, session, hdr{"X-CSRF-Token", tok.Token}), 404, actors.CodeNotFound, "unknown sale")
}

// TestDashboardLogout: logging out takes the session's CSRF token, like
// any action, and answers with the cookie removed; the browser that drops
// it sees the login page again.
func TestDashboardLogout(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ck := ts.dashboardLogin(t)
	session := hdr{"Cookie", ck.Name + "=" + ck.Value}
	var tok struct {
		Token string `json:"token"`
	}
	r := ts.do(t, "GET", "/dashboard/csrf", nil, session)
	requireStatus(t, r, 200, "csrf token")
	r.decode(t, &tok)

	requireError(t, ts.do(t, "POST", "/dashboard/logout", nil), 401, "unauthorized", "no session")
	requireError(t, ts.do(t, "POST", "/dashboard/logout", nil, session), 403, "forbidden", "no token: another site cannot log an operator out")
	r = ts.do(t, "POST", "/dashboard/logout", nil, session, hdr{"X-CSRF-Token", tok.Token})
	requireStatus(t, r, 200, "logout")
	cookies := (&http.Response{Header: r.Header}).Cookies()
	requireEqual(t, len(cookies), 1, "the session cookie, removed")
	requireTrue(t, cookies[0].Name == ck.Name && cookies[0].Value == "" && cookies[0].Expires.Before(time.Now()), "removed: %+v", cookies[0])
	page := ts.do(t, "GET", "/dashboard", nil)
	requireTrue(t, string(page.Body) == string(loginPage), "without the cookie, the login page")
}
