package actors

// Checkouts through the payment gateway, and cancelled orders.

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEngineCheckout(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}})
	h.clock.Advance(time.Minute)
	now := h.clock.Ms()

	requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b2", PaymentToken: tokOK}, p), CodeNotFound, "another buyer's hold")
	requireEqual(t, p.chargeAttempts(), 0)

	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "pay-1"}, p))
	requireTrue(t, strings.HasPrefix(o.ID, "o_"), "order id %q", o.ID)
	requireEqual(t, *o, OrderView{ID: o.ID, HoldID: v.ID, Sale: "final", Zone: "vip", Buyer: "b1",
		Seats: []string{"A-1", "A-2"}, Amount: 50000, Currency: "eur", State: "paid", PaidAt: now})
	requireEqual(t, p.charged(), map[string]int64{o.ID: 50000})

	g := requireHold(t, h.e.GetHold(v.ID, "b1", false))
	requireEqual(t, [2]string{g.State, g.OrderID}, [2]string{"purchased", o.ID})
	requireEqual(t, *requireOrder(t, h.e.GetOrder(o.ID)), *o)
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Sold: 2})
	requireEqual(t, s.ledger.count("b1"), 2, "bought seats count against the limit")

	// A bought hold cannot be bought again.
	requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "pay-2"}, p), CodeHoldNotActive)
	requireEqual(t, p.chargeAttempts(), 1)
	requireCode(t, h.e.GetOrder("o_nothing"), CodeNotFound)
	requireCode(t, h.e.GetOrder(newID('o', s.idx, 1)), CodeNotFound)
}

func TestEngineCheckoutDeclined(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})

	req := CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokDecline, IdemKey: "k1"}
	requireCode(t, h.e.Checkout(req, p), CodePaymentDecline)
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "active", "the hold stays")
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 18, Held: 2})
	// The refusal is stored: the same key answers it again without a charge.
	requireCode(t, h.e.Checkout(req, p), CodePaymentDecline)
	requireEqual(t, p.chargeAttempts(), 1)

	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k2"}, p))
	requireEqual(t, o.State, "paid")
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 18, Sold: 2})
}

func TestEngineCheckoutGatewayDown(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})

	p.setDown(true)
	req := CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}
	requireCode(t, h.e.Checkout(req, p), CodePaymentDown)
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "active")
	requireCode(t, h.e.Checkout(req, p), CodePaymentDown, "not stored: it runs again")
	requireEqual(t, p.chargeAttempts(), 2)

	p.setDown(false)
	o := requireOrder(t, h.e.Checkout(req, p), "the same key once the gateway is back")
	requireEqual(t, p.chargeAttempts(), 3)
	requireEqual(t, *requireOrder(t, h.e.Checkout(req, p)), *o, "now the answer is stored")
	requireEqual(t, p.chargeAttempts(), 3)

	// Not stored across a restart either: no record was written for it.
	v2 := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 1})
	req2 := CheckoutRequest{HoldID: v2.ID, Buyer: "b2", PaymentToken: tokError, IdemKey: "k1"}
	requireCode(t, h.e.Checkout(req2, p), CodePaymentDown)
	h.restart()
	requireCode(t, h.e.Checkout(req2, p), CodePaymentDown)
	requireEqual(t, p.chargeAttempts(), 5)
}

// TestEngineCheckoutKeyClosedMeanwhile: the key of the attempt a checkout
// charges under is closed while the charge waits (the settler, finishing
// the same attempt after a restart, voided it). Nothing was charged under
// it, and the buyer's checkout goes on as a fresh attempt: one order, one
// charge, under the second attempt's key.
func TestEngineCheckoutKeyClosedMeanwhile(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	var first string
	p.setOnCharge(func(orderID string) {
		if first == "" {
			first = orderID
			st, err := p.Void(Payment{OrderID: orderID})
			requireTrue(t, err == nil && st == ChargeNone, "void: %v %v", st, err)
		}
	})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}, p))
	requireTrue(t, o.ID != first, "the order is the fresh attempt's, not the closed %s", first)
	requireEqual(t, p.charged(), map[string]int64{o.ID: 9000})
	requireEqual(t, p.chargeAttempts(), 2)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 18, Sold: 2})
	// The answer is stored under the key like any order.
	requireEqual(t, *requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}, p)), *o)
	requireEqual(t, p.chargeAttempts(), 2)
}

