package actors

import "onsale/actors/seats"

// Checkout and cancel, in the order they run. Both are called on an HTTP
// goroutine (httpapi/holds.go), which waits for the answer; money moves
// through a Payer, which the HTTP edge implements as the payment gateway
// behind its bulkhead (httpapi/payments.go); seats change only in the
// hold's zone actor, as the seat core (actors/seats) decides.
//
// A checkout of a hold:
//
//  1. begin: the zone checks that the hold can be bought and marks a
//     checkout of it in progress (checkoutBeginCmd,
//     seats.Zone.DecideCheckoutBegin), so that two checkouts of one hold
//     never both reach the gateway;
//  2. charge: Engine.Checkout calls Payer.Charge, outside every actor;
//  3. end: the zone drops the mark and, when paid, turns the hold into an
//     order that is durable before the buyer hears of it (checkoutEndCmd,
//     seats.Zone.DecideOrder); a refusal with an idempotency key is stored
//     before it is answered;
//  4. refund: a charge whose order certainly was not recorded (the hold
//     expired during the payment, the log refused the record) is refunded.
//
// A cancel of an order (an admin call):
//
//  1. decide: read the order; one that is cancelled already answers as it
//     is, and nothing is refunded twice (Engine.cancelMu);
//  2. refund through the Payer; a refund that fails changes nothing;
//  3. record: the zone writes the order's cancel and puts its seats back on
//     sale (cancelCmd, seats.Zone.DecideCancel).

// Payer charges and refunds. Charge is called at most once per checkout,
// outside every actor, and may take as long as the gateway does. Every call
// carries the payment's idempotency keys (Payment.ChargeKey, RefundKey), so
// that asking again, after a timeout or a crash, never moves money twice.
type Payer interface {
	Charge(p Payment) *Error
	Refund(p Payment) *Error
	// Lookup asks the provider what became of the charge made (or not)
	// with p.ChargeKey(): recovery finishes open payments with it.
	Lookup(p Payment) (ChargeState, *Error)
}

// Payment is one order's money as the provider sees it.
type Payment struct {
	Sale, HoldID, OrderID string
	AmountCents           int64
	Currency              string // ISO 4217, lower case: the sale's
	Token                 string // the buyer's payment method; empty for a refund or lookup
}

// ChargeKey is the idempotency key of the payment's charge: derived from the
// order id, which is made once per checkout, so a retry never charges twice.
func (p Payment) ChargeKey() string { return "onsale-charge-" + p.OrderID }

// RefundKey is the idempotency key of the payment's refund: one refund per
// order, however often it is asked for.
func (p Payment) RefundKey() string { return "onsale-refund-" + p.OrderID }

// ChargeState is what the provider knows of a charge.
type ChargeState uint8

const (
	ChargeUnknown  ChargeState = iota // the provider did not say (down, timed out)
	ChargeNone                        // no money taken: never made, declined, or failed
	ChargePaid                        // the money was taken
	ChargeRefunded                    // taken and given back
)

// CheckoutRequest is a buyer's payment for a hold.
type CheckoutRequest struct {
	HoldID       string
	Buyer        string
	PaymentToken string
	IdemKey      string
}

func (r *CheckoutRequest) hash() uint64 {
	h := fnv64(r.HoldID)
	return h*1099511628211 ^ fnv64(r.PaymentToken)
}

// Checkout buys a hold: it checks the hold, charges through p, and turns the
// hold into an order, durably. A charge whose hold could not be bought after
// all (it expired during the payment) is refunded.
func (e *Engine) Checkout(r CheckoutRequest, p Payer) Result {
	s, zh, ok := e.route('h', r.HoldID)
	if !ok {
		return Result{Err: errHoldNotFound()}
	}
	c, fresh, ierr := s.begin(r.Buyer, scopeCheckout, r.IdemKey, r.hash())
	if ierr != nil {
		return Result{Err: ierr}
	}
	if !fresh {
		return c.wait(e.cfg.CallTimeout)
	}
	// 1. begin
	probe := newCall()
	e.sys.Root.Send(zh.pid, &checkoutBeginCmd{c: probe, holdID: r.HoldID, buyer: r.Buyer})
	pr := probe.wait(e.cfg.CallTimeout)
	if pr.Err != nil {
		if pr.Err.Code == CodeNotFound || pr.Err.Code == CodeUnavailable || pr.Err.transient {
			// Not stored: a hold the buyer cannot see reveals nothing, an
			// unknown outcome must be asked again, and a checkout in
			// progress will be over by the retry.
			if c.key.key != "" {
				s.idem.forget(c) // before finishing: a retry must run again
			}
			c.finish(pr)
			return pr
		}
		e.sys.Root.Send(zh.pid, &checkoutEndCmd{c: c, holdID: r.HoldID, fail: pr.Err})
		return c.wait(e.cfg.CallTimeout)
	}
	// 2. charge
	orderID := newID('o', s.idx, zh.idx)
	pay := Payment{Sale: s.def.ID, HoldID: r.HoldID, OrderID: orderID, AmountCents: pr.Hold.Amount, Currency: s.def.Currency, Token: r.PaymentToken}
	if perr := p.Charge(pay); perr != nil {
		e.sys.Root.Send(zh.pid, &checkoutEndCmd{c: c, holdID: r.HoldID, began: true, fail: perr})
		return c.wait(e.cfg.CallTimeout)
	}
	// 3. end
	e.sys.Root.Send(zh.pid, &checkoutEndCmd{c: c, holdID: r.HoldID, began: true, paid: true, orderID: orderID})
	res := c.wait(e.cfg.CallTimeout)
	// 4. refund: only a charge whose order certainly was not recorded; never
	// on a timeout, whose outcome is unknown (a retry with the key learns it).
	if res.Err != nil && (res.Err.Code == CodeHoldExpired || res.Err.Code == CodeHoldNotActive || res.Err.notDone) {
		if rerr := p.Refund(pay); rerr != nil {
			e.logger.Error("refund of a charge whose hold could not be bought failed; refund it by hand",
				"order", orderID, "hold", r.HoldID, "amount_cents", pr.Hold.Amount, "err", rerr.Message)
		}
	}
	return res
}

