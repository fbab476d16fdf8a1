package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"onsale/actors"
)

// The HTTP tests run a real server (engine on a temporary directory, fasthttp
// on a 127.0.0.1 TCP listener) and talk to it with net/http over keep-alive
// connections, as a buyer's front end would.

const testAdminToken = "test-admin-token-0123456789"

// testClock is a clock that runs with real time and can be moved forward:
// expiry tests jump over a hold's or an admission's lifetime instead of
// waiting for it. The engine and the server share one, so that the access
// tokens, holds and the line all see the same time.
type testClock struct{ off atomic.Int64 }

func (c *testClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Advance moves the clock forward by d.
func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// testServer is one running server and a client for it.
type testServer struct {
	srv   *Server
	eng   *actors.Engine
	base  string // http://127.0.0.1:port
	addr  string // 127.0.0.1:port
	clock *testClock
	c     *http.Client
	// t is the test that started the server: answers that do not match
	// openapi.yaml fail it (see contract.check).
	t        testing.TB
	contract *contract
}

// serverOption changes a test server's options before it starts.
type serverOption func(*Options)

func withBuyerRate(n int) serverOption { return func(o *Options) { o.BuyerRate = n } }

func withAddressRate(n int) serverOption { return func(o *Options) { o.AddressRate = n } }

func withNoSync() serverOption { return func(o *Options) { o.NoSync = true } }

// startServer starts a server on 127.0.0.1:0 through Start, as serve does,
// with fsync on (unless an option says otherwise), and stops it when the
// test ends.
func startServer(t testing.TB, opts ...serverOption) *testServer {
	t.Helper()
	clock := &testClock{}
	o := Options{
		Addr: "127.0.0.1:0", Dir: t.TempDir(),
		AdminToken: testAdminToken,
		SigningKey: []byte("0123456789abcdef0123456789abcdef"),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:        clock.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	run, err := Start(o)
	requireNoErr(t, err, "start server")
	ts := &testServer{
		srv: run.Server, eng: run.Engine, clock: clock,
		addr: run.Addr, base: "http://" + run.Addr,
		c: newTestClient(256),
		t: t,
	}
	ts.contract, err = loadContract()
	requireNoErr(t, err)
	t.Cleanup(func() {
		ts.c.CloseIdleConnections()
		// An engine that stopped on a fatal error reports it again at Close.
		if err := run.Close(10 * time.Second); err != nil && run.Engine.Err() == nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return ts
}

// newTestClient is a keep-alive client that never follows redirects.
func newTestClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// response is an answer read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body))
}

// object decodes the body as a JSON object.
func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer %s is not a JSON object: %v", r, err)
	}
	return m
}

// decode decodes the body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("answer %s does not decode into %T: %v", r, v, err)
	}
}

// hdr is a list of header name, value pairs.
type hdr []string

func bearerHdr(tok string) hdr { return hdr{"Authorization", "Bearer " + tok} }

var adminHdr = bearerHdr(testAdminToken)

