package httpapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"onsale/actors"
)

// checkoutTimingRuns is how many checkouts each gateway is timed over: enough
// for a p99 that is not the single worst call, few enough for CI (about a
// second each here).
const checkoutTimingRuns = 300

// TestCheckoutLatencyStripeMock times checkouts over HTTP, one at a time,
// through the built-in simulator and through the Stripe gateway to a local
// stripe-mock, and logs p50/p99 of each: the cost of the real client
// library and a loopback HTTP round trip per charge. stripe-mock answers
// every confirm requires_payment_method, so its checkouts are 402s: the
// simulator's declines are the like-for-like comparison (a durable
// refusal instead of a durable order). Run: go test -run CheckoutLatency -v ./httpapi/
func TestCheckoutLatencyStripeMock(t *testing.T) {
	if testing.Short() {
		t.Skip("timing: not with -short")
	}
	mock := startStripeMock(t)

	sim := startServer(t)
	simLat := timeCheckouts(t, sim, "paid", "tok_visa", 201)
	simDecl := timeCheckouts(t, sim, "declined", "tok_decline", 402)

	gw, err := NewStripe(StripeConfig{Key: testStripeKey, APIBase: mock, Timeout: 10 * time.Second, Logger: quietLogger})
	requireNoErr(t, err)
	str := startServer(t, func(o *Options) { o.Gateway = gw })
	strLat := timeCheckouts(t, str, "t", "pm_card_visa", 402)

	// The gateway alone, without the server: the client library and
	// stripe-mock's answer.
	var raw []time.Duration
	for i := range checkoutTimingRuns {
		p := actors.Payment{Sale: "t", HoldID: "h", OrderID: fmt.Sprintf("o_raw%d", i), AmountCents: 4500, Currency: "eur", Token: "pm_card_visa"}
		t0 := time.Now()
		if err := gw.Charge(context.Background(), p); err != nil && !isDecline(err) {
			t.Fatalf("charge through stripe-mock: %v", err)
		}
		raw = append(raw, time.Since(t0))
	}
	t.Logf("checkout over HTTP, %d each, one at a time:", checkoutTimingRuns)
	for _, l := range []struct {
		what string
		lat  []time.Duration
	}{
		{"simulator, paid (201)", simLat},
		{"simulator, declined (402)", simDecl},
		{"stripe-mock (402)", strLat},
		{"Charge alone, stripe-mock", raw},
	} {
		t.Logf("  %-26s p50 %6.2f ms  p99 %6.2f ms", l.what, quantileMs(l.lat, 0.5), quantileMs(l.lat, 0.99))
	}
}

func isDecline(err error) bool { return err != nil && errors.Is(err, ErrDeclined) }

// timeCheckouts makes checkoutTimingRuns one-seat holds (six per buyer, the
// sale's limit) and times each one's checkout, which must answer want.
func timeCheckouts(t *testing.T, ts *testServer, sale, token string, want int) []time.Duration {
	t.Helper()
	ts.createSale(t, newSaleSpec(sale).with("zones", []any{map[string]any{"id": "ga", "price_cents": 4500, "capacity": checkoutTimingRuns}}))
	var lat []time.Duration
	tok := ""
	for i := range checkoutTimingRuns {
		if i%6 == 0 {
			tok = ts.admit(t, sale, fmt.Sprintf("b%d", i/6))
		}
		h := ts.mustHold(t, sale, tok, map[string]any{"zone": "ga", "quantity": 1})
		t0 := time.Now()
		r := ts.checkout(t, h.HoldID, tok, token, fmt.Sprintf("k%d", i))
		lat = append(lat, time.Since(t0))
		requireStatus(t, r, want, "checkout %d", i)
		if want != 201 {
			requireStatus(t, ts.do(t, "DELETE", "/v1/holds/"+h.HoldID, nil, bearerHdr(tok)), 200, "release") // the buyer's limit
		}
	}
	return lat
}

func quantileMs(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
}
