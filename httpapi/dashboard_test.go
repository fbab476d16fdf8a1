package httpapi

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
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
