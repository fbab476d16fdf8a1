package actors

import (
	"sync"
	"syscall"
	"testing"

	"onsale/wal"
)

// replayPayer is a gateway as Stripe and the Simulator behave: a charge
// with a key seen before replays the first outcome (paid), even if the
// money was refunded since.
type replayPayer struct {
	mu       sync.Mutex
	state    map[string]ChargeState
	onCharge func()
	lookDown bool
	charges  int
	refunds  int
}

func (p *replayPayer) Charge(pay Payment) *Error {
	p.mu.Lock()
	hook := p.onCharge
	p.onCharge = nil
	p.mu.Unlock()
	if hook != nil {
		hook()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.state[pay.OrderID]; ok && st != ChargeNone {
		return nil // replay
	}
	p.charges++
	p.state[pay.OrderID] = ChargePaid
	return nil
}
func (p *replayPayer) Refund(pay Payment) *Error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state[pay.OrderID] == ChargePaid {
		p.refunds++
	}
	p.state[pay.OrderID] = ChargeRefunded
	return nil
}

// Void is Lookup: these tests send no charge after an attempt is closed.
func (p *replayPayer) Void(pay Payment) (ChargeState, *Error) { return p.Lookup(pay) }
func (p *replayPayer) Lookup(pay Payment) (ChargeState, *Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lookDown {
		return ChargeUnknown, errorf(CodePaymentDown, "down")
	}
	return p.state[pay.OrderID], nil
}

// TestCheckoutRefusedOrderRecordKeepsTheCharge: the log refuses a paid
// checkout's order record (the disk fills during the charge). The charge
// must not be refunded and then made into an order by the buyer's retry:
// a provider replays a key's first answer, refunded or not. The retry
// after the disk recovers gets the one order for the one charge, with no
// refund; or, if it comes to it, a refund and no order.
func TestCheckoutRefusedOrderRecordKeepsTheCharge(t *testing.T) {
	ffs := wal.NewFaultFS(nil)
	h := &harness{t: t, dir: t.TempDir(), clock: &fakeClock{}, logFS: ffs}
	h.open()
	defer h.close()
	p := &replayPayer{state: map[string]ChargeState{}, lookDown: false}
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	p.onCharge = func() {
		ffs.FailWrites(-1, syscall.ENOSPC)
		go h.e.sales["final"].Hold(HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 1})
		waitFor(t, "log down", func() bool { return h.e.StorageErr() != nil })
	}
	req := CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}
	r := h.e.Checkout(req, p)
	t.Logf("first: %s", describe(r))
	ffs.Heal()
	waitFor(t, "log up", func() bool { return h.e.StorageErr() == nil })
	r = h.e.Checkout(req, p)
	t.Logf("retry: %s", describe(r))
	p.mu.Lock()
	t.Logf("charges=%d refunds=%d", p.charges, p.refunds)
	p.mu.Unlock()
	if r.Err == nil && p.refunds > 0 && p.charges == 1 {
		t.Errorf("order %s made for a charge that was refunded", r.Order.ID)
	}
	if p.charges != 1 {
		t.Errorf("%d charges for one checkout", p.charges)
	}
	// Settled either way in the end: one order and no refund, or a refund
	// and no order.
	waitFor(t, "nothing owed", func() bool { return h.e.RefundsOwed() == 0 })
	o := h.e.GetOrder(r.Order.ID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.Err == nil && (o.Err != nil || p.refunds != 0) {
		t.Errorf("the retry answered order %s, which reads %s, with %d refunds", r.Order.ID, describe(o), p.refunds)
	}
}