// do sends a request. body is nil, a string or []byte (sent as is), or
// anything else (sent as JSON).
func (ts *testServer) do(t testing.TB, method, path string, body any, h ...hdr) response {
	t.Helper()
	r, err := ts.try(method, path, body, h...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// try is do that returns the transport error instead of failing; it is safe
// to call from any goroutine.
func (ts *testServer) try(method, path string, body any, h ...hdr) (response, error) {
	var rd io.Reader
	var sent []byte
	switch b := body.(type) {
	case nil:
	case string:
		sent = []byte(b)
		rd = strings.NewReader(b)
	case []byte:
		sent = b
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return response{}, err
		}
		sent = j
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, pairs := range h {
		for i := 0; i+1 < len(pairs); i += 2 {
			req.Header.Set(pairs[i], pairs[i+1])
		}
	}
	resp, err := ts.c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	if ts.contract != nil {
		if err := ts.contract.check(req, sent, resp.StatusCode, resp.Header, b); err != nil {
			ts.t.Errorf("openapi.yaml: %v", err)
		}
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Assertions. Each stops the test and reports the caller's line.

func requireNoErr(t testing.TB, err error, context ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", contextPrefix(context), err)
	}
}

func requireEqual[T any](t testing.TB, got, want T, context ...any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%sgot  %#v\nwant %#v", contextPrefix(context), got, want)
	}
}

func requireTrue(t testing.TB, ok bool, context ...any) {
	t.Helper()
	if !ok {
		t.Fatalf("%scondition is false", contextPrefix(context))
	}
}

func contextPrefix(context []any) string {
	if len(context) == 0 {
		return ""
	}
	if f, ok := context[0].(string); ok {
		return fmt.Sprintf(f, context[1:]...) + ": "
	}
	return fmt.Sprint(context...) + ": "
}

// requireStatus checks the status and, for a JSON answer, returns its
// object.
func requireStatus(t testing.TB, r response, status int, context ...any) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%sgot %s, want status %d", contextPrefix(context), r, status)
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		return r.object(t)
	}
	return nil
}

// errorBody is API.md's error shape.
type errorBody struct {
	Error struct {
		Code         string          `json:"code"`
		Message      string          `json:"message"`
		Remaining    *int            `json:"remaining"`
		Alternatives *[][]string     `json:"alternatives"`
		Zones        *[]zoneFreeJSON `json:"zones"`
	} `json:"error"`
}

type zoneFreeJSON struct {
	ID   string `json:"id"`
	Free int    `json:"free"`
}

// requireError checks that r is the error status with the code, in
// API.md's JSON shape, and returns the error.
func requireError(t testing.TB, r response, status int, code string, context ...any) errorBody {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%sgot %s, want %d %s", contextPrefix(context), r, status, code)
	}
	return requireErrorShape(t, r, code, context...)
}

// requireErrorShape checks the body alone: {"error": {"code", "message"}}
// with nothing else at the top level, JSON content type, the code given.
func requireErrorShape(t testing.TB, r response, code string, context ...any) errorBody {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%serror %s has Content-Type %q, want application/json", contextPrefix(context), r, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &top); err != nil {
		t.Fatalf("%serror body %s is not a JSON object: %v", contextPrefix(context), r, err)
	}
	if len(top) != 1 || top["error"] == nil {
		t.Fatalf("%serror body %s must be {\"error\": {...}} alone", contextPrefix(context), r)
	}
	var e errorBody
	r.decode(t, &e)
	if e.Error.Code != code {
		t.Fatalf("%sgot error code %q (%s), want %q", contextPrefix(context), e.Error.Code, r, code)
	}
	if !regexp.MustCompile(`^[a-z][a-z_]*$`).MatchString(e.Error.Code) || strings.TrimSpace(e.Error.Message) == "" {
		t.Fatalf("%serror %s needs a snake_case code and a message", contextPrefix(context), r)
	}
	return e
}

// eventually polls cond until it holds or timeout passes. cond returns
// whether it holds and, when not, what it saw.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last saw %s", what, timeout, saw)
		}
		time.Sleep(wait) // between polls, never for the condition itself
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Sales, buyers and holds.

// saleSpec is a sale definition as a JSON object, so that tests can change
// one field (or send a wrong type) freely.
type saleSpec map[string]any

