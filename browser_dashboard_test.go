package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Bounds of the dashboard test's load: a few buyers a second for at most
// loadFor, enough to move the charts and to judge the payment alert (it
// needs five gateway calls in its window), small enough for two cores.
const (
	loadBuyersMax = 2000
	loadPause     = 100 * time.Millisecond
	loadFor       = 3 * time.Minute
)

// buyerLoad plays buyers one after another: join, hold one ticket, pay.
// While failing is set they pay with tok_error, the simulator's gateway
// error, so the payment error alert has something to see.
type buyerLoad struct {
	failing          atomic.Bool
	paid, down, errs atomic.Int64
	lastErr          atomic.Value // string
	stop             context.CancelFunc
	wg               sync.WaitGroup
	ended            sync.Once
}

func startBuyerLoad(s *browserServer, sale string) *buyerLoad {
	ctx, cancel := context.WithTimeout(context.Background(), loadFor)
	l := &buyerLoad{stop: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; i < loadBuyersMax && ctx.Err() == nil; i++ {
			if err := l.buyer(s, sale, i); err != nil {
				l.errs.Add(1)
				l.lastErr.Store(err.Error())
			}
			select {
			case <-ctx.Done():
			case <-time.After(loadPause):
			}
		}
	}()
	return l
}

func (l *buyerLoad) buyer(s *browserServer, sale string, i int) error {
	buyer := fmt.Sprintf("load-%d", i)
	st, m, err := s.call("POST", "/v1/sales/"+sale+"/queue", map[string]any{"buyer": buyer}, "", "")
	if err != nil || st != 200 || m["state"] != "admitted" {
		return fmt.Errorf("join %s: %d %v %v", buyer, st, m, err)
	}
	tok, _ := m["access_token"].(string)
	st, m, err = s.call("POST", "/v1/sales/"+sale+"/holds", map[string]any{"zone": "ga", "quantity": 1}, tok, buyer+"-hold")
	if err != nil || st != 201 {
		return fmt.Errorf("hold %s: %d %v %v", buyer, st, m, err)
	}
	pay := "tok_visa"
	if l.failing.Load() {
		pay = "tok_error"
	}
	st, m, err = s.call("POST", "/v1/holds/"+fmt.Sprint(m["hold_id"])+"/checkout", map[string]any{"payment": map[string]any{"token": pay}}, tok, buyer+"-pay")
	switch {
	case err != nil:
		return err
	case st == 201:
		l.paid.Add(1)
	case st == 502 && pay == "tok_error":
		l.down.Add(1)
	default:
		return fmt.Errorf("checkout %s with %s: %d %v", buyer, pay, st, m)
	}
	return nil
}

// end stops the load and reports it; only the first call does.
func (l *buyerLoad) end(t *testing.T) {
	l.ended.Do(func() { l.report(t) })
}

func (l *buyerLoad) report(t *testing.T) {
	l.stop()
	l.wg.Wait()
	last, _ := l.lastErr.Load().(string)
	t.Logf("load: %d paid, %d gateway errors, %d failed buyers (last: %s)", l.paid.Load(), l.down.Load(), l.errs.Load(), last)
	if l.errs.Load() > 0 {
		t.Errorf("%d buyers of the load failed; last: %s", l.errs.Load(), last)
	}
}

// chartFigures is what the dashboard's charts hold, read from the uPlot
// instances themselves.
type chartFigures struct {
	Charts int     `json:"charts"`
	Points int     `json:"points"`
	MaxRPS float64 `json:"max_rps"`
	Sold   float64 `json:"sold"`
}

const readCharts = `(() => {
  const last = a => { for (let i = a.length - 1; i >= 0; i--) if (a[i] != null) return a[i]; return 0; };
  const load = charts['c-load'], seats = charts['c-seats'];
  if (!load || !seats) return {charts: Object.keys(charts).length, points: 0, max_rps: 0, sold: 0};
  return {charts: Object.keys(charts).length, points: load.u.data[0].length,
    max_rps: Math.max(0, ...load.u.data[1].filter(x => x != null)), sold: last(seats.u.data[3])};
})()`

