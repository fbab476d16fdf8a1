package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// axeFinding is one rule's result as the test reads it: the rule, its
// impact and a few of the elements it concerns.
type axeFinding struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Count  int      `json:"count"`
	Nodes  []string `json:"nodes"`
}

type axeResult struct {
	Version    string       `json:"version"`
	Violations []axeFinding `json:"violations"`
	Incomplete []axeFinding `json:"incomplete"`
}

// axeRun runs axe-core over the page for WCAG 2 A and AA; one run at a
// time (axe refuses a second while one runs).
const axeRun = `(async () => {
  const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}, resultTypes: ['violations', 'incomplete']});
  const pick = x => ({id: x.id, impact: x.impact || '', help: x.help, count: x.nodes.length,
    nodes: x.nodes.slice(0, 5).map(n => [].concat(n.target).join(' ') + (n.failureSummary ? ': ' + n.failureSummary.replace(/\s+/g, ' ') : ''))});
  return {version: axe.version, violations: r.violations.map(pick), incomplete: r.incomplete.map(pick)};
})()`

// TestBrowserAccessibility runs axe-core (WCAG 2 A and AA) over every page
// a buyer or an operator sees: the list of sales, a sale before its
// opening, the line, the seat map, the dashboard's login and the dashboard,
// on a phone and on a desktop. A serious or critical violation fails the
// test; the rest, and what axe could not decide (incomplete), are logged.
func TestBrowserAccessibility(t *testing.T) {
	axeJS, err := os.ReadFile(axeScript)
	if err != nil {
		browserNeed(t, fmt.Sprintf("axe-core is not installed (%v)", err), "npm ci --prefix testdata/browser")
	}
	b := startBrowser(t, 1280, 900)
	// Our pages' CSP would refuse an injected script; the DevTools
	// protocol may bypass it for this tab alone.
	b.do("bypass the CSP", chromedp.Func(func(ctx context.Context, tt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tt, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
		return err
	}))
	s := startBrowserServer(t, nil)
	opens := time.Now().Add(2 * time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")
	s.createSale(t, map[string]any{"id": "later", "name": "Later Night", "opens_at": opens,
		"zones": []any{map[string]any{"id": "ga", "name": "Standing", "price_cents": 1000, "capacity": 100}}})
	s.createSale(t, map[string]any{"id": "now", "name": "Seated Night", "max_per_buyer": 4,
		"zones": []any{map[string]any{"id": "vip", "name": "Stalls", "price_cents": 2500,
			"rows": []any{map[string]any{"row": "A", "seats": 12}, map[string]any{"row": "B", "seats": 12}}}}})
	// A seat of each state on the map.
	tok := s.admit(t, "now", "other-buyer")
	h := s.must(t, 201, "POST", "/v1/sales/now/holds", map[string]any{"zone": "vip", "seats": []string{"A-1"}}, tok, "k-sold")
	s.must(t, 201, "POST", "/v1/holds/"+fmt.Sprint(h["hold_id"])+"/checkout", map[string]any{"payment": map[string]any{"token": "tok_visa"}}, tok, "k-pay")
	s.must(t, 201, "POST", "/v1/sales/now/holds", map[string]any{"zone": "vip", "seats": []string{"A-2"}}, tok, "k-held")

	serious := 0
	run := func(what string) axeResult {
		t.Helper()
		if ok := eval[bool](b, "look for axe", `typeof axe === 'object'`); !ok {
			eval[chromedp.Void](b, "inject axe-core", string(axeJS))
		}
		r, err := browserRun(b, chromedp.Evaluate[axeResult](axeRun, chromedp.EvalAwaitPromise))
		if err != nil {
			b.fail("axe on "+what, err)
		}
		return r
	}
	check := func(size, what string) {
		t.Helper()
		r := run(what)
		b.shot(size + "-" + strings.ReplaceAll(what, " ", "-"))
		for _, v := range r.Violations {
			msg := fmt.Sprintf("%s, %s: axe %s %s violation %q (%s) on %d elements: %s", size, what, r.Version, v.Impact, v.ID, v.Help, v.Count, strings.Join(v.Nodes, "; "))
			if v.Impact == "serious" || v.Impact == "critical" {
				serious++
				t.Error(msg)
			} else {
				t.Log(msg)
			}
		}
		for _, v := range r.Incomplete {
			t.Logf("%s, %s: axe could not decide %q (%s, %s) on %d elements: %s", size, what, v.ID, v.Help, v.Impact, v.Count, strings.Join(v.Nodes, "; "))
		}
		t.Logf("%s, %s: %d violations, %d incomplete", size, what, len(r.Violations), len(r.Incomplete))
	}

	// axe itself is checked first: a nameless button is a critical
	// violation it must report, or a clean result would mean nothing.
	b.do("a page with a nameless button", chromedp.Navigate(s.base+"/"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('main').append(Object.assign(document.createElement('button'), {id: 'axe-probe'}))`))
	probe := run("the probe")
	found := false
	for _, v := range probe.Violations {
		found = found || (v.ID == "button-name" && v.Impact == "critical" && strings.Contains(strings.Join(v.Nodes, " "), "#axe-probe"))
	}
	if !found {
		t.Fatalf("axe did not report the nameless button: %+v", probe.Violations)
	}
	t.Logf("axe-core %s found the probe's nameless button", probe.Version)

	for _, vp := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"phone", 390, 844, true}, {"desktop", 1280, 900, false}} {
		emulate := chromedp.EmulateViewport(vp.width, vp.height)
		if vp.mobile {
			emulate = chromedp.EmulateViewport(vp.width, vp.height, chromedp.EmulateMobile, chromedp.EmulateScale(3))
		}
		// Each size starts as a new visitor: no buyer id, no session.
		b.do(vp.name+": a new visitor", emulate, chromedp.Navigate(s.base+"/"),
			chromedp.Evaluate[chromedp.Void](`localStorage.clear()`),
			chromedp.Func(func(ctx context.Context, tt *chromedp.Target) error {
				_, err := cdp.Call(ctx, tt, network.ClearBrowserCookies, cdp.Empty{})
				return err
			}))

		b.do(vp.name+": the list of sales", chromedp.Navigate(s.base+"/"))
		b.waitJS("the list", `document.querySelectorAll('#sales li').length === 2`)
		check(vp.name, "sales list")

		b.do(vp.name+": a sale before its opening", chromedp.Navigate(s.base+"/sales/later"), chromedp.WaitVisible(chromedp.ID("join")))
		b.waitJS("the draw's fingerprint", `document.getElementById('seed').textContent.startsWith('SHA-256 ')`)
		check(vp.name, "before opening")

		b.do(vp.name+": join the line", chromedp.Click(chromedp.ID("join")))
		b.waitJS("the countdown", `document.getElementById('position').textContent === 'You are in the line.' && /\d s$/.test(document.getElementById('countdown').textContent)`)
		check(vp.name, "in the line")

		b.do(vp.name+": the seat map", chromedp.Navigate(s.base+"/sales/now"), chromedp.WaitVisible(chromedp.ID("join")),
			chromedp.Click(chromedp.ID("join")), chromedp.WaitVisible(chromedp.CSS(`button[data-seat="B-12"]`)))
		b.do(vp.name+": pick a seat", chromedp.Click(chromedp.CSS(`button[data-seat="A-5"]`)))
		b.waitJS("the seat picked", `document.querySelector('button[data-seat="A-5"]').getAttribute('aria-pressed') === 'true'`)
		check(vp.name, "seat map")

		b.do(vp.name+": the dashboard's login", chromedp.Navigate(s.base+"/dashboard"), chromedp.WaitVisible(chromedp.ID("token")))
		check(vp.name, "dashboard login")

		b.do(vp.name+": log in", chromedp.SendKeys(chromedp.ID("token"), browserAdminToken), chromedp.Click(chromedp.CSS(`#login button[type=submit]`)))
		b.waitJS("the dashboard", `document.querySelectorAll('.uplot canvas').length >= 5 && document.getElementById('sales').textContent.includes('Seated Night')`)
		check(vp.name, "dashboard")
	}
	if serious > 0 {
		t.Logf("%d serious or critical violations; the screenshots are in %s", serious, browserShotsDir)
	}
}
