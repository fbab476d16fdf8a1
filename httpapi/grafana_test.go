package httpapi

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboardSeriesExist: every onsale_ series the Grafana
// dashboard (httpapi/grafana/onsale.json) queries is on a live server's
// /metrics after some traffic, so the dashboard draws something.
func TestGrafanaDashboardSeriesExist(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("grafana/onsale.json")
	requireNoErr(t, err, "read the dashboard")
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	requireNoErr(t, json.Unmarshal(b, &dash), "the dashboard is JSON")
	requireTrue(t, len(dash.Panels) >= 8, "%d panels", len(dash.Panels))

	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	requireStatus(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "k"), 201, "checkout")
	ts.do(t, "GET", "/v1/sales/nope", nil)
	metrics := string(ts.do(t, "GET", "/metrics", nil).Body)

	name := regexp.MustCompile(`onsale_[a-z0-9_]+`)
	seen := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, series := range name.FindAllString(tg.Expr, -1) {
				seen++
				requireTrue(t, strings.Contains(metrics, "\n"+series+"{") || strings.Contains(metrics, "\n"+series+" "),
					"panel %q queries %s, which /metrics does not have", p.Title, series)
			}
		}
	}
	requireTrue(t, seen >= 20, "only %d series queried", seen)
}
