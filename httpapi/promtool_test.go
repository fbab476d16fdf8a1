package httpapi

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMetricsPassPromtool feeds a live server's /metrics, after traffic on
// two sales, to Prometheus' own checker: no parse error, one # TYPE per
// family, and nothing said of an onsale_ family but missing help text
// (VictoriaMetrics/metrics writes # HELP without text for its own series).
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is missing: .ci/run installs Debian's prometheus package")
		}
		t.Skip("promtool is missing: apt-get install prometheus (Debian) to run this check")
	}
	t.Parallel()
	ts := startServer(t)
	for _, id := range []string{"s", "t"} {
		ts.createSale(t, newSaleSpec(id))
		tok := ts.admit(t, id, "b1")
		h := ts.mustHold(t, id, tok, map[string]any{"zone": "ga", "quantity": 2})
		requireStatus(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "k1"), 201, "checkout")
		ts.do(t, "GET", "/v1/sales/"+id, nil)
	}
	ts.do(t, "GET", "/v1/sales/nope", nil)
	r := ts.do(t, "GET", "/metrics", nil)
	requireStatus(t, r, 200, "metrics")

	types := map[string]int{}
	for _, line := range strings.Split(string(r.Body), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			types[f[2]]++
		}
	}
	for _, fam := range []string{"onsale_queue_waiting", "onsale_seats", "onsale_http_requests_total", "onsale_http_request_duration_seconds", "onsale_log_fsync_duration_seconds"} {
		requireEqual(t, types[fam], 1, "# TYPE lines of "+fam)
	}
	for fam, n := range types {
		requireEqual(t, n, 1, "# TYPE lines of "+fam)
	}

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(r.Body)
	out, err := cmd.CombinedOutput()
	text := string(out)
	requireTrue(t, !strings.Contains(text, "error while linting"), "promtool could not parse /metrics: %s", text)
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" || !strings.HasPrefix(line, "onsale_") {
			continue
		}
		requireTrue(t, strings.HasSuffix(line, "no help text"), "promtool on an onsale_ family: %q", line)
	}
	// Exit status 1 is a parse error; 3 is lint problems, which the Go
	// runtime's own families (not ours) have.
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 3) {
		t.Fatalf("promtool check metrics: %v: %s", err, text)
	}
}
