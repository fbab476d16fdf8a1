package actors

// Money left open by a crash, and refunds the gateway refused: the settler
// finishes each by asking the Payer with the same keys (settle.go).

import (
	"testing"
	"time"
)

// crashed stands for the process dying at a step: the test's AtStep panics
// with it, and crashAt's caller recovers it and restarts the engine, which
// keeps what the log took, as a restart after kill -9 would.
type crashed struct{ step string }

// crashAt runs f with the engine set to "die" at step; it reports whether f
// got there.
func (h *harness) crashAt(step string, f func()) (died bool) {
	h.t.Helper()
	h.atStep = func(at string) {
		if at == step {
			panic(crashed{at})
		}
	}
	h.restart()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crashed); !ok {
				panic(r)
			}
			died = true
		}
		h.atStep = nil
	}()
	f()
	return false
}

func (h *harness) settled() {
	h.t.Helper()
	waitFor(h.t, "no payment owed", func() bool { return h.e.RefundsOwed() == 0 })
}

// settleSetup is a harness whose sale has b1's hold of two seats in ga, a
// fake payer (which also finishes, at every open, what the last run left
// when atOpen), and b1's checkout of that hold with Idempotency-Key k1.
func settleSetup(t *testing.T, atOpen bool) (*harness, *fakePayer, *Sale, *HoldView, CheckoutRequest) {
	t.Helper()
	h := newHarness(t)
	p := newFakePayer()
	if atOpen {
		h.payer = p
	}
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	return h, p, s, v, CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}
}

// onlyCharge is the order id of p's one charge.
func onlyCharge(t *testing.T, p *fakePayer) string {
	t.Helper()
	charged := p.charged()
	requireEqual(t, len(charged), 1, "charges")
	for id := range charged {
		return id
	}
	return ""
}

func TestSettleChargeWithoutOrder(t *testing.T) {
	h, p, s, v, req := settleSetup(t, true)
	requireTrue(t, h.crashAt("checkout.after_charge", func() { h.e.Checkout(req, p) }), "died after the charge")
	charged := onlyCharge(t, p)

	// The restart finds the open attempt and the charge, and writes the order.
	h.restart()
	h.settled()
	hold := requireHold(t, h.e.GetHold(v.ID, "b1", false))
	requireEqual(t, hold.State, "purchased")
	o := requireOrder(t, h.e.Checkout(req, p), "the retry finds the order")
	requireEqual(t, o.ID, charged, "the order is the charge's")
	requireEqual(t, p.chargeAttempts(), 1, "charged once")
	requireEqual(t, len(p.refunded(o.ID)), 0)
	requireEqual(t, counts(h.sale(s.def.ID), "ga"), ZoneCounts{ID: "ga", Free: 18, Sold: 2})
}

func TestSettleChargeOfExpiredHold(t *testing.T) {
	h, p, _, v, req := settleSetup(t, true)
	requireTrue(t, h.crashAt("checkout.after_charge", func() { h.e.Checkout(req, p) }), "died after the charge")
	orderID := onlyCharge(t, p)
	// Down past the hold's expiry: its seats are no longer its own, so the
	// money goes back.
	h.clock.Advance(stdTTL)
	h.restart()
	h.settled()
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "expired")
	requireEqual(t, p.refunded(orderID), []int64{2 * 4500})
	requireCode(t, h.e.Checkout(req, p), CodeHoldExpired)
	requireEqual(t, p.chargeAttempts(), 1)
}

func TestSettleAttemptNeverCharged(t *testing.T) {
	h, p, _, v, req := settleSetup(t, true)
	req.IdemKey = ""
	requireTrue(t, h.crashAt("checkout.after_begin", func() { h.e.Checkout(req, p) }), "died before the charge")
	h.restart()
	h.settled()
	// payment_failed: the hold is the buyer's still, free to be bought.
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "active")
	// The attempt's charge key was closed before the attempt was: a charge
	// sent late under it (by a deposed leader) takes nothing.
	p.mu.Lock()
	var closed []string
	for o := range p.voided {
		closed = append(closed, o)
	}
	p.mu.Unlock()
	requireEqual(t, len(closed), 1)
	late := p.Charge(Payment{OrderID: closed[0], AmountCents: 100, Token: tokOK})
	requireTrue(t, late != nil && late.Code == CodePaymentDown, "a late charge under the closed key fails")
	requireOrder(t, h.e.Checkout(req, p))
	requireEqual(t, p.chargeAttempts(), 2)
	requireEqual(t, len(p.charges), 1)
}

// TestCheckoutUnconfirmedLeavesTheKey: a charge refused before the
// provider was called (the node could not confirm it leads) closes no
// key from that node: the attempt is left to the settler, which closes it
// once it can, and the buyer's retry pays.
func TestCheckoutUnconfirmedLeavesTheKey(t *testing.T) {
	h, p, _, v, req := settleSetup(t, false)
	p.mu.Lock()
	p.unconfirmed = true
	p.mu.Unlock()
	requireCode(t, h.e.Checkout(req, p), CodeUnavailable)
	// Asked at once: the settler's first try comes settleBackoffMin later.
	requireTrue(t, !p.wasVoidedAny(), "no key closed by the checkout")
	p.mu.Lock()
	p.unconfirmed = false
	p.mu.Unlock()
	h.settled()
	requireTrue(t, p.wasVoidedAny(), "the settler closed the key")
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "active")
	requireOrder(t, h.e.Checkout(req, p))
}