// TestBrowserDashboard: an operator logs in through the login page and sees
// the charts; under load their data change; a failing payment gateway
// fires the payment alert, which then resolves into the history; the
// Pause and Resume buttons change the sale's line, as the API shows.
func TestBrowserDashboard(t *testing.T) {
	b := startBrowser(t, 1400, 1000)
	s := startBrowserServer(t, nil)
	s.createSale(t, map[string]any{"id": "busy", "name": "Busy Night", "max_per_buyer": 2,
		"waiting_room": map[string]any{"active_limit": 5000},
		"zones":        []any{map[string]any{"id": "ga", "name": "Standing", "price_cents": 1000, "capacity": 5000}}})
	s.createSale(t, map[string]any{"id": "calm", "name": "Calm Night",
		"zones": []any{map[string]any{"id": "ga", "name": "Standing", "price_cents": 1000, "capacity": 10}}})

	// Logging in through the login page.
	b.do("open the dashboard", chromedp.Navigate(s.base+"/dashboard"), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot("login")
	b.do("log in with a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.CSS(`#login button[type=submit]`)))
	b.waitJS("the login error", `document.getElementById('err').textContent.length > 0`)
	if e := b.text("err"); !strings.Contains(e, "not the admin token") {
		t.Fatalf("a wrong token got %q", e)
	}
	b.do("log in", chromedp.Evaluate[chromedp.Void](`document.getElementById('token').value = ''`), chromedp.SendKeys(chromedp.ID("token"), browserAdminToken),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)))
	b.waitJS("the charts", `document.querySelectorAll('.uplot canvas').length >= 5 && typeof charts === 'object' && charts['c-load']`)
	b.waitJS("the sales", `document.getElementById('sales').textContent.includes('Busy Night')`)
	before := eval[chartFigures](b, "read the charts", readCharts)
	t.Logf("charts before the load: %+v", before)
	b.shot("logged-in")

	// Load: the charts' data move.
	load := startBuyerLoad(s, "busy")
	defer load.end(t)
	// The requests/s of the points added since: the maximum over the whole
	// series may be an earlier burst (the sales' creation), the same before
	// and after.
	newRPS := fmt.Sprintf(`Math.max(0, ...charts['c-load'].u.data[1].slice(%d).filter(x => x != null))`, before.Points)
	b.waitJS("the charts to show the load", fmt.Sprintf(`(() => { const f = %s; return %s >= 5 && f.sold >= %v + 3; })()`, readCharts, newRPS, before.Sold))
	after := eval[chartFigures](b, "read the charts", readCharts)
	t.Logf("charts under load: %+v, requests/s of the new points up to %.1f", after, eval[float64](b, "new points", newRPS))
	if after.Points <= before.Points || after.Sold <= before.Sold {
		t.Fatalf("charts did not move under load: before %+v, after %+v", before, after)
	}
	b.waitJS("the load table", `parseFloat(document.querySelector('#load tr:nth-child(2) td').textContent) > 0`)
	b.shot("under-load")

	// The payment gateway fails: the alert fires, then resolves.
	const firing = `[...document.querySelectorAll('#alerts > table tr.firing td:first-child')].some(td => td.textContent === 'payment_error_rate')`
	load.failing.Store(true)
	b.waitJS("the payment alert to fire", firing)
	b.shot("alert-firing")
	load.failing.Store(false)
	b.waitJS("the payment alert to resolve", `!(`+firing+`) &&
		[...document.querySelectorAll('#alerts details tr.resolved td:first-child')].some(td => td.textContent === 'payment_error_rate')`)
	b.do("open the alert history", chromedp.Evaluate[chromedp.Void](`document.querySelector('#alerts details').open = true`))
	b.shot("alert-resolved")
	// The page updates every second; what the operator opened or focused
	// stays so across updates.
	b.do("focus pause calm", chromedp.Evaluate[chromedp.Void](`window.beforeUpdate = document.getElementById('status').textContent;
		document.querySelector('button[data-sale="calm"]').focus()`))
	b.waitJS("two more updates", `document.getElementById('status').textContent !== window.beforeUpdate &&
		(window.beforeUpdate = document.getElementById('status').textContent, window.seenOne = (window.seenOne || 0) + 1) >= 2`)
	b.waitJS("the focus kept", `document.activeElement === document.querySelector('button[data-sale="calm"]')`)
	b.waitJS("the history kept open", `document.querySelector('#alerts details').open`)
	load.end(t)
	if load.down.Load() < 5 {
		t.Fatalf("the alert fired on %d gateway errors; it needs at least 5", load.down.Load())
	}

	// Pause and resume from the buttons; confirm() is accepted.
	dialogs := b.acceptDialogs()
	button := `button[data-sale="calm"]`
	b.do("pause calm", chromedp.Click(chromedp.CSS(button)))
	if m := waitDialog(t, dialogs); m != "Pause sale calm?" {
		t.Fatalf("pause asked %q", m)
	}
	s.waitQueueState(t, "calm", "paused")
	if st := s.queueState(t, "busy"); st == "paused" {
		t.Fatal("pausing calm paused busy too")
	}
	b.waitJS("the Resume button", `document.querySelector(`+jsString(button)+`).textContent === 'Resume'`)
	b.shot("paused")
	b.do("resume calm", chromedp.Click(chromedp.CSS(button)))
	if m := waitDialog(t, dialogs); m != "Resume sale calm?" {
		t.Fatalf("resume asked %q", m)
	}
	s.waitQueueState(t, "calm", "open")
	b.waitJS("the Pause button", `document.querySelector(`+jsString(button)+`).textContent === 'Pause'`)
	b.shot("resumed")

	b.do("log out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	b.shot("logged-out")
}

func waitDialog(t *testing.T, dialogs <-chan string) string {
	t.Helper()
	select {
	case m := <-dialogs:
		return strings.TrimSpace(m)
	case <-time.After(browserStepTimeout):
		t.Fatal("the button asked for no confirmation")
		return ""
	}
}
