package httpapi

// The Stripe gateway's outcomes, from a small stateful fake of the Stripe
// API that answers with Stripe's own JSON bodies: what the gateway returns
// for each, and what a buyer's checkout answers through a real server.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82"

	"onsale/actors"
)

// Payment methods the fake knows; each makes one outcome.
const (
	pmPaid      = "pm_card_visa"
	pmDeclined  = "pm_card_chargeDeclined"
	pm3DS       = "pm_card_authenticationRequired"
	pmOutage    = "pm_outage"
	pmSlow      = "pm_slow"
	pmUnknown   = "pm_nonexistent"
	pmStillSlow = "pm_processing"
)

// fakeStripe is a stateful fake of the few Stripe endpoints the gateway
// uses. Like Stripe it replays the first answer to a repeated idempotency
// key, and keeps intents and their refunds.
type fakeStripe struct {
	slow time.Duration // how long pmSlow takes

	mu      sync.Mutex
	answers map[string]fakeAnswer // by idempotency key
	params  map[string]string     // the form first sent with each key: Stripe refuses the key with others
	intents map[string]*fakeIntent
	creates int // intents created (first answers, not replays)
	// searchLags: the search finds nothing, as Stripe's index right
	// after a write.
	searchLags bool
	// keep500: a 500 is kept for its key, as Stripe does once the
	// endpoint began executing.
	keep500 bool
}

type fakeAnswer struct {
	status int
	body   string
}

type fakeIntent struct {
	ID, Status, Order string
	Amount            int64
	Refunded          bool
}