// TestSettleRetryResumes: with no Payer at open nothing finishes the attempt
// in the background; the buyer's retry with the same key resumes it under
// the same order id, so the charge key is the first one's.
func TestSettleRetryResumes(t *testing.T) {
	h, p, _, v, req := settleSetup(t, false)
	var began string
	p.setOnCharge(func(orderID string) { began = orderID })
	requireTrue(t, h.crashAt("checkout.after_charge", func() { h.e.Checkout(req, p) }), "died after the charge")
	h.restart()
	requireEqual(t, h.e.RefundsOwed(), int64(1), "owed until a Payer finishes it")
	// Another request for the hold waits for the open attempt.
	r := h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k2"}, p)
	requireCode(t, r, CodeHoldNotActive)
	// The same request resumes it; the fake provider would panic on a
	// second charge of one order, so the order id is the first one's and
	// the resumed charge is not made again.
	p.setOnCharge(nil)
	p2 := &resumePayer{fakePayer: p}
	o := requireOrder(t, h.e.Checkout(req, p2))
	requireEqual(t, o.ID, began)
	requireEqual(t, p.chargeAttempts(), 1)
}

// resumePayer answers a charge under a key the provider knows as the
// provider does: the first charge stands.
type resumePayer struct{ *fakePayer }

func (p *resumePayer) Charge(pay Payment) *Error {
	if st, _ := p.Lookup(pay); st == ChargePaid {
		return nil
	}
	return p.fakePayer.Charge(pay)
}

func TestSettleCancelAfterRefund(t *testing.T) {
	h := newHarness(t)
	p := newFakePayer()
	h.payer = p
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p))
	requireTrue(t, h.crashAt("cancel.after_refund", func() { h.e.CancelOrder(o.ID, p) }), "died after the refund")
	requireEqual(t, requireOrder(t, h.e.GetOrder(o.ID)).State, "paid", "the refund is not recorded yet")
	h.restart()
	h.settled()
	requireEqual(t, requireOrder(t, h.e.GetOrder(o.ID)).State, "cancelled")
	requireEqual(t, counts(h.sale(s.def.ID), "ga"), ZoneCounts{ID: "ga", Free: 20})
	requireTrue(t, len(p.refunded(o.ID)) >= 1, "refunded")
	requireEqual(t, requireOrder(t, h.e.CancelOrder(o.ID, p)).State, "cancelled")
}

// TestSettleRefundOwed: a refund the gateway refuses is owed, shows in
// RefundsOwed, and is made once the gateway is back.
func TestSettleRefundOwed(t *testing.T) {
	h := newHarness(t)
	p := newFakePayer()
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p))
	p.mu.Lock()
	p.refundDown = true
	p.mu.Unlock()
	requireCode(t, h.e.CancelOrder(o.ID, p), CodePaymentDown)
	requireEqual(t, h.e.RefundsOwed(), int64(1))
	time.Sleep(3 * settleBackoffMin) // a few tries fail meanwhile
	requireEqual(t, h.e.RefundsOwed(), int64(1), "still owed while the gateway is down")
	p.mu.Lock()
	p.refundDown = false
	p.mu.Unlock()
	h.settled()
	requireEqual(t, requireOrder(t, h.e.GetOrder(o.ID)).State, "cancelled")
	requireEqual(t, p.refunded(o.ID), []int64{2 * 4500})
	requireEqual(t, counts(h.sale(s.def.ID), "ga"), ZoneCounts{ID: "ga", Free: 20})
}

// TestSettleFromSnapshot: open attempts and cancels live in the zone's
// snapshot, so a restart from a snapshot (the log before it truncated)
// still finishes them.
func TestSettleFromSnapshot(t *testing.T) {
	h := newHarness(t)
	p := newFakePayer()
	h.payer = p
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	w := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 1})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: w.ID, Buyer: "b2", PaymentToken: tokOK}, p))
	requireTrue(t, h.crashAt("checkout.after_charge", func() {
		h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p)
	}), "died after the charge")
	h.payer = nil // nothing finishes them before the snapshot
	requireTrue(t, h.crashAt("cancel.before_refund", func() { h.e.CancelOrder(o.ID, p) }), "died before the refund")
	h.restart()
	requireEqual(t, h.e.RefundsOwed(), int64(2))
	requireNoError(t, h.e.Snapshot())
	h.payer = p
	h.restart()
	h.settled()
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "purchased")
	requireEqual(t, requireOrder(t, h.e.GetOrder(o.ID)).State, "cancelled")
	requireEqual(t, p.refunded(o.ID), []int64{4500})
	requireEqual(t, counts(h.sale(s.def.ID), "ga"), ZoneCounts{ID: "ga", Free: 18, Sold: 2})
}

// TestSettleRetryOfExpiredHold: a retry that resumes an attempt whose hold
// expired meanwhile charges nothing, gives the first charge back, and
// answers hold_expired, as the first try would have.
func TestSettleRetryOfExpiredHold(t *testing.T) {
	h, p, _, _, req := settleSetup(t, false)
	requireTrue(t, h.crashAt("checkout.after_charge", func() { h.e.Checkout(req, p) }), "died after the charge")
	orderID := onlyCharge(t, p)
	h.clock.Advance(stdTTL)
	h.restart() // no Payer at open: only the retry finishes it
	requireCode(t, h.e.Checkout(req, p), CodeHoldExpired)
	requireEqual(t, p.refunded(orderID), []int64{2 * 4500})
	requireEqual(t, p.chargeAttempts(), 1)
	requireCode(t, h.e.Checkout(req, p), CodeHoldExpired, "the answer is stored")
	requireEqual(t, p.refunded(orderID), []int64{2 * 4500})
}
