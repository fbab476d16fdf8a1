package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"onsale/httpapi"
)

// The browser tests drive Debian's headless Chromium through the DevTools
// protocol (chromedp) against a server started in this process, as a buyer
// and an operator would use the pages: clicks, keys, what the page shows.
// They need chromium (apt-get install chromium); the accessibility check
// also needs axe-core (npm ci --prefix testdata/browser). Without them the
// tests skip, except under CI, where a missing part fails them.

const (
	browserAdminToken = "browser-admin-token-0123456789"
	// browserStepTimeout bounds one step of a test (a page to load, a state
	// to appear): generous for -race on two cores, far below go test's own.
	browserStepTimeout = 30 * time.Second
	// browserShotsDir is where screenshots of each key step go.
	browserShotsDir = "testdata/out/browser"
	// axeScript is axe-core's browser bundle, installed by npm ci; it is
	// test-only and never embedded in the binary.
	axeScript = "testdata/browser/node_modules/axe-core/axe.min.js"
)

// browserNeed skips the test for a part that is not installed, saying how to
// install it, or fails it under CI, where .ci/run installs every part.
func browserNeed(t *testing.T, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("%s; install it with: %s", what, install)
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s", msg)
	}
	t.Skip(msg)
}

// chromiumPath finds Chromium: $CHROMIUM, Debian's /usr/bin/chromium, or
// chromium on PATH.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// browserServer is an onsale started in this process on a free loopback
// port, through httpapi.Start as serve does, with a client for its API.
type browserServer struct {
	base string
	c    *http.Client
}

func startBrowserServer(t *testing.T, change func(*httpapi.Options)) *browserServer {
	t.Helper()
	o := httpapi.DefaultOptions()
	o.Addr = "127.0.0.1:0"
	o.Dir = t.TempDir()
	o.AdminToken = browserAdminToken
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	// The test machine's free disk is not what these tests are about.
	o.Alerts.DiskFreeMiB = -1
	if change != nil {
		change(&o)
	}
	run, err := httpapi.Start(o)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	s := &browserServer{base: "http://" + run.Addr, c: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(func() {
		s.c.CloseIdleConnections()
		if err := run.Close(10 * time.Second); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return s
}

// call sends a JSON request with an optional bearer token and idempotency
// key and returns the status and the decoded answer; it is safe for any
// goroutine.
func (s *browserServer) call(method, path string, body any, bearer, key string) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var m map[string]any
	if len(b) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &m); err != nil {
			return 0, nil, fmt.Errorf("%s %s: answer %q: %w", method, path, b, err)
		}
	}
	return resp.StatusCode, m, nil
}

// must is call that fails the test unless the status is want.
func (s *browserServer) must(t *testing.T, want int, method, path string, body any, bearer, key string) map[string]any {
	t.Helper()
	st, m, err := s.call(method, path, body, bearer, key)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if st != want {
		t.Fatalf("%s %s: got %d %v, want %d", method, path, st, m, want)
	}
	return m
}

func (s *browserServer) createSale(t *testing.T, sale map[string]any) {
	t.Helper()
	s.must(t, 201, "POST", "/v1/sales", sale, browserAdminToken, "")
}

// admit joins the line as buyer and returns the access token; the sale must
// admit at once (nobody waiting).
func (s *browserServer) admit(t *testing.T, sale, buyer string) string {
	t.Helper()
	m := s.must(t, 200, "POST", "/v1/sales/"+sale+"/queue", map[string]any{"buyer": buyer}, "", "")
	tok, _ := m["access_token"].(string)
	if m["state"] != "admitted" || tok == "" {
		t.Fatalf("buyer %s not admitted to %s: %v", buyer, sale, m)
	}
	return tok
}

// queueState is GET /v1/sales/{sale}'s queue.state.
func (s *browserServer) queueState(t *testing.T, sale string) string {
	t.Helper()
	m := s.must(t, 200, "GET", "/v1/sales/"+sale, nil, "", "")
	q, _ := m["queue"].(map[string]any)
	st, _ := q["state"].(string)
	return st
}

// waitQueueState polls the sale until its line is in state want: the line
// learns of sold seats from the zones a moment after the order.
func (s *browserServer) waitQueueState(t *testing.T, sale, want string) {
	t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	for {
		st := s.queueState(t, sale)
		if st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sale %s: line state %q, want %q within %s", sale, st, want, browserStepTimeout)
		}
		time.Sleep(50 * time.Millisecond) // between polls, never for the condition itself
	}
}