func newFakeStripe(t testing.TB) (*fakeStripe, string) {
	f := &fakeStripe{slow: 5 * time.Second, answers: map[string]fakeAnswer{}, params: map[string]string{}, intents: map[string]*fakeIntent{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func stripeError(typ, code, msg, extra string) string {
	return fmt.Sprintf(`{"error":{"type":%q,"code":%q,"message":%q%s}}`, typ, code, msg, extra)
}

func (f *fakeStripe) intentJSON(pi *fakeIntent) string {
	refunded := 0
	if pi.Refunded {
		refunded = int(pi.Amount)
	}
	return fmt.Sprintf(`{"id":%q,"object":"payment_intent","amount":%d,"currency":"eur","status":%q,"metadata":{"order_id":%q},`+
		`"latest_charge":{"id":"ch_%s","object":"charge","amount":%d,"amount_refunded":%d,"refunded":%t}}`,
		pi.ID, pi.Amount, pi.Status, pi.Order, pi.ID, pi.Amount, refunded, pi.Refunded)
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer sk_test_") {
		http.Error(w, stripeError("invalid_request_error", "", "Invalid API Key provided", ""), 401)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if r.Method == "POST" {
		f.mu.Lock()
		a, ok := f.answers[key]
		first := f.params[key]
		f.mu.Unlock()
		if ok && first != r.PostForm.Encode() {
			reply(w, fakeAnswer{400, stripeError("idempotency_error", "",
				"Keys for idempotent requests can only be used with the same parameters they were first used with.", "")})
			return
		}
		if ok {
			w.Header().Set("Idempotent-Replayed", "true")
			reply(w, a)
			return
		}
	}
	var a fakeAnswer
	switch {
	case r.Method == "POST" && r.URL.Path == "/v1/payment_intents":
		if r.PostForm.Get("payment_method") == pmSlow {
			select {
			case <-time.After(f.slow):
			case <-r.Context().Done():
				return
			}
		}
		a = f.create(r.PostForm)
	case r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/v1/payment_intents/") && strings.HasSuffix(r.URL.Path, "/cancel"):
		f.mu.Lock()
		pi, ok := f.intents[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/payment_intents/"), "/cancel")]
		switch {
		case !ok:
			a = fakeAnswer{404, stripeError("invalid_request_error", "resource_missing", "No such payment_intent", "")}
		case pi.Status == "succeeded" || pi.Status == "canceled":
			a = fakeAnswer{400, stripeError("invalid_request_error", "payment_intent_unexpected_state", "You cannot cancel this PaymentIntent", "")}
		default:
			pi.Status = "canceled"
			a = fakeAnswer{200, f.intentJSON(pi)}
		}
		f.mu.Unlock()
	case r.Method == "POST" && r.URL.Path == "/v1/refunds":
		a = f.refund(r.PostForm.Get("payment_intent"))
	case r.Method == "GET" && r.URL.Path == "/v1/payment_intents/search":
		a = f.search(r.URL.Query().Get("query"))
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/v1/payment_intents/"):
		f.mu.Lock()
		pi, ok := f.intents[strings.TrimPrefix(r.URL.Path, "/v1/payment_intents/")]
		if ok {
			a = fakeAnswer{200, f.intentJSON(pi)}
		} else {
			a = fakeAnswer{404, stripeError("invalid_request_error", "resource_missing", "No such payment_intent", "")}
		}
		f.mu.Unlock()
	default:
		a = fakeAnswer{404, stripeError("invalid_request_error", "", "Unrecognized request URL", "")}
	}
	f.mu.Lock()
	keep := a.status != 500 || f.keep500
	f.mu.Unlock()
	if r.Method == "POST" && key != "" && keep {
		f.mu.Lock()
		f.params[key] = r.PostForm.Encode()
		f.answers[key] = a // Stripe does not keep 500s: a retry runs again
		f.mu.Unlock()
	}
	reply(w, a)
}

func reply(w http.ResponseWriter, a fakeAnswer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	if _, err := w.Write([]byte(a.body)); err != nil {
		return // the client went away; it sees the error itself
	}
}

func (f *fakeStripe) create(form url.Values) fakeAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	pm := form.Get("payment_method")
	if pm == pmOutage {
		return fakeAnswer{500, stripeError("api_error", "", "An unknown error occurred", "")}
	}
	if pm == pmUnknown {
		return fakeAnswer{400, stripeError("invalid_request_error", "resource_missing", "No such PaymentMethod: 'pm_nonexistent'", `,"param":"payment_method"`)}
	}
	var amount int64
	fmt.Sscan(form.Get("amount"), &amount)
	if amount < 50 {
		return fakeAnswer{400, stripeError("invalid_request_error", "amount_too_small", "Amount must be at least €0.50 eur", `,"param":"amount"`)}
	}
	f.creates++
	pi := &fakeIntent{ID: fmt.Sprintf("pi_fake%d", f.creates), Order: form.Get("metadata[order_id]"), Amount: amount}
	f.intents[pi.ID] = pi
	switch pm {
	case pmDeclined:
		pi.Status = "requires_payment_method"
		return fakeAnswer{402, stripeError("card_error", "card_declined", "Your card was declined.",
			`,"decline_code":"generic_decline","payment_intent":`+f.intentJSON(pi))}
	case pm3DS:
		pi.Status = "requires_action"
	case pmStillSlow:
		pi.Status = "processing"
	case "":
		pi.Status = "requires_payment_method" // created, never confirmed
	default:
		pi.Status = "succeeded"
	}
	return fakeAnswer{200, f.intentJSON(pi)}
}

func (f *fakeStripe) refund(id string) fakeAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	pi, ok := f.intents[id]
	switch {
	case !ok:
		return fakeAnswer{404, stripeError("invalid_request_error", "resource_missing", "No such payment_intent", `,"param":"payment_intent"`)}
	case pi.Status != "succeeded":
		return fakeAnswer{400, stripeError("invalid_request_error", "payment_intent_unexpected_state", "This PaymentIntent has no charge to refund", "")}
	case pi.Refunded:
		return fakeAnswer{400, stripeError("invalid_request_error", "charge_already_refunded", "Charge has already been refunded.", "")}
	}
	pi.Refunded = true
	return fakeAnswer{200, fmt.Sprintf(`{"id":"re_%s","object":"refund","amount":%d,"payment_intent":%q,"status":"succeeded"}`, pi.ID, pi.Amount, pi.ID)}
}

func (f *fakeStripe) search(query string) fakeAnswer {
	order, ok := strings.CutPrefix(query, "metadata['order_id']:'")
	order, ok2 := strings.CutSuffix(order, "'")
	if !ok || !ok2 {
		return fakeAnswer{400, stripeError("invalid_request_error", "", "bad query", "")}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var data []json.RawMessage
	for _, pi := range f.intents {
		if pi.Order == order && !f.searchLags {
			data = append(data, json.RawMessage(f.intentJSON(pi)))
		}
	}
	b, err := json.Marshal(map[string]any{"object": "search_result", "url": "/v1/payment_intents/search", "has_more": false, "data": data})
	if err != nil {
		panic(err)
	}
	return fakeAnswer{200, string(b)}
}

func (f *fakeStripe) refundedOrders() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, pi := range f.intents {
		if pi.Refunded {
			out = append(out, pi.Order)
		}
	}
	return out
}

// testStripeKey looks like a test secret key, which stripe-mock requires
// and the fake checks.
const testStripeKey = "sk_test_onsale"

// quietLogger drops the gateway's warnings, which these tests provoke.
var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// stripeFixture is a fake Stripe, a gateway on it, and the payment of an
// order (by name, with a payment method) whose attempt started at started.
func stripeFixture(t *testing.T, started time.Time) (*fakeStripe, string, *Stripe, func(order, pm string) actors.Payment) {
	f, base := newFakeStripe(t)
	gw := newTestStripe(t, base)
	pay := func(order, pm string) actors.Payment {
		return actors.Payment{Sale: "s", HoldID: "h_" + order, OrderID: "o_" + order, AmountCents: 4500, Currency: "eur", Token: pm,
			StartedAt: started.UnixMilli()}
	}
	return f, base, gw, pay
}

// newTestStripe is a gateway on the fake (or stripe-mock) at base.
func newTestStripe(t *testing.T, base string) *Stripe {
	gw, err := NewStripe(StripeConfig{Key: testStripeKey, APIBase: base, Timeout: 300 * time.Millisecond, Logger: quietLogger})
	requireNoErr(t, err)
	return gw
}

// TestStripeOutcomes: each answer Stripe can give a charge becomes the
// gateway error the bulkhead turns into the contract's codes; refunds and
// lookups follow the intent, with and without the id in memory.
func TestStripeOutcomes(t *testing.T) {
	t.Parallel()
	// Started long ago: Stripe's search is trusted for these.
	f, base, gw, pay := stripeFixture(t, time.Now().Add(-time.Hour))
	ctx := context.Background()
	for _, c := range []struct {
		pm       string
		want     error // nil, ErrDeclined, ErrAuthRequired or ErrGatewayDown
		state    actors.ChargeState
		stateErr bool
	}{
		{pmPaid, nil, actors.ChargePaid, false},
		{pmDeclined, ErrDeclined, actors.ChargeNone, false},
		{pm3DS, ErrAuthRequired, actors.ChargeNone, false},
		{pmUnknown, ErrDeclined, actors.ChargeNone, false},
		{pmStillSlow, ErrGatewayDown, actors.ChargeUnknown, false},
		{pmOutage, ErrGatewayDown, actors.ChargeNone, false},
		{pmSlow, ErrGatewayDown, actors.ChargeNone, false},
	} {
		p := pay(c.pm, c.pm)
		start := time.Now()
		err := gw.Charge(ctx, p)
		took := time.Since(start)
		switch c.want {
		case nil:
			requireNoErr(t, err, c.pm)
		case ErrDeclined:
			requireTrue(t, errors.Is(err, ErrDeclined) && !errors.Is(err, ErrAuthRequired), "%s: declined: %v", c.pm, err)
		default:
			requireTrue(t, errors.Is(err, c.want), "%s: want %v, got %v", c.pm, c.want, err)
		}
		requireTrue(t, took < 2*time.Second, "%s answered in %s, within the gateway's timeout", c.pm, took)
		st, err := gw.Lookup(ctx, p)
		requireNoErr(t, err, "%s: lookup", c.pm)
		requireEqual(t, st, c.state, "%s: lookup", c.pm)
	}
	requireTrue(t, errors.Is(ErrAuthRequired, ErrDeclined), "3-D Secure is a decline to the buyer")

	// A charge just attempted that the search does not show yet is not
	// "none": the search lags, so the answer is unknown.
	justNow := pay("just-now", pmOutage)
	justNow.StartedAt = time.Now().UnixMilli()
	st, err := gw.Lookup(ctx, justNow)
	requireTrue(t, err != nil && st == actors.ChargeUnknown, "a fresh attempt not found yet: %v %v", st, err)

	// The same key charges once: Stripe replays the first answer.
	before := f.creates
	requireNoErr(t, gw.Charge(ctx, pay(pmPaid, pmPaid)), "the same charge again")
	requireEqual(t, f.creates, before, "no second intent for the same key")

	// Refund by the remembered id; again is fine; a lookup sees it.
	paid := pay(pmPaid, pmPaid)
	requireNoErr(t, gw.Refund(ctx, paid), "refund")
	requireNoErr(t, gw.Refund(ctx, paid), "refund again (replayed)")
	st, err = gw.Lookup(ctx, paid)
	requireNoErr(t, err)
	requireEqual(t, st, actors.ChargeRefunded)

	// As after a restart: found by search; a refund under a new key of an
	// intent refunded already counts as done.
	fresh := newTestStripe(t, base)
	st, err = fresh.Lookup(ctx, paid)
	requireNoErr(t, err)
	requireEqual(t, st, actors.ChargeRefunded, "found by search")
	st, err = fresh.Lookup(ctx, pay("never", ""))
	requireNoErr(t, err)
	requireEqual(t, st, actors.ChargeNone, "an order never charged")
	requireTrue(t, errors.Is(fresh.Refund(ctx, pay("never", "")), ErrGatewayDown), "nothing to refund is an error, not a success")
	f.mu.Lock()
	f.answers = map[string]fakeAnswer{} // Stripe forgot the keys (24 h later)
	f.mu.Unlock()
	requireNoErr(t, fresh.Refund(ctx, paid), "charge_already_refunded is done")

	_, err = NewStripe(StripeConfig{APIBase: base})
	requireTrue(t, err != nil && strings.Contains(err.Error(), "STRIPE_SECRET_KEY"), "no key: %v", err)
}

// TestStripeVoid: a void closes an unused charge key, so that a charge
// sent late under it takes nothing; it answers the charge when there is
// one, and "unknown" when the key was used but its intent is not found yet.
func TestStripeVoid(t *testing.T) {
	t.Parallel()
	// Just started: Lookup would not trust "not found" yet; Void does not
	// need to.
	f, base, gw, pay := stripeFixture(t, time.Now())
	ctx := context.Background()
	st, err := gw.Void(ctx, pay("unused", ""))
	requireNoErr(t, err, "void of an unused key")
	requireEqual(t, st, actors.ChargeNone)
	late := gw.Charge(ctx, pay("unused", pmPaid))
	requireTrue(t, errors.Is(late, errVoided) && !errors.Is(late, ErrDeclined), "a late charge under a closed key: %v", late)
	st, err = gw.Void(ctx, pay("unused", ""))
	requireNoErr(t, err, "void again")
	requireEqual(t, st, actors.ChargeNone, "closed still")
	f.mu.Lock()
	for _, pi := range f.intents {
		requireTrue(t, pi.Status == "canceled", "the void's intent %s of %s is %s, want canceled", pi.ID, pi.Order, pi.Status)
	}
	f.mu.Unlock()

	requireNoErr(t, gw.Charge(ctx, pay("paid", pmPaid)), "charge")
	st, err = gw.Void(ctx, pay("paid", ""))
	requireNoErr(t, err, "void of a charged key")
	requireEqual(t, st, actors.ChargePaid, "a charged key answers its charge")

	// A charge made, then the search lags and the memory is gone (another
	// node, a restart): the void is refused for the key, and the answer is
	// unknown until the search finds the intent.
	requireNoErr(t, gw.Charge(ctx, pay("hidden", pmPaid)), "charge")
	f.mu.Lock()
	f.searchLags = true
	f.mu.Unlock()
	fresh := newTestStripe(t, base)
	st, err = fresh.Void(ctx, pay("hidden", ""))
	requireTrue(t, err != nil && st == actors.ChargeUnknown, "a used key whose intent is not found: %v %v", st, err)
	f.mu.Lock()
	f.searchLags = false
	f.mu.Unlock()
	st, err = fresh.Void(ctx, pay("hidden", ""))
	requireNoErr(t, err, "found once the search catches up")
	requireEqual(t, st, actors.ChargePaid)

	// A charge that failed with a 500 Stripe kept: the key is used, no
	// intent exists. Unknown while the search may lag; none after.
	f.mu.Lock()
	f.keep500 = true
	f.mu.Unlock()
	outage := pay("outage", pmOutage)
	requireTrue(t, errors.Is(gw.Charge(ctx, outage), ErrGatewayDown), "the 500")
	st, err = gw.Void(ctx, outage)
	requireTrue(t, err != nil && st == actors.ChargeUnknown, "a fresh failed attempt: %v %v", st, err)
	outage.StartedAt = time.Now().Add(-time.Hour).UnixMilli()
	st, err = gw.Void(ctx, outage)
	requireNoErr(t, err, "an old attempt whose key keeps a failure")
	requireEqual(t, st, actors.ChargeNone)

	// An amount Stripe refuses (under its minimum): no charge can take
	// it either.
	free := pay("free", "")
	free.AmountCents = 0
	st, err = gw.Void(ctx, free)
	requireNoErr(t, err, "void of an amount Stripe refuses")
	requireEqual(t, st, actors.ChargeNone)
}

// TestStripeCheckoutThroughServer: a buyer's checkout through a real server
// whose gateway is Stripe answers the contract's codes for each outcome,
// and a cancel refunds at Stripe.
func TestStripeCheckoutThroughServer(t *testing.T) {
	t.Parallel()
	f, base := newFakeStripe(t)
	gw := newTestStripe(t, base)
	ts := startServer(t, func(o *Options) { o.Gateway = gw })
	ts.createSale(t, newSaleSpec("s").with("currency", "usd"))
	tok := ts.admit(t, "s", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})

	for _, c := range []struct {
		pm, code string
		status   int
		says     string
	}{
		{pmDeclined, actors.CodePaymentDecline, 402, "another card"},
		{pm3DS, actors.CodePaymentDecline, 402, "another card"},
		{pmOutage, actors.CodePaymentDown, 502, "retry"},
		{pmSlow, actors.CodePaymentDown, 502, "retry"},
	} {
		// Each case on a hold of its own: after an outage or a timeout the
		// charge's outcome is unknown until Stripe's search can be trusted
		// (stripeSearchLag), and the hold's next checkout waits for it.
		hc := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
		e := requireError(t, ts.checkout(t, hc.HoldID, tok, c.pm, "k-"+c.pm), c.status, c.code, c.pm)
		requireTrue(t, strings.Contains(e.Error.Message, c.says), "%s: %q says %q", c.pm, e.Error.Message, c.says)
		requireEqual(t, ts.do(t, "GET", "/v1/holds/"+hc.HoldID, nil, bearerHdr(tok)).object(t)["state"], any("active"), "%s: the hold stays", c.pm)
	}
	e := requireError(t, ts.checkout(t, h.HoldID, tok, pm3DS, "k-3ds-again"), 402, actors.CodePaymentDecline)
	requireTrue(t, strings.Contains(e.Error.Message, "authentication"), "3-D Secure says why: %q", e.Error.Message)

	r := ts.checkout(t, h.HoldID, tok, pmPaid, "k-paid")
	requireStatus(t, r, 201, "paid")
	var o orderView
	r.decode(t, &o)
	requireEqual(t, o.Currency, "usd")
	requireEqual(t, o.Amount, int64(4500))

	cancel := requireStatus(t, ts.do(t, "POST", "/v1/orders/"+o.OrderID+"/cancel", nil, adminHdr), 200, "cancel")
	requireEqual(t, cancel["state"], any("cancelled"))
	requireEqual(t, f.refundedOrders(), []string{o.OrderID}, "the cancel refunded at Stripe")
}

// TestPaymentsOptions: --payments picks the gateway; stripe needs its key
// and says so at start-up; the rest of the wiring reaches Stripe.
func TestPaymentsOptions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		o    Options
		says string // "" for accepted
	}{
		{Options{}, ""},
		{Options{Payments: PaymentsSimulator}, ""},
		{Options{Payments: PaymentsStripe, StripeKey: testStripeKey}, ""},
		{Options{Payments: PaymentsStripe}, "STRIPE_SECRET_KEY"},
		{Options{Payments: "paypal"}, "--payments"},
		{Options{StripeAPIBase: "http://127.0.0.1:1"}, "--stripe-api-base"},
	} {
		err := c.o.Check()
		if c.says == "" {
			requireNoErr(t, err, "%+v", c.o)
			continue
		}
		requireTrue(t, err != nil && strings.Contains(err.Error(), c.says), "%+v: %v", c.o, err)
	}

	_, base := newFakeStripe(t)
	ts := startServer(t, func(o *Options) {
		o.Payments, o.StripeKey, o.StripeAPIBase = PaymentsStripe, testStripeKey, base
	})
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	requireError(t, ts.checkout(t, h.HoldID, tok, pmUnknown, "k1"), 402, actors.CodePaymentDecline, "a payment method Stripe does not know")
	requireStatus(t, ts.checkout(t, h.HoldID, tok, pmPaid, "k2"), 201, "paid through Stripe")
}

// TestStripeKeyInUseIsNotClosed: Stripe's answer that another request with
// the key is in progress (a deposed leader's charge, say) is an unknown
// outcome, never a closed key: that request may yet take the money, so
// the checkout must not go on as a fresh attempt.
func TestStripeKeyInUseIsNotClosed(t *testing.T) {
	gw := newTestStripe(t, "http://127.0.0.1:1")
	p := actors.Payment{Sale: "s", HoldID: "h_1", OrderID: "o_1", AmountCents: 4500, Currency: "eur", Token: "pm_card_visa"}
	inUse := &stripe.Error{Type: stripe.ErrorTypeIdempotency, Code: stripe.ErrorCodeIdempotencyKeyInUse, HTTPStatusCode: 409}
	err := gw.chargeError(p, inUse)
	requireTrue(t, errors.Is(err, ErrGatewayDown) && !errors.Is(err, errVoided), "key in use: %v", err)
	closed := &stripe.Error{Type: stripe.ErrorTypeIdempotency, HTTPStatusCode: 400}
	requireTrue(t, errors.Is(gw.chargeError(p, closed), errVoided), "a key closed by a void")
}
