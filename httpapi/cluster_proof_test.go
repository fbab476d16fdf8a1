package httpapi

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestClusterProof: a member's proof passes once, for the request it was
// made for; another client address, another body, another cluster's key
// or a time past the allowed skew fail it.
func TestClusterProof(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &cluster{proof: clusterProof("the admin token"), log: quiet}
	signed := func() *fasthttp.Request {
		req := fasthttp.AcquireRequest()
		req.Header.SetMethod("POST")
		req.SetRequestURI("/v1/sales/s/holds")
		req.Header.Set(hdrForwardedFor, "203.0.113.7")
		req.SetBodyString(`{"zone":"ga","quantity":1}`)
		c.sign(req)
		return req
	}
	check := func(req *fasthttp.Request, by *cluster) bool {
		var ctx fasthttp.RequestCtx
		req.CopyTo(&ctx.Request)
		return by.fromMember(&ctx)
	}
	requireTrue(t, check(signed(), c), "a signed request passes")

	req := signed()
	req.Header.Set(hdrForwardedFor, "198.51.100.1")
	requireTrue(t, !check(req, c), "another client's address fails")

	req = signed()
	req.SetBodyString(`{"zone":"ga","quantity":9}`)
	requireTrue(t, !check(req, c), "another body fails")

	req = signed()
	req.Header.SetMethod("PUT")
	requireTrue(t, !check(req, c), "another method fails")

	other := &cluster{proof: clusterProof("another token"), log: quiet}
	requireTrue(t, !check(signed(), other), "another cluster's key fails")

	// A proof made 10 minutes ago, valid but for its time.
	req = signed()
	old := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	req.Header.Set(hdrClusterProof, old+"."+c.proofMAC(old, req.Header.Method(), req.Header.Peek(hdrForwardedFor), req.Body()))
	requireTrue(t, !check(req, c), "a proof past the allowed skew fails")

	req = signed()
	req.Header.Del(hdrClusterProof)
	requireTrue(t, !check(req, c), "no proof fails")
	req.Header.Set(hdrClusterProof, "garbage")
	requireTrue(t, !check(req, c), "a malformed proof fails")
}

// TestClusterProofOverTheWire: a proof signed as a forwarded request is
// (the client's request copied, the client's address added) passes on
// the receiving member once it went through fasthttp's client and server.
func TestClusterProofOverTheWire(t *testing.T) {
	c := &cluster{proof: clusterProof("the admin token"), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if c.fromMember(ctx) {
			ctx.SetStatusCode(204)
		} else {
			ctx.SetStatusCode(403)
		}
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	hc := &fasthttp.HostClient{Addr: ln.Addr().String(), DisablePathNormalizing: true}
	for _, tc := range []struct{ method, uri, body string }{
		{"POST", "/v1/sales/s/holds", `{"zone":"ga","quantity":2}`},
		{"GET", "/v1/sales/s/queue/q_1?x=%2F%20y", ""},
		{"DELETE", "/v1/sales/s/queue/q_1", ""},
	} {
		var client fasthttp.Request // as the buyer sent it
		client.Header.SetMethod(tc.method)
		client.SetRequestURI(tc.uri)
		client.SetBodyString(tc.body)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		client.CopyTo(req)
		req.Header.Set(hdrForwardedBy, "n2")
		req.Header.Set(hdrForwardedFor, "203.0.113.7")
		c.sign(req)
		req.SetHost(ln.Addr().String())
		requireNoErr(t, hc.DoTimeout(req, resp, 5*time.Second), tc.method)
		requireEqual(t, resp.StatusCode(), 204, tc.method+" "+tc.uri)
	}
}

// TestConfirmedIsPerLeadership: a round that proved this node leads
// confirms answers made in the same leadership only. An answer made by an
// engine of an earlier leadership is refused even though the node leads
// again and its latest round succeeded.
func TestConfirmedIsPerLeadership(t *testing.T) {
	c := &cluster{confirm: newConfirmer()}
	c.epoch.Store(3) // leading, third leadership
	c.leading.Store(true)
	c.confirm.okAt, c.confirm.okOf = time.Now(), 3
	requireEqual(t, c.confirmed(3), true, "an answer of this leadership")
	requireEqual(t, c.confirmed(1), false, "an answer of an earlier leadership")

	// A round of an earlier leadership confirms nothing of this one: with
	// no round running, the wait ends at the deadline unconfirmed.
	c.confirm.okOf = 1
	requireEqual(t, c.confirmed(3), false, "an answer confirmed by an earlier leadership's round")
}

// TestWatchWritesStopsOnAStall: a Raft log write stalled past the limit
// stops the node with an error that says what to do; a shorter one, or
// none, does not.
func TestWatchWritesStopsOnAStall(t *testing.T) {
	var stalled atomic.Int64
	fatal := make(chan error, 1)
	c := &cluster{stop: make(chan struct{}), fatal: fatal}
	go c.watchWrites(200*time.Millisecond, func() time.Duration { return time.Duration(stalled.Load()) })
	defer close(c.stop)
	stalled.Store(int64(150 * time.Millisecond))
	select {
	case err := <-fatal:
		t.Fatalf("stopped on a stall under the limit: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	stalled.Store(int64(time.Second))
	select {
	case err := <-fatal:
		requireTrue(t, strings.Contains(err.Error(), "check the disk, then restart it"), "the error says what to do: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("a stall of 1 s past a 200 ms limit did not stop the node")
	}
}

// TestForwardFailureSpeaksToBuyers: a forward that failed is told in the
// buyer's terms, never in the client library's, and the advice fits the
// request: the same key for a keyed write, a check before a retry of one
// without a key.
func TestForwardFailureSpeaksToBuyers(t *testing.T) {
	closed := fmt.Errorf("wrapped: %w", fasthttp.ErrConnectionClosed)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fasthttp.ErrTimeout, "did not answer within"},
		{closed, "closed the connection"},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, "could not be reached"},
	} {
		got := forwardFailure(tc.err)
		requireTrue(t, strings.Contains(got, tc.want), "%v told as %q", tc.err, got)
		requireTrue(t, !strings.Contains(got, "make sure the server"), "%q passes on the library's advice", got)
	}
	var keyed, bare, get fasthttp.RequestCtx
	keyed.Request.Header.SetMethod("POST")
	keyed.Request.Header.Set("Idempotency-Key", "k1")
	bare.Request.Header.SetMethod("POST")
	get.Request.Header.SetMethod("GET")
	requireTrue(t, strings.Contains(maybeMade(&keyed), "same Idempotency-Key"), "keyed: %q", maybeMade(&keyed))
	requireTrue(t, strings.Contains(maybeMade(&bare), "check before you retry"), "no key: %q", maybeMade(&bare))
	requireTrue(t, !strings.Contains(maybeMade(&get), "may or may not"), "a read: %q", maybeMade(&get))
}