// browserTab is one headless Chromium with one tab, for one test.
type browserTab struct {
	t   *testing.T
	ctx context.Context // the tab's context: actions run on it
	n   int             // screenshots taken, for their order in the name
}

// startBrowser starts a fresh headless Chromium (its own profile directory)
// with a window of width×height and stops it when the test ends.
func startBrowser(t *testing.T, width, height int) *browserTab {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	path := chromiumPath()
	if path == "" {
		browserNeed(t, "chromium is not installed (looked for $CHROMIUM, /usr/bin/chromium and chromium on PATH)",
			"apt-get install chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser and ties it to its context, so it
	// runs on the tab's own context, not on one with a step timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	b := &browserTab{t: t, ctx: ctx}
	b.do("set the viewport", chromedp.EmulateViewport(int64(width), int64(height)))
	return b
}

// do runs the steps within browserStepTimeout; on failure it saves a
// screenshot and fails the test with what the page's status line said.
func (b *browserTab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

func (b *browserTab) fail(what string, err error) {
	b.t.Helper()
	b.shot("failed")
	status, _ := browserRun(b, chromedp.Evaluate[string](`(document.getElementById('status') || document.body || {}).textContent || ''`))
	b.t.Fatalf("%s: %v\npage status: %q", what, err, strings.TrimSpace(status))
}

// browserRun runs one action that returns a value, within the step timeout.
func browserRun[T any](b *browserTab, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// eval evaluates a JavaScript expression in the page and fails the test on
// an error.
func eval[T any](b *browserTab, what, js string) T {
	b.t.Helper()
	v, err := browserRun(b, chromedp.Evaluate[T](js))
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// waitJS polls until the expression is truthy in the page: UI states are
// waited for, never slept for. An evaluation that fails (the page is
// navigating, the expression throws) counts as not yet.
func (b *browserTab) waitJS(what, js string) {
	b.t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	expr := `(() => { try { return !!(` + js + `); } catch (e) { return false; } })()`
	for {
		ctx, cancel := context.WithTimeout(b.ctx, time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not within %s", browserStepTimeout)
			}
			b.fail("wait for "+what, err)
		}
		time.Sleep(50 * time.Millisecond) // between polls, never for the condition itself
	}
}

// text is an element's textContent.
func (b *browserTab) text(id string) string {
	b.t.Helper()
	return eval[string](b, "read #"+id, `(document.getElementById(`+jsString(id)+`) || {}).textContent || ''`)
}

// shot saves a full-page PNG of the tab under browserShotsDir.
func (b *browserTab) shot(step string) {
	b.t.Helper()
	png, err := browserRun(b, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", step, err)
		return
	}
	if err := os.MkdirAll(browserShotsDir, 0o755); err != nil {
		b.t.Fatalf("screenshots: %v", err)
	}
	b.n++
	name := regexp.MustCompile(`[^A-Za-z0-9_-]+`).ReplaceAllString(b.t.Name(), "_")
	f := filepath.Join(browserShotsDir, fmt.Sprintf("%s-%02d-%s.png", name, b.n, step))
	if err := os.WriteFile(f, png, 0o644); err != nil {
		b.t.Fatalf("save screenshot: %v", err)
	}
	b.t.Logf("screenshot: %s", f)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// acceptDialogs accepts every confirm() the page opens from now on and
// sends its message on the channel returned.
func (b *browserTab) acceptDialogs() <-chan string {
	b.t.Helper()
	msgs := make(chan string, 16)
	events := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(b.ctx, browserStepTimeout)
			_, herr := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			cancel()
			m := ev.Message
			if herr != nil {
				m = "could not accept: " + herr.Error()
			}
			select {
			case msgs <- m:
			default:
			}
		}
	}()
	return msgs
}

// TestBrowserBuyerSeatMap: a buyer opens a sale's page, joins the line,
// waits as number 1 while another shops, is admitted when that one
// leaves, picks two seats on the map (one by mouse, one by keyboard),
// holds them, pays and sees the confirmation with the order link; the API
// then shows the order paid and the seats sold.
func TestBrowserBuyerSeatMap(t *testing.T) {
	b := startBrowser(t, 1280, 900)
	s := startBrowserServer(t, nil)
	s.createSale(t, map[string]any{
		"id": "seats", "name": "Seat Night", "max_per_buyer": 4,
		"waiting_room": map[string]any{"active_limit": 1},
		"zones": []any{
			map[string]any{"id": "vip", "name": "Stalls", "price_cents": 2500,
				"rows": []any{map[string]any{"row": "A", "seats": 8}, map[string]any{"row": "B", "seats": 8}}},
			map[string]any{"id": "ga", "name": "Standing", "price_cents": 1000, "capacity": 50},
		},
	})

	b.do("open the sale's page", chromedp.Navigate(s.base+"/sales/seats"), chromedp.WaitVisible(chromedp.ID("join")))
	if h := b.text("sale-h"); h != "Seat Night" {
		t.Fatalf("sale heading %q, want the sale's name", h)
	}
	b.shot("sale")
	// Someone else is shopping and the sale lets one shop at a time: the
	// buyer waits, first in line, until that one leaves.
	first := s.must(t, 200, "POST", "/v1/sales/seats/queue", map[string]any{"buyer": "first-buyer"}, "", "")
	if first["state"] != "admitted" {
		t.Fatalf("first buyer: %v", first)
	}
	b.do("join the line", chromedp.Click(chromedp.ID("join")))
	b.waitJS("the place in line", `document.getElementById('position').textContent === 'Number 1 in line'`)
	b.shot("in-line")
	s.must(t, 200, "DELETE", "/v1/sales/seats/queue/"+fmt.Sprint(first["queue_id"]), nil, "", "")
	b.do("be admitted", chromedp.WaitVisible(chromedp.CSS(`button[data-seat="A-3"]`)))
	b.waitJS("the admission message", `document.getElementById('status').textContent.includes('your turn')`)
	b.shot("seat-map")

	b.do("pick A-3 with the mouse", chromedp.Click(chromedp.CSS(`button[data-seat="A-3"]`)))
	b.do("pick A-4 with the keyboard", chromedp.Focus(chromedp.CSS(`button[data-seat="A-4"]`)), chromedp.KeyEvent(" "))
	b.waitJS("both seats picked", `document.querySelector('button[data-seat="A-3"]').getAttribute('aria-pressed') === 'true' &&
		document.querySelector('button[data-seat="A-4"]').getAttribute('aria-pressed') === 'true'`)
	if p := b.text("picked"); p != "Picked: A-3, A-4" {
		t.Fatalf("picked line %q", p)
	}
	b.shot("picked")

	b.do("hold the seats", chromedp.Click(chromedp.ID("hold")), chromedp.WaitVisible(chromedp.ID("paybtn")))
	if h := b.text("held"); !strings.Contains(h, "A-3, A-4") || !strings.Contains(h, "50.00 EUR") {
		t.Fatalf("held line %q, want the seats and the amount", h)
	}
	b.waitJS("the hold countdown", `/\d+ s$/.test(document.getElementById('holdleft').textContent)`)
	b.shot("held")

	b.do("pay", chromedp.Click(chromedp.ID("paybtn")), chromedp.WaitVisible(chromedp.ID("orderlink")))
	b.shot("paid")
	href := eval[string](b, "order link", `document.getElementById('orderlink').getAttribute('href')`)
	orderID, ok := strings.CutPrefix(href, "/v1/orders/")
	if !ok || orderID == "" {
		t.Fatalf("order link %q", href)
	}
	if o := b.text("order"); !strings.Contains(o, orderID) || !strings.Contains(o, "paid") {
		t.Fatalf("confirmation %q does not name order %s as paid", o, orderID)
	}

	// What the page said is what the server holds.
	order := s.must(t, 200, "GET", href, nil, "", "")
	if order["state"] != "paid" || fmt.Sprint(order["seats"]) != "[A-3 A-4]" || order["sale"] != "seats" {
		t.Fatalf("order %s: %v", orderID, order)
	}
	hold := s.must(t, 200, "GET", "/v1/holds/"+fmt.Sprint(order["hold_id"]), nil, browserAdminToken, "")
	if hold["state"] != "purchased" || hold["order_id"] != orderID {
		t.Fatalf("hold behind order %s: %v", orderID, hold)
	}
	avail := s.must(t, 200, "GET", "/v1/sales/seats/availability?zone=vip", nil, "", "")
	sold := map[string]bool{}
	for _, z := range avail["zones"].([]any) {
		zm := z.(map[string]any)
		if zm["id"] != "vip" {
			continue
		}
		for _, st := range zm["seats"].([]any) {
			sm := st.(map[string]any)
			if sm["status"] == "sold" {
				sold[sm["id"].(string)] = true
			}
		}
	}
	if len(sold) != 2 || !sold["A-3"] || !sold["A-4"] {
		t.Fatalf("sold seats %v, want A-3 and A-4", sold)
	}
}

// TestBrowserBuyerLiveSeats: while a buyer picks seats, the map shows what
// another buyer holds and lets go without a click, in place: a picked seat
// someone else took is unpicked with a message, and the focus stays where
// the buyer left it.
func TestBrowserBuyerLiveSeats(t *testing.T) {
	b := startBrowser(t, 1280, 900)
	s := startBrowserServer(t, nil)
	s.createSale(t, map[string]any{
		"id": "live", "name": "Live Map", "max_per_buyer": 4,
		"zones": []any{map[string]any{"id": "vip", "name": "Stalls", "price_cents": 2500,
			"rows": []any{map[string]any{"row": "A", "seats": 8}}}},
	})
	b.do("open the sale's page", chromedp.Navigate(s.base+"/sales/live"), chromedp.WaitVisible(chromedp.ID("join")))
	b.do("join and be admitted", chromedp.Click(chromedp.ID("join")), chromedp.WaitVisible(chromedp.CSS(`button[data-seat="A-5"]`)))
	b.do("pick A-5", chromedp.Click(chromedp.CSS(`button[data-seat="A-5"]`)))
	b.do("focus A-2", chromedp.Focus(chromedp.CSS(`button[data-seat="A-2"]`)))
	b.waitJS("A-5 picked", `document.querySelector('button[data-seat="A-5"]').getAttribute('aria-pressed') === 'true'`)

	tok := s.admit(t, "live", "rival")
	h := s.must(t, 201, "POST", "/v1/sales/live/holds", map[string]any{"zone": "vip", "seats": []string{"A-5", "A-6"}}, tok, "k-rival")
	b.waitJS("the rival's seats shown held", `['A-5', 'A-6'].every(id => {
		const b = document.querySelector('button[data-seat="' + id + '"]');
		return b.disabled && b.classList.contains('held') && b.getAttribute('aria-label').endsWith('held');
	})`)
	if st := b.text("status"); st != "Seat A-5 was just taken by someone else; pick another." {
		t.Fatalf("status %q, want the lost seat named", st)
	}
	if p := b.text("picked"); p != "No seats picked." {
		t.Fatalf("picked line %q after the seat was taken", p)
	}
	if pressed := eval[string](b, "A-5 pressed", `document.querySelector('button[data-seat="A-5"]').getAttribute('aria-pressed')`); pressed != "false" {
		t.Fatalf("A-5 aria-pressed %q after it was taken", pressed)
	}
	if focused := eval[string](b, "focus", `document.activeElement.dataset.seat || document.activeElement.tagName`); focused != "A-2" {
		t.Fatalf("focus on %q after the update, want A-2", focused)
	}
	b.shot("taken")

	// A focused seat that someone takes hands the focus to the next free
	// one, not to the page.
	b.do("focus A-7", chromedp.Focus(chromedp.CSS(`button[data-seat="A-7"]`)))
	h7 := s.must(t, 201, "POST", "/v1/sales/live/holds", map[string]any{"zone": "vip", "seats": []string{"A-7"}}, tok, "k-rival-7")
	b.waitJS("A-7 shown held", `document.querySelector('button[data-seat="A-7"]').disabled`)
	if focused := eval[string](b, "focus", `document.activeElement.dataset.seat || document.activeElement.tagName`); focused != "A-8" {
		t.Fatalf("focus on %q after the focused seat was taken, want A-8", focused)
	}
	s.must(t, 200, "DELETE", "/v1/holds/"+fmt.Sprint(h7["hold_id"]), nil, tok, "")

	s.must(t, 200, "DELETE", "/v1/holds/"+fmt.Sprint(h["hold_id"]), nil, tok, "")
	b.waitJS("the released seats free again", `['A-5', 'A-6'].every(id => {
		const b = document.querySelector('button[data-seat="' + id + '"]');
		return !b.disabled && b.classList.contains('free');
	})`)
	b.do("pick A-6 now free", chromedp.Click(chromedp.CSS(`button[data-seat="A-6"]`)))
	if p := b.text("picked"); p != "Picked: A-6" {
		t.Fatalf("picked line %q", p)
	}
	b.shot("released")
}

// TestBrowserBuyerSoldOut: a buyer who comes when every seat is sold is
// told so in the line (and keeps a place); one who is choosing when another
// takes a zone's last seat is told so when asking for it, with the zones
// that still have seats.
func TestBrowserBuyerSoldOut(t *testing.T) {
	b := startBrowser(t, 1280, 900)
	s := startBrowserServer(t, nil)
	ga := func(id string) map[string]any {
		return map[string]any{"id": id, "name": "Small Room " + id, "max_per_buyer": 2,
			"zones": []any{map[string]any{"id": "ga", "name": "Standing", "price_cents": 1500, "capacity": 2}}}
	}
	s.createSale(t, ga("gone"))
	s.createSale(t, map[string]any{"id": "held", "name": "Two Rooms", "max_per_buyer": 2,
		"zones": []any{
			map[string]any{"id": "ga", "name": "Front room", "price_cents": 1500, "capacity": 1},
			map[string]any{"id": "back", "name": "Back room", "price_cents": 900, "capacity": 10},
		}})

	// Every seat of "gone" sold beforehand.
	tok := s.admit(t, "gone", "early-bird")
	h := s.must(t, 201, "POST", "/v1/sales/gone/holds", map[string]any{"zone": "ga", "quantity": 2}, tok, "k-gone-hold")
	s.must(t, 201, "POST", "/v1/holds/"+fmt.Sprint(h["hold_id"])+"/checkout", map[string]any{"payment": map[string]any{"token": "tok_visa"}}, tok, "k-gone-pay")
	s.waitQueueState(t, "gone", "sold_out")

	b.do("open the sold-out sale", chromedp.Navigate(s.base+"/sales/gone"), chromedp.WaitVisible(chromedp.ID("join")))
	b.waitJS("the sale's state", `document.getElementById('opens').textContent.includes('Sold out')`)
	b.do("join the sold-out line", chromedp.Click(chromedp.ID("join")), chromedp.WaitVisible(chromedp.ID("position")))
	b.waitJS("the sold-out message", `document.getElementById('status').textContent.startsWith('Sold out for now')`)
	if p := b.text("position"); p != "Sold out for now" {
		t.Fatalf("line shows %q", p)
	}
	if st := b.text("status"); !strings.Contains(st, "you keep your place") {
		t.Fatalf("sold-out status %q does not say the place is kept", st)
	}
	if cls := eval[string](b, "status class", `document.getElementById('status').className`); cls != "bad" {
		t.Fatalf("sold-out status has class %q, want bad", cls)
	}
	b.shot("sold-out-line")

	b.do("open the all-held sale", chromedp.Navigate(s.base+"/sales/held"), chromedp.WaitVisible(chromedp.ID("join")))
	b.do("join and be admitted", chromedp.Click(chromedp.ID("join")), chromedp.WaitVisible(chromedp.ID("qty")))
	// While this buyer chooses, another takes the front room's only seat.
	tok = s.admit(t, "held", "early-bird")
	s.must(t, 201, "POST", "/v1/sales/held/holds", map[string]any{"zone": "ga", "quantity": 1}, tok, "k-held-hold")
	b.do("ask for one ticket", chromedp.SetValue(chromedp.ID("qty"), "1"), chromedp.Click(chromedp.ID("hold")))
	b.waitJS("the sold-out answer", `document.getElementById('status').textContent.startsWith('Sold out')`)
	if st, want := b.text("status"), "Sold out: other zones still have seats (back: 10 free)."; st != want {
		t.Fatalf("hold refused with %q, want %q", st, want)
	}
	if hidden := eval[bool](b, "pay section", `document.getElementById('pay').hidden`); !hidden {
		t.Fatal("the pay section shows although nothing was held")
	}
	b.shot("sold-out-hold")
}
