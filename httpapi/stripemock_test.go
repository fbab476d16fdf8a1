package httpapi

// The Stripe gateway against stripe-mock, Stripe's own mock of its API built
// from its OpenAPI spec: every request the gateway makes must be one the
// API accepts (paths, parameters, types), through the real client library,
// with our idempotency keys. stripe-mock is stateless (a confirmed intent
// comes back requires_payment_method, metadata empty), so outcomes are
// tested against the fake in stripe_test.go, not here.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"go/build"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"onsale/actors"
)

// stripeMockStartMax is how long stripe-mock may take to load its spec and
// listen: about a second here.
const stripeMockStartMax = 30 * time.Second

// stripeMockInstall is how CI installs it (.ci/run).
const stripeMockInstall = "go install github.com/stripe/stripe-mock@v0.203.0"

// findStripeMock finds the stripe-mock binary on PATH or where go install
// puts it.
func findStripeMock() (string, bool) {
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, true
	}
	dirs := []string{os.Getenv("GOBIN")}
	for _, gp := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(gp, "bin"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "stripe-mock")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
	}
	return "", false
}

// startStripeMock runs stripe-mock on loopback ports of its choosing (both
// HTTP and HTTPS given, or it would open HTTPS on every interface at
// 12112) and answers its HTTP base URL. Without stripe-mock the test is
// skipped, except in CI, which installs it.
func startStripeMock(t testing.TB) string {
	t.Helper()
	bin, ok := findStripeMock()
	if !ok {
		if os.Getenv("CI") == "true" {
			t.Fatalf("stripe-mock is not installed; CI must install it (%s)", stripeMockInstall)
		}
		t.Skipf("stripe-mock is not installed; to run this test: %s", stripeMockInstall)
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	requireNoErr(t, err, "stripe-mock stdout")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	requireNoErr(t, cmd.Start(), "start stripe-mock")
	exited := make(chan struct{})
	addr := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		const prefix = "Listening for HTTP at address: "
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				select {
				case addr <- a:
				default:
				}
			}
		}
		if err := cmd.Wait(); err != nil && !strings.Contains(err.Error(), "killed") {
			t.Logf("stripe-mock: %v: %s", err, stderr.String())
		}
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("stop stripe-mock: %v", err)
		}
		<-exited
	})
	select {
	case a := <-addr:
		return "http://" + a
	case <-exited:
		t.Fatalf("stripe-mock exited before it listened: %s", stderr.String())
	case <-time.After(stripeMockStartMax):
		t.Fatalf("stripe-mock did not listen within %s", stripeMockStartMax)
	}
	return ""
}

// stripeCall is one request the gateway made, as the recording proxy saw it.
type stripeCall struct {
	Method, Path, Query, IdemKey string
	Form                         url.Values
	Status                       int
}

// recordingProxy stands between the gateway and stripe-mock and keeps every
// request and the status stripe-mock answered it with.
type recordingProxy struct {
	mu    sync.Mutex
	calls []stripeCall
}

