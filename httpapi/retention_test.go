package httpapi

import (
	"flag"
	"strings"
	"testing"
	"time"

	"onsale/actors"
)

// TestDroppedHoldNotFound: a released hold reads as it ended until
// --hold-retention has passed, then as an id that never existed; the order
// of a bought hold stays readable.
func TestDroppedHoldNotFound(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	released := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	requireStatus(t, ts.do(t, "DELETE", "/v1/holds/"+released.HoldID, nil, bearerHdr(tok)), 200, "release")
	bought := ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-1"}})
	order := requireStatus(t, ts.checkout(t, bought.HoldID, tok, "tok_visa", "k1"), 201, "checkout")

	ts.clock.Advance(actors.HoldRetentionDefault - time.Minute)
	r := requireStatus(t, ts.do(t, "GET", "/v1/holds/"+released.HoldID, nil, adminHdr), 200, "within the retention")
	requireEqual(t, r["state"], any("released"))

	ts.clock.Advance(2 * time.Minute)
	eventually(t, 5*time.Second, "the released hold is dropped", func() (bool, string) {
		r := ts.do(t, "GET", "/v1/holds/"+released.HoldID, nil, adminHdr)
		return r.Status == 404, r.String()
	})
	requireError(t, ts.do(t, "GET", "/v1/holds/"+released.HoldID, nil, adminHdr), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "DELETE", "/v1/holds/"+released.HoldID, nil, adminHdr), 404, actors.CodeNotFound, "a late release")
	o := requireStatus(t, ts.do(t, "GET", "/v1/orders/"+order["order_id"].(string), nil), 200, "the order")
	requireEqual(t, o["state"], any("paid"))
	h := requireStatus(t, ts.do(t, "GET", "/v1/holds/"+bought.HoldID, nil, adminHdr), 200, "the bought hold")
	requireEqual(t, h["state"], any("purchased"))
}

// TestHoldRetentionOption: --hold-retention parses as a duration, defaults
// to 24h, and refuses less, since Idempotency-Key answers are kept 24h.
func TestHoldRetentionOption(t *testing.T) {
	t.Parallel()
	o := DefaultOptions()
	requireEqual(t, o.HoldRetention, 24*time.Hour)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	o.AddFlags(fs)
	requireNoErr(t, fs.Parse([]string{"--hold-retention", "72h"}))
	requireEqual(t, o.HoldRetention, 72*time.Hour)
	requireNoErr(t, o.Check())
	o.HoldRetention = time.Hour
	err := o.Check()
	requireTrue(t, err != nil && strings.Contains(err.Error(), "--hold-retention"), "1h: %v", err)
	requireNoErr(t, (&Options{}).Check(), "0: the engine's default")
}