// newSaleSpec is a small sale: GA "ga" (100 seats, 45.00) and reserved
// "vip" (rows A and B of 10 seats, 250.00). admit_per_s is fixed so that
// the automatic stock cap stays out of the way.
func newSaleSpec(id string) saleSpec {
	return saleSpec{
		"id":            id,
		"name":          "Sale " + id,
		"hold_ttl_s":    600,
		"max_per_buyer": 6,
		"waiting_room":  map[string]any{"active_limit": 1000, "admit_per_s": 1000, "access_ttl_s": 900},
		"zones": []any{
			map[string]any{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": 100},
			map[string]any{"id": "vip", "name": "VIP", "price_cents": 25000,
				"rows": []any{map[string]any{"row": "A", "seats": 10}, map[string]any{"row": "B", "seats": 10}}},
		},
	}
}

func (s saleSpec) with(key string, v any) saleSpec {
	c := make(saleSpec, len(s))
	for k, x := range s {
		c[k] = x
	}
	if v == nil {
		delete(c, key)
	} else {
		c[key] = v
	}
	return c
}

func (s saleSpec) room(key string, v any) saleSpec {
	w := map[string]any{}
	for k, x := range s["waiting_room"].(map[string]any) {
		w[k] = x
	}
	w[key] = v
	return s.with("waiting_room", w)
}

// saleView is GET /v1/sales/{sale}.
type saleView struct {
	Sale  actors.SaleDef      `json:"sale"`
	Zones []actors.ZoneCounts `json:"zones"`
	Queue actors.QueueSummary `json:"queue"`
}

func (ts *testServer) createSale(t testing.TB, spec saleSpec) saleView {
	t.Helper()
	r := ts.do(t, "POST", "/v1/sales", spec, adminHdr)
	requireStatus(t, r, 201, "create sale")
	var v saleView
	r.decode(t, &v)
	return v
}

func (ts *testServer) sale(t testing.TB, id string) saleView {
	t.Helper()
	r := ts.do(t, "GET", "/v1/sales/"+id, nil)
	requireStatus(t, r, 200, "get sale")
	var v saleView
	r.decode(t, &v)
	return v
}

// ticket is a place in line as the API shows it.
type ticket struct {
	QueueID         string `json:"queue_id"`
	State           string `json:"state"`
	Position        *int64 `json:"position"`
	ETAS            *int64 `json:"eta_s"`
	PollAfterS      *int64 `json:"poll_after_s"`
	OpensInS        *int64 `json:"opens_in_s"`
	AccessToken     string `json:"access_token"`
	AccessExpiresAt string `json:"access_expires_at"`
}

func (k ticket) pos() int64 {
	if k.Position == nil {
		return 0
	}
	return *k.Position
}

func (ts *testServer) join(t testing.TB, sale, buyer string) ticket {
	t.Helper()
	r := ts.do(t, "POST", "/v1/sales/"+sale+"/queue", map[string]string{"buyer": buyer})
	requireStatus(t, r, 200, "join %s", buyer)
	var k ticket
	r.decode(t, &k)
	requireTrue(t, strings.HasPrefix(k.QueueID, "q_"), "queue id %q", k.QueueID)
	return k
}

func (ts *testServer) ticket(t testing.TB, sale, queueID string) ticket {
	t.Helper()
	r := ts.do(t, "GET", "/v1/sales/"+sale+"/queue/"+queueID, nil)
	requireStatus(t, r, 200, "queue status")
	var k ticket
	r.decode(t, &k)
	return k
}

// admit joins the line and waits for the admission; it returns the access
// token.
func (ts *testServer) admit(t testing.TB, sale, buyer string) string {
	t.Helper()
	k := ts.join(t, sale, buyer)
	if k.State != "admitted" {
		eventually(t, 10*time.Second, "admission of "+buyer, func() (bool, string) {
			k = ts.ticket(t, sale, k.QueueID)
			return k.State == "admitted", fmt.Sprintf("%+v", k)
		})
	}
	requireTrue(t, k.AccessToken != "" && k.AccessExpiresAt != "", "admitted ticket %+v has a token", k)
	return k.AccessToken
}

// holdView is a hold as the API shows it.
type holdView struct {
	HoldID     string   `json:"hold_id"`
	Sale       string   `json:"sale"`
	Zone       string   `json:"zone"`
	Seats      []string `json:"seats"`
	State      string   `json:"state"`
	ExpiresAt  string   `json:"expires_at"`
	ExpiresInS int64    `json:"expires_in_s"`
	Amount     int64    `json:"amount_cents"`
	OrderID    string   `json:"order_id"`
}

func (ts *testServer) hold(t testing.TB, sale, tok string, body any, h ...hdr) response {
	t.Helper()
	return ts.do(t, "POST", "/v1/sales/"+sale+"/holds", body, append(h, bearerHdr(tok))...)
}

func (ts *testServer) mustHold(t testing.TB, sale, tok string, body any) holdView {
	t.Helper()
	r := ts.hold(t, sale, tok, body)
	requireStatus(t, r, 201, "hold %v", body)
	var h holdView
	r.decode(t, &h)
	return h
}

// orderView is an order as the API shows it.
type orderView struct {
	OrderID  string   `json:"order_id"`
	HoldID   string   `json:"hold_id"`
	Sale     string   `json:"sale"`
	Zone     string   `json:"zone"`
	Seats    []string `json:"seats"`
	Amount   int64    `json:"amount_cents"`
	Currency string   `json:"currency"`
	State    string   `json:"state"`
	PaidAt   string   `json:"paid_at"`
}

func (ts *testServer) checkout(t testing.TB, holdID, tok, payToken, key string) response {
	t.Helper()
	h := hdr{"Authorization", "Bearer " + tok}
	if key != "" {
		h = append(h, "Idempotency-Key", key)
	}
	return ts.do(t, "POST", "/v1/holds/"+holdID+"/checkout", map[string]any{"payment": map[string]string{"token": payToken}}, h)
}

func (ts *testServer) counts(t testing.TB, sale string) map[string]actors.ZoneCounts {
	t.Helper()
	r := ts.do(t, "GET", "/v1/sales/"+sale+"/availability", nil)
	requireStatus(t, r, 200, "availability")
	var v struct {
		Zones []actors.ZoneCounts `json:"zones"`
	}
	r.decode(t, &v)
	out := make(map[string]actors.ZoneCounts, len(v.Zones))
	for _, z := range v.Zones {
		out[z.ID] = z
	}
	return out
}

// rfc3339Ms is API.md's output time form.
var rfc3339Ms = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func requireTime(t testing.TB, s string, context ...any) time.Time {
	t.Helper()
	if !rfc3339Ms.MatchString(s) {
		t.Fatalf("%stime %q is not RFC 3339 UTC with milliseconds", contextPrefix(context), s)
	}
	tm, err := time.Parse(time.RFC3339Nano, s)
	requireNoErr(t, err, context...)
	return tm
}

// rawRequest writes raw bytes on a fresh TCP connection and returns what
// the server answers until it closes or a second passes.
func (ts *testServer) rawRequest(t testing.TB, raw string) response {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	requireNoErr(t, err, "dial")
	defer conn.Close()
	requireNoErr(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(conn, raw)
	requireNoErr(t, err, "write raw request")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	requireNoErr(t, err, "read answer to raw request %q", truncate(raw, 80))
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	requireNoErr(t, err, "read body")
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// rawSend sends one request with its whole body on a fresh TCP connection,
// writing while it reads: a server that refuses a body from its
// Content-Length answers (and may close) before the body is written, which
// an ordinary client can report as a broken pipe instead of the answer.
func (ts *testServer) rawSend(t testing.TB, method, path string, body []byte, h hdr) response {
	t.Helper()
	conn, err := net.Dial("tcp", ts.addr)
	requireNoErr(t, err, "dial")
	defer conn.Close()
	requireNoErr(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: onsale\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, len(body))
	for i := 0; i+1 < len(h); i += 2 {
		fmt.Fprintf(&head, "%s: %s\r\n", h[i], h[i+1])
	}
	head.WriteString("\r\n")
	go func() {
		// Errors are expected once the server has answered and closed.
		if _, err := io.WriteString(conn, head.String()); err == nil {
			conn.Write(body)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	requireNoErr(t, err, "read answer to %s %s", method, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	requireNoErr(t, err, "read body")
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// promLine is one sample line of the Prometheus text format.
var promLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+]?([0-9.eE+-]+|Inf|NaN)$`)

func listenLocal(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err, "listen")
	return ln
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