func (p *recordingProxy) start(t testing.TB, target string) string {
	u, err := url.Parse(target)
	requireNoErr(t, err)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		form, _ := url.ParseQuery(string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		rp.ServeHTTP(rec, r)
		p.mu.Lock()
		p.calls = append(p.calls, stripeCall{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
			IdemKey: r.Header.Get("Idempotency-Key"), Form: form, Status: rec.status})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// take returns the calls recorded since the last take.
func (p *recordingProxy) take() []stripeCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls
	p.calls = nil
	return c
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// TestStripeAgainstStripeMock: charge, lookup and refund, first with the
// PaymentIntent id remembered from the charge, then as after a restart
// (found by search), are each accepted by the API as stripe-mock knows it.
func TestStripeAgainstStripeMock(t *testing.T) {
	t.Parallel()
	proxy := &recordingProxy{}
	base := proxy.start(t, startStripeMock(t))
	gw, err := NewStripe(StripeConfig{Key: testStripeKey, APIBase: base, Timeout: 10 * time.Second})
	requireNoErr(t, err)
	ctx := context.Background()
	p := actors.Payment{Sale: "final", HoldID: "h_AAEAAZZmuB6tY6V_lpimKQ", OrderID: "o_AAEAAdKiAWrjVyiLlRlNnw",
		AmountCents: 5000, Currency: "usd", Token: "pm_card_visa"}

	one := func(what string, want stripeCall) {
		t.Helper()
		calls := proxy.take()
		requireEqual(t, len(calls), 1, "%s: one request: %+v", what, calls)
		c := calls[0]
		requireEqual(t, [3]any{c.Method, c.Path, c.Status}, [3]any{want.Method, want.Path, 200}, "%s accepted: %+v", what, c)
		requireEqual(t, c.IdemKey, want.IdemKey, "%s: idempotency key", what)
		for k, v := range want.Form {
			requireEqual(t, c.Form[k], v, "%s: %s", what, k)
		}
	}

	// stripe-mock answers every confirm with its fixture's status,
	// requires_payment_method: the gateway calls that a decline.
	err = gw.Charge(ctx, p)
	requireTrue(t, errors.Is(err, ErrDeclined), "stripe-mock's fixture status is a decline: %v", err)
	one("charge", stripeCall{Method: "POST", Path: "/v1/payment_intents", IdemKey: p.ChargeKey(), Form: url.Values{
		"amount": {"5000"}, "currency": {"usd"}, "payment_method": {"pm_card_visa"}, "confirm": {"true"},
		"payment_method_types[0]": {"card"}, "metadata[order_id]": {p.OrderID}, "metadata[hold_id]": {p.HoldID},
		"metadata[sale_id]": {"final"},
	}})

	st, err := gw.Lookup(ctx, p)
	requireNoErr(t, err, "lookup")
	requireEqual(t, st, actors.ChargeNone, "requires_payment_method took no money")
	calls := proxy.take()
	requireEqual(t, len(calls), 1, "lookup by the remembered id: %+v", calls)
	requireTrue(t, calls[0].Method == "GET" && strings.HasPrefix(calls[0].Path, "/v1/payment_intents/pi_") &&
		calls[0].Status == 200 && strings.Contains(calls[0].Query, "expand"), "retrieve: %+v", calls[0])

	requireNoErr(t, gw.Refund(ctx, p), "refund")
	one("refund", stripeCall{Method: "POST", Path: "/v1/refunds", IdemKey: p.RefundKey(), Form: url.Values{
		"reason": {"requested_by_customer"}, "metadata[order_id]": {p.OrderID},
	}})

	// As after a restart: nothing remembered, so the intent is searched for
	// by its metadata.
	fresh, err := NewStripe(StripeConfig{Key: testStripeKey, APIBase: base, Timeout: 10 * time.Second})
	requireNoErr(t, err)
	_, err = fresh.Lookup(ctx, p)
	requireNoErr(t, err, "lookup after a restart")
	calls = proxy.take()
	requireEqual(t, len(calls), 2, "search, then retrieve: %+v", calls)
	requireEqual(t, [3]any{calls[0].Method, calls[0].Path, calls[0].Status}, [3]any{"GET", "/v1/payment_intents/search", 200}, "search: %+v", calls[0])
	q, _ := url.ParseQuery(calls[0].Query)
	requireEqual(t, q.Get("query"), "metadata['order_id']:'"+p.OrderID+"'", "search query")
	requireTrue(t, calls[1].Method == "GET" && calls[1].Status == 200, "retrieve: %+v", calls[1])

	fresh2, err := NewStripe(StripeConfig{Key: testStripeKey, APIBase: base, Timeout: 10 * time.Second})
	requireNoErr(t, err)
	requireNoErr(t, fresh2.Refund(ctx, p), "refund after a restart")
	calls = proxy.take()
	requireEqual(t, len(calls), 2, "search, then refund: %+v", calls)
	requireEqual(t, [2]any{calls[0].Path, calls[0].Status}, [2]any{"/v1/payment_intents/search", 200})
	requireEqual(t, [4]any{calls[1].Method, calls[1].Path, calls[1].Status, calls[1].IdemKey},
		[4]any{"POST", "/v1/refunds", 200, p.RefundKey()}, "refund: %+v", calls[1])
}