func TestEngineCheckoutAfterExpiry(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 6})

	// At expires_at exactly the hold is over, ticked or not.
	h.clock.Advance(stdTTL)
	requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p), CodeHoldExpired)
	requireEqual(t, p.chargeAttempts(), 0)
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "expired")
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 6})
}

func TestEngineCheckoutEndsDuringPayment(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()

	// The hold expires while the gateway works: the charge is refunded.
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3})
	p.setOnCharge(func(string) { h.clock.Advance(stdTTL) })
	requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p), CodeHoldExpired)
	p.setOnCharge(nil)
	charged := p.charged()
	requireEqual(t, len(charged), 1)
	for orderID, amount := range charged {
		requireEqual(t, amount, int64(3*25000))
		requireEqual(t, p.refunded(orderID), []int64{amount}, "refund of %s", orderID)
		requireCode(t, h.e.GetOrder(orderID), CodeNotFound, "no order for a refunded charge")
	}
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "expired")
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20})
	requireEqual(t, s.ledger.count("b1"), 0)

	// The buyer releases the hold while the gateway works: refunded too.
	v2 := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 1})
	var orderID string
	p.setOnCharge(func(id string) {
		orderID = id
		requireEqual(t, requireHold(t, h.e.ReleaseHold(v2.ID, "b2", false)).State, "released")
	})
	requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: v2.ID, Buyer: "b2", PaymentToken: tokOK}, p), CodeHoldNotActive)
	p.setOnCharge(nil)
	requireEqual(t, p.refunded(orderID), []int64{4500})
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})

	// A second checkout of a hold whose payment is in progress is refused
	// before it reaches the gateway.
	v3 := mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1})
	var nested atomic.Bool
	p.setOnCharge(func(string) {
		if nested.CompareAndSwap(false, true) {
			requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: v3.ID, Buyer: "b3", PaymentToken: tokOK}, p), CodeHoldNotActive)
		}
	})
	requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v3.ID, Buyer: "b3", PaymentToken: tokOK}, p))
	p.setOnCharge(nil)
	requireEqual(t, p.chargeAttempts(), 3)
}

func TestEngineCancelOrder(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 6})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p))
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1}), CodeLimitExceeded)

	h.clock.Advance(time.Minute)
	c := requireOrder(t, h.e.CancelOrder(o.ID, p))
	want := *o
	want.State, want.CancelledAt = "cancelled", h.clock.Ms()
	requireEqual(t, *c, want)
	requireEqual(t, p.refunded(o.ID), []int64{6 * 25000})
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20})
	requireEqual(t, *requireOrder(t, h.e.GetOrder(o.ID)), want)
	// The hold keeps reading purchased, with its order.
	g := requireHold(t, h.e.GetHold(v.ID, "b1", false))
	requireEqual(t, [2]string{g.State, g.OrderID}, [2]string{"purchased", o.ID})

	// A second cancel answers the same and refunds nothing more.
	h.clock.Advance(time.Minute)
	requireEqual(t, *requireOrder(t, h.e.CancelOrder(o.ID, p)), want)
	requireEqual(t, p.refunded(o.ID), []int64{6 * 25000})
	requireCode(t, h.e.CancelOrder("o_nothing", p), CodeNotFound)

	// The cancelled seats no longer count against the buyer, and anyone
	// may hold them again.
	requireEqual(t, s.ledger.count("b1"), 0)
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 6})
	requireEqual(t, mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: v.Seats}).Seats, v.Seats)
}

func TestEngineCancelOrderConcurrent(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, p))

	// Two operators cancel at the same moment: one refund, one
	// cancellation, the same answer for both.
	const cancellers = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	answers := make([]Result, cancellers)
	for i := range cancellers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = h.e.CancelOrder(o.ID, p)
		}()
	}
	close(start)
	wg.Wait()
	first := requireOrder(t, answers[0])
	for _, r := range answers {
		requireEqual(t, *requireOrder(t, r), *first)
	}
	requireEqual(t, first.State, "cancelled")
	requireEqual(t, p.refunded(o.ID), []int64{2 * 4500}, "refunds of one order")
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})
	requireEqual(t, s.ledger.count("b1"), 0)
}