// checkoutBeginCmd checks that a hold can be bought and marks a checkout in
// progress, so that two checkouts of one hold never both reach the gateway.
type checkoutBeginCmd struct {
	c      *call
	holdID string
	buyer  string
}

func (m *checkoutBeginCmd) call() *call { return m.c }

// checkoutBegin is step 1 of a checkout, in the hold's zone.
func (a *zoneActor) checkoutBegin(m *checkoutBeginCmd) {
	now := a.s.e.nowMs()
	r := seats.Access{HoldID: m.holdID, Buyer: m.buyer}
	a.expireIfDue(r, now)
	// An answer without a record waits for the zone's records: the hold may
	// be one whose own record is not durable yet (a retry racing its first
	// answer), and only a durable hold is charged for.
	a.carryHold(m.c, a.z.DecideCheckoutBegin(r, now))
}

// checkoutEndCmd ends a checkout: with paid set the hold becomes an order
// (durably); otherwise the refusal in fail is the answer, stored first when
// the request carried an idempotency key. began says the begin succeeded, so
// its in-progress mark is this checkout's to drop.
type checkoutEndCmd struct {
	c       *call
	holdID  string
	began   bool
	paid    bool
	fail    *Error
	orderID string
}

func (m *checkoutEndCmd) call() *call { return m.c }

// checkoutEnd is step 3 of a checkout, in the hold's zone.
func (a *zoneActor) checkoutEnd(m *checkoutEndCmd) {
	if m.began {
		a.z.EndCheckout(m.holdID)
	}
	if !m.paid {
		a.refuse(m.c, m.fail)
		return
	}
	now := a.s.e.nowMs()
	a.expireIfDue(seats.Access{HoldID: m.holdID, Admin: true}, now)
	a.carryOrder(m.c, a.z.DecideOrder(seats.OrderRequest{HoldID: m.holdID, OrderID: m.orderID,
		IdemKey: m.c.key.key, IdemHash: m.c.hash}, now))
}

// CancelOrder refunds an order through p and puts its seats back on sale.
// A second cancel answers the same.
func (e *Engine) CancelOrder(orderID string, p Payer) Result {
	// One cancel at a time: two concurrent cancels of one order must not
	// both refund it. Cancels are rare admin calls, so one lock is enough.
	e.cancelMu.Lock()
	defer e.cancelMu.Unlock()
	// 1. decide
	r := e.GetOrder(orderID)
	if r.Err != nil || r.Order.State == "cancelled" {
		return r
	}
	// 2. refund
	s, _, _ := e.route('o', orderID)
	if perr := p.Refund(Payment{Sale: s.def.ID, HoldID: r.Order.HoldID, OrderID: orderID, AmountCents: r.Order.Amount, Currency: r.Order.Currency}); perr != nil {
		return Result{Err: perr}
	}
	// 3. record
	_, zh, _ := e.route('o', orderID)
	c := newCall()
	e.sys.Root.Send(zh.pid, &cancelCmd{c: c, orderID: orderID})
	return c.wait(e.cfg.CallTimeout)
}

// cancelCmd cancels an order and puts its seats back on sale.
type cancelCmd struct {
	c       *call
	orderID string
}

func (m *cancelCmd) call() *call { return m.c }

// cancel is step 3 of a cancel, in the order's zone.
func (a *zoneActor) cancel(m *cancelCmd) {
	a.carryOrder(m.c, a.z.DecideCancel(m.orderID, a.s.e.nowMs()))
}
