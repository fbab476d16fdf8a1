package actors

import (
	"sync"
	"sync/atomic"
	"time"

	"onsale/actors/seats"
)

// The settler finishes money that could not be finished on the spot: open
// payment attempts and cancels found at recovery (the process stopped
// between recording and finishing them), and refunds or lookups that failed
// live because the gateway did. It asks the gateway with the same
// idempotency keys the first try used, so however often it tries, money
// moves once. It runs on its own goroutine and retries with backoff until
// each is done; RefundsOwed counts what is left, for /metrics.
//
// For an open payment attempt, Payer.Void decides (it closes the charge key
// when nothing was charged, so that no charge can follow the verdict):
//   - paid: if the hold is still active (its seats still held by it), the
//     order is written, as the checkout would have; otherwise the money is
//     refunded and payment_refunded recorded;
//   - refunded: payment_refunded is recorded;
//   - none: payment_failed is recorded; the hold stays as it is;
//   - unknown (the gateway did not say): tried again later.
//
// For an open cancel: refund under the order's refund key, then the
// cancel's record, which puts the seats back on sale once.

// Limits of the settler.
const (
	// owedMax bounds what the settler keeps: far more than the payments in
	// flight at once (the bulkhead caps those at a few hundred). Past it a
	// debt is logged for an operator instead of kept.
	owedMax = 100_000
	// settleBackoffMin and settleBackoffMax bound the wait between tries of
	// one debt: quick for a blip, at most a minute for a gateway that is down.
	settleBackoffMin = 100 * time.Millisecond
	settleBackoffMax = time.Minute
)

// owed is one payment or cancel to finish.
type owed struct {
	s      *Sale
	zh     *zoneHandle
	p      Payer
	pay    seats.Payment // an open payment attempt, when order is ""
	order  string        // an open cancel of this order
	tries  int
	nextAt time.Time
}

type settler struct {
	e     *Engine
	mu    sync.Mutex // guards items; a leaf lock
	items []*owed
	wake  chan struct{} // buffered 1: something was added
	n     atomic.Int64  // debts not finished yet
}

func newSettler(e *Engine) *settler {
	return &settler{e: e, wake: make(chan struct{}, 1)}
}

// owePayment hands over an open payment attempt whose outcome could not be
// recorded now.
func (t *settler) owePayment(s *Sale, zh *zoneHandle, pay seats.Payment, p Payer) {
	t.add(&owed{s: s, zh: zh, pay: pay, p: p})
}

// oweCancel hands over an open cancel whose refund failed.
func (t *settler) oweCancel(s *Sale, zh *zoneHandle, orderID string, p Payer) {
	t.add(&owed{s: s, zh: zh, order: orderID, p: p})
}

func (t *settler) add(o *owed) {
	t.mu.Lock()
	if len(t.items) >= owedMax {
		t.mu.Unlock()
		t.e.logger.Error("too many payments owed; finish this one by hand", "order", o.pay.Order+o.order, "hold", o.pay.Hold)
		return
	}
	o.nextAt = time.Now().Add(settleBackoffMin)
	t.items = append(t.items, o)
	t.mu.Unlock()
	t.n.Add(1)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// run tries what is due until the engine stops.
func (t *settler) run() {
	defer t.e.stopped.Done()
	timer := time.NewTimer(settleBackoffMin)
	defer timer.Stop()
	for {
		select {
		case <-t.e.stop:
			return
		case <-t.wake:
		case <-timer.C:
		}
		now := time.Now()
		t.mu.Lock()
		var due []*owed
		keep := t.items[:0]
		for _, o := range t.items {
			if !o.nextAt.After(now) {
				due = append(due, o)
			} else {
				keep = append(keep, o)
			}
		}
		t.items = keep
		t.mu.Unlock()
		for _, o := range due {
			select {
			case <-t.e.stop:
				return
			default:
			}
			if t.try(o) {
				t.n.Add(-1)
				continue
			}
			o.tries++
			o.nextAt = time.Now().Add(min(settleBackoffMax, settleBackoffMin<<min(o.tries, 10)))
			t.mu.Lock()
			t.items = append(t.items, o)
			t.mu.Unlock()
		}
		t.mu.Lock()
		next := settleBackoffMax
		for _, o := range t.items {
			next = min(next, max(time.Until(o.nextAt), time.Millisecond))
		}
		t.mu.Unlock()
		timer.Reset(next)
	}
}

// try finishes one debt; false if it must be tried again.
func (t *settler) try(o *owed) bool {
	if o.p == nil {
		return false
	}
	e := t.e
	if o.order != "" {
		return e.finishCancel(o.s, o.zh, o.order, o.p)
	}
	return e.finishPayment(o.s, o.zh, o.pay, o.p)
}

// finishPayment settles an open attempt as the provider says it went.
func (e *Engine) finishPayment(s *Sale, zh *zoneHandle, att seats.Payment, p Payer) bool {
	pay := Payment{Sale: s.def.ID, HoldID: att.Hold, OrderID: att.Order, AmountCents: att.Amount, Currency: s.def.Currency, StartedAt: att.StartedAt}
	st, err := p.Void(pay)
	if err != nil {
		return false
	}
	switch st {
	case ChargeNone:
		return e.endPayment(zh, att, false)
	case ChargeRefunded:
		return e.endPayment(zh, att, true)
	case ChargePaid:
		c := newCall()
		e.sys.Root.Send(zh.pid, &checkoutEndCmd{c: c, holdID: att.Hold, paid: true, orderID: att.Order,
			idemKey: att.IdemKey, idemHash: att.IdemHash})
		r := c.wait(e.cfg.CallTimeout)
		switch {
		case r.Err == nil:
			return true
		case r.Err.Code == CodeHoldExpired || r.Err.Code == CodeHoldNotActive || r.Err.Code == CodeNotFound:
			// The hold's seats are no longer its own: give the money back.
			return e.refund(p, pay) && e.endPayment(zh, att, true)
		}
	}
	return false
}

// finishCancel refunds an order whose cancel is open and records the cancel.
func (e *Engine) finishCancel(s *Sale, zh *zoneHandle, orderID string, p Payer) bool {
	r := e.cancelOrder(orderID, p, false)
	return r.Err == nil || r.Err.Code == CodeNotFound
}

// RefundsOwed is how many payments or cancels wait for the gateway to be
// finished (a refund owed, or an outcome not known yet): 0 when all money
// is settled.
func (e *Engine) RefundsOwed() int64 { return e.settler.n.Load() }

// oweOpen hands every open attempt and cancel that recovery found to the
// settler. It runs in Open, before any request.
func (e *Engine) oweOpen() {
	p := e.cfg.Payer
	for _, s := range e.byIdx {
		if s == nil {
			continue
		}
		for _, zh := range s.zones {
			for _, pay := range zh.core.OpenPayments() {
				e.settler.owePayment(s, zh, pay, p)
			}
			for _, o := range zh.core.OpenCancels() {
				e.settler.oweCancel(s, zh, o, p)
			}
		}
	}
	if n := e.settler.n.Load(); n > 0 {
		e.logger.Warn("payments left open by the last run are finished in the background", "open", n, "payer", p != nil)
	}
}
