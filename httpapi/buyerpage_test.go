package httpapi

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"onsale/actors"
)

// TestBuyerPageRoutes: the sales list and the page of one sale are the same
// embedded page, served as HTML under the page CSP, for any sale id; the
// page of a sale that does not exist says so with its status too.
func TestBuyerPageRoutes(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("demo"))
	for path, status := range map[string]int{"/": 200, "/sales/demo": 200, "/sales/no-such-sale": 404} {
		r := ts.do(t, "GET", path, nil)
		requireEqual(t, r.Status, status, path)
		requireTrue(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html"), "%s: Content-Type %q", path, r.Header.Get("Content-Type"))
		requireTrue(t, strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'self'"), "%s: no CSP", path)
		requireEqual(t, string(r.Body), string(buyerPage), path)
	}
	requireEqual(t, ts.do(t, "GET", "/sales/a/b", nil).Status, 404, "a deeper path is not a sale page")
	requireEqual(t, ts.do(t, "POST", "/sales/demo", nil).Status, 405, "the sale page is read only")
}

// TestBuyerPageSelfContained: the page loads nothing from another host, so
// it works under default-src 'self' and leaks no buyer to a third party.
func TestBuyerPageSelfContained(t *testing.T) {
	t.Parallel()
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`).FindAll(buyerPage, -1); len(m) > 0 {
		t.Fatalf("buyer page names other hosts: %q", m)
	}
}

// TestBuyerPageScriptParses checks the page's script with node --check when
// node is installed; the page has no build step to catch a syntax error.
func TestBuyerPageScriptParses(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: the buyer page's script is not syntax-checked")
	}
	m := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllSubmatch(buyerPage, -1)
	requireTrue(t, len(m) > 0, "buyer page has no inline script")
	var js []byte
	for _, x := range m {
		js = append(js, x[1]...)
		js = append(js, '\n')
	}
	f := filepath.Join(t.TempDir(), "buyer.js")
	requireNoErr(t, os.WriteFile(f, js, 0o600), "write script")
	if out, err := exec.Command(node, "--check", f).CombinedOutput(); err != nil {
		t.Fatalf("buyer page script does not parse: %v\n%s", err, out)
	}
}

// TestListSales: the public list names a created sale with its line state,
// without the admin token.
func TestListSales(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s-listed"))
	m := requireStatus(t, ts.do(t, "GET", "/v1/sales", nil), 200, "list sales")
	sales, _ := m["sales"].([]any)
	found := false
	for _, x := range sales {
		s, _ := x.(map[string]any)
		if s["id"] != "s-listed" {
			continue
		}
		found = true
		requireTrue(t, s["name"] != nil && s["opens_at"] != nil, "listed sale lacks name or opens_at: %v", s)
		q, _ := s["queue"].(map[string]any)
		requireTrue(t, q != nil && q["state"] != nil, "listed sale lacks queue.state: %v", s)
	}
	requireTrue(t, found, "GET /v1/sales does not list s-listed: %v", m)
}

// TestListSalesPages: past salesPageMax the list goes on through next, in
// order of opens_at then id, each sale once; a bad cursor is a 400.
func TestListSalesPages(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	const n = salesPageMax + 3
	for i := n - 1; i >= 0; i-- {
		ts.createSale(t, newSaleSpec(fmt.Sprintf("p-%03d", i)).with("opens_at", "2030-01-01T10:00:00.000Z"))
	}
	ts.createSale(t, newSaleSpec("z-first").with("opens_at", "2029-01-01T10:00:00.000Z"))
	var ids []string
	path := "/v1/sales"
	for pages := 0; path != ""; pages++ {
		requireTrue(t, pages < 3, "more pages than %d sales need", n+1)
		var page struct {
			Sales []struct {
				ID string `json:"id"`
			} `json:"sales"`
			Next string `json:"next"`
		}
		r := ts.do(t, "GET", path, nil)
		requireStatus(t, r, 200, path)
		r.decode(t, &page)
		requireTrue(t, len(page.Sales) <= salesPageMax, "%d sales in one page", len(page.Sales))
		for _, s := range page.Sales {
			ids = append(ids, s.ID)
		}
		path = ""
		if page.Next != "" {
			path = "/v1/sales?cursor=" + url.QueryEscape(page.Next)
		}
	}
	requireEqual(t, len(ids), n+1, "sales listed")
	requireEqual(t, ids[0], "z-first", "the earliest opening comes first")
	for i := 1; i < len(ids); i++ {
		requireEqual(t, ids[i], fmt.Sprintf("p-%03d", i-1), "position", i)
	}
	requireError(t, ts.do(t, "GET", "/v1/sales?cursor=%21%21", nil), 400, actors.CodeBadRequest)
}
