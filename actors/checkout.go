package actors

import (
	"onsale/actors/seats"
)

// Checkout and cancel, in the order they run. Both are called on an HTTP
// goroutine (httpapi/holds.go), which waits for the answer; money moves
// through a Payer, which the HTTP edge implements as the payment gateway
// behind its bulkhead (httpapi/payments.go); seats change only in the
// hold's zone actor, as the seat core (actors/seats) decides. Money is
// recorded before it moves (DESIGN.md, Payments): a crash anywhere leaves a
// durable record of what may be under way, and recovery (settle.go)
// finishes it by asking the gateway with the same idempotency key.
//
// A checkout of a hold:
//
//  1. begin: the zone checks that the hold can be bought and records the
//     payment attempt (payment_started: order id, idempotency key),
//     durably, before anything is charged (checkoutBeginCmd,
//     seats.Zone.DecideCheckoutBegin). One attempt per hold is open at a
//     time; the same request again (a retry after a timeout or a crash)
//     resumes it, so it charges under the same order id and the same
//     charge key, and the provider never charges twice;
//  2. charge: Engine.Checkout calls Payer.Charge, outside every actor. A
//     charge whose outcome is unknown (the gateway failed) is looked up;
//  3. end: paid, the zone turns the hold into an order that is durable
//     before the buyer hears of it (checkoutEndCmd, seats.Zone.DecideOrder);
//     not paid, it records payment_failed and the refusal, which is stored
//     first when the request carried an idempotency key;
//  4. refund: a charge whose order certainly was not recorded (the hold
//     expired during the payment, the log refused the record) is refunded
//     and payment_refunded recorded. A step that cannot finish now (the
//     gateway is down) leaves the attempt open for the settler, which
//     retries it with backoff.
//
// A cancel of an order (an admin call):
//
//  1. begin: the zone records the intent (cancel_started), durably, before
//     the refund (cancelBeginCmd, seats.Zone.DecideCancelBegin). One cancel
//     of an order runs at a time: a second one while the first is running
//     waits for its answer in the zone; an order cancelled already answers
//     as it is;
//  2. refund through the Payer, under the order's refund key; a refund that
//     fails leaves the intent open for the settler, which refunds and
//     cancels later;
//  3. record: the zone writes the order's cancel and puts its seats back on
//     sale (cancelCmd, seats.Zone.DecideCancel), once.

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
	// Void is Lookup before an attempt is closed as unpaid: if no charge
	// was made with p.ChargeKey(), it makes sure none can be made with it
	// any more (a charge still on its way, or sent late by a leader that
	// was deposed, fails) and answers ChargeNone; if one was, it answers
	// what became of it.
	Void(p Payment) (ChargeState, *Error)
}

// Payment is one order's money as the provider sees it.
type Payment struct {
	Sale, HoldID, OrderID string
	AmountCents           int64
	Currency              string // ISO 4217, lower case; "" is the sale's default
	Token                 string // the buyer's payment method; empty for a refund or lookup
	// StartedAt is when the attempt was recorded (unix ms): a provider whose
	// search lags its writes trusts "no such charge" only some time after.
	StartedAt int64
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

// Checkout buys a hold: it records the attempt, charges through p, and
// turns the hold into an order, durably. A charge whose hold could not be
// bought after all (it expired during the payment) is refunded.
func (e *Engine) Checkout(r CheckoutRequest, p Payer) Result {
	res := e.checkout(r, p)
	if res.Err != nil && res.Err.keyClosed {
		// A resumed attempt whose key the settler closed while this
		// request waited (a retry right after a restart meets the settler
		// finishing the same attempt): nothing was charged under it and it
		// is closed now, so the buyer's checkout goes on as a fresh one.
		// Its 5xx was not stored under the Idempotency-Key.
		res = e.checkout(r, p)
	}
	return res
}

func (e *Engine) checkout(r CheckoutRequest, p Payer) Result {
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
	e.crashPoint("checkout.before_begin")
	probe := newCall()
	newOrder := newID('o', s.idx, zh.idx)
	e.sys.Root.Send(zh.pid, &checkoutBeginCmd{c: probe, holdID: r.HoldID, buyer: r.Buyer,
		orderID: newOrder, idemKey: c.key.key, idemHash: c.hash})
	pr := probe.wait(e.cfg.CallTimeout)
	if pr.Err != nil && pr.Err.Code == CodeUnavailable && !pr.Err.notDone {
		// No answer in time: the attempt may have been recorded, under
		// newOrder, and nothing was charged for it. The settler closes it
		// if so, so that it does not bar the hold's next checkout.
		e.settler.owePayment(s, zh, seats.Payment{Hold: r.HoldID, Order: newOrder}, p)
	}
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
	if pr.pay == nil {
		// Bought already by this same request: answer its order.
		e.sys.Root.Send(zh.pid, &checkoutEndCmd{c: c, holdID: r.HoldID, paid: true, orderID: pr.Order.ID,
			idemKey: c.key.key, idemHash: c.hash})
		return c.wait(e.cfg.CallTimeout)
	}
	att := *pr.pay
	pay := Payment{Sale: s.def.ID, HoldID: att.Hold, OrderID: att.Order, AmountCents: att.Amount, Currency: s.def.Currency,
		Token: r.PaymentToken, StartedAt: att.StartedAt}
	end := &checkoutEndCmd{c: c, holdID: r.HoldID, orderID: att.Order, idemKey: c.key.key, idemHash: c.hash}
	e.crashPoint("checkout.after_begin")
	// 2. charge. A resumed attempt whose hold ended is not charged now: the
	// provider says whether its first charge went through.
	var perr *Error
	state := ChargePaid
	looked := false // the provider was asked already
	resumed := att.Order != newOrder
	if resumed && pr.Hold.State == "active" {
		// A retry of an attempt left open (a crash, a timeout, a refused
		// record): the provider may have charged and even refunded it
		// since. Ask before charging: a provider replays a charge's first
		// answer for its key, refunded or not, so charging again could
		// make an order of money that went back.
		switch st, lerr := p.Lookup(pay); {
		case lerr != nil || st == ChargeUnknown || st == ChargeRefunded:
			// Not charged again now: an unknown outcome is the settler's to
			// learn, a refunded attempt is closed; either way the answer is
			// a 5xx, not stored, and a retry starts afresh once it is over.
			state, looked = st, true
			if lerr != nil {
				state = ChargeUnknown
			}
			perr = errorf(CodePaymentDown, "the payment of order %s is being settled with the provider; retry in a few seconds with the same Idempotency-Key", att.Order)
		case st == ChargePaid:
			perr = nil // the first try's charge stands: make its order
		default:
			perr = p.Charge(pay)
			e.crashPoint("checkout.after_charge")
		}
	} else if pr.Hold.State == "active" {
		perr = p.Charge(pay)
		e.crashPoint("checkout.after_charge")
	} else {
		// The answer the first try would have had: an expired hold is
		// hold_expired, as at any other step.
		if pr.Hold.State == "expired" {
			perr = errorf(CodeHoldExpired, "the hold expired during payment; no payment is kept for it")
		} else {
			perr = errorf(CodeHoldNotActive, "the hold is %s, not active; no payment is kept for it", pr.Hold.State)
		}
		state = ChargeUnknown
	}
	switch {
	case looked:
	case perr != nil && perr.Code == CodeUnavailable:
		// Refused before the provider was called (this node could not
		// confirm it leads): nothing to ask, and no key to close from a
		// node that may be deposed. The leader's settler finishes it.
		state = ChargeUnknown
	case perr != nil && perr.Code != CodePaymentDecline:
		// The gateway failed or was not asked: the money may or may not
		// have moved. Ask it, under the same key, closing the key if
		// nothing was charged: the attempt is closed as unpaid below.
		st, lerr := p.Void(pay)
		switch {
		case lerr != nil:
			state = ChargeUnknown
		default:
			state = st
		}
		if state == ChargePaid && pr.Hold.State == "active" {
			perr = nil
		}
	case perr != nil:
		state = ChargeNone
	}
	if perr != nil {
		// 3. end, unpaid: record the outcome if it is known, and answer.
		switch state {
		case ChargeNone, ChargeRefunded:
			end.closeRefunded = state == ChargeRefunded
			end.close = true
		case ChargePaid:
			if !e.refund(p, pay) {
				e.settler.owePayment(s, zh, att, p)
			} else {
				end.close, end.closeRefunded = true, true
			}
		default:
			e.settler.owePayment(s, zh, att, p)
		}
		end.fail = perr
		e.sys.Root.Send(zh.pid, end)
		return c.wait(e.cfg.CallTimeout)
	}
	// 3. end, paid
	end.paid = true
	e.sys.Root.Send(zh.pid, end)
	res := c.wait(e.cfg.CallTimeout)
	e.crashPoint("checkout.after_order")
	// 4. refund: only a charge whose order certainly was not recorded; never
	// on a timeout, whose outcome is unknown: the settler learns it (the
	// order is there, or the hold's seats are not its own any more and the
	// money goes back), unless a retry with the key does first.
	switch {
	case res.Err == nil:
	case res.Err.Code == CodeHoldExpired || res.Err.Code == CodeHoldNotActive:
		// The hold cannot be bought any more: the money goes back.
		if !e.refund(p, pay) || !e.endPayment(zh, att, true) {
			e.settler.owePayment(s, zh, att, p)
		}
	default:
		// The order was not recorded now (the log refused it, or its
		// outcome is unknown), but the hold may still be the buyer's: the
		// attempt stays open, and the settler (or a retry with the key)
		// makes the order once the log writes, or refunds if the seats are
		// no longer the hold's. Refunding here would let a retry turn the
		// refunded charge into an order.
		e.settler.owePayment(s, zh, att, p)
	}
	return res
}

// refund gives a payment's money back; false when the gateway failed, and
// the refund is owed.
func (e *Engine) refund(p Payer, pay Payment) bool {
	if err := p.Refund(pay); err != nil {
		e.logger.Warn("refund failed; retried in the background", "order", pay.OrderID, "hold", pay.HoldID,
			"amount_cents", pay.AmountCents, "err", err.Message)
		return false
	}
	return true
}

// endPayment records that an attempt ended without an order; false when it
// could not be recorded now.
func (e *Engine) endPayment(zh *zoneHandle, att seats.Payment, refunded bool) bool {
	c := newCall()
	e.sys.Root.Send(zh.pid, &paymentEndCmd{c: c, holdID: att.Hold, orderID: att.Order, refunded: refunded})
	return c.wait(e.cfg.CallTimeout).Err == nil
}

// checkoutBeginCmd checks that a hold can be bought and records the payment
// attempt (or finds the same request's open one).
type checkoutBeginCmd struct {
	c        *call
	holdID   string
	buyer    string
	orderID  string // for a new attempt
	idemKey  string
	idemHash uint64
}

func (m *checkoutBeginCmd) call() *call { return m.c }

// checkoutBegin is step 1 of a checkout, in the hold's zone.
func (a *zoneActor) checkoutBegin(m *checkoutBeginCmd) {
	now := a.s.e.nowMs()
	r := seats.CheckoutBegin{Access: seats.Access{HoldID: m.holdID, Buyer: m.buyer}, OrderID: m.orderID,
		IdemKey: m.idemKey, IdemHash: m.idemHash}
	a.expireIfDue(r.Access, now)
	d := a.z.DecideCheckoutBegin(r, now)
	if d.Refusal != nil {
		a.refusal(m.c, d.Refusal)
		return
	}
	res := Result{Hold: holdView(a.s.def.ID, a.z, &d.Answer), pay: d.Payment}
	if d.Payment == nil {
		res.Order = orderView(&a.s.def, a.z, &d.Answer)
	}
	// An answer without a record waits for the zone's records: the hold or
	// the attempt may be one whose own record is not durable yet (a retry
	// racing its first answer), and only a durable attempt is charged for.
	a.carry(m.c, &d, res)
}

// checkoutEndCmd ends a checkout: with paid set the hold becomes an order
// (durably); otherwise the refusal in fail is the answer, stored first when
// the request carried an idempotency key. close says the attempt's outcome
// is known and is recorded first: payment_refunded if closeRefunded, else
// payment_failed.
type checkoutEndCmd struct {
	c             *call
	holdID        string
	paid          bool
	fail          *Error
	orderID       string
	idemKey       string // written in the order's record
	idemHash      uint64
	close         bool
	closeRefunded bool
}

func (m *checkoutEndCmd) call() *call { return m.c }

// checkoutEnd is step 3 of a checkout, in the hold's zone.
func (a *zoneActor) checkoutEnd(m *checkoutEndCmd) {
	now := a.s.e.nowMs()
	if !m.paid {
		if m.close {
			if d, ok := a.z.DecidePaymentEnd(m.holdID, m.orderID, m.closeRefunded, now); ok {
				if err := a.log.append(&d.Event, a.s.e.expiryDone); err != nil {
					a.s.finish(m.c, Result{Err: unavailable(err)})
					return
				}
				a.apply(&d.Event)
			}
		}
		a.refuse(m.c, m.fail)
		return
	}
	a.expireIfDue(seats.Access{HoldID: m.holdID, Admin: true}, now)
	a.carryOrder(m.c, a.z.DecideOrder(seats.OrderRequest{HoldID: m.holdID, OrderID: m.orderID,
		IdemKey: m.idemKey, IdemHash: m.idemHash}, now))
}

// paymentEndCmd records that an attempt ended without an order.
type paymentEndCmd struct {
	c               *call
	holdID, orderID string
	refunded        bool
}

func (m *paymentEndCmd) call() *call { return m.c }

func (a *zoneActor) paymentEnd(m *paymentEndCmd) {
	d, ok := a.z.DecidePaymentEnd(m.holdID, m.orderID, m.refunded, a.s.e.nowMs())
	if !ok {
		// Closed already, by the checkout or a retry of it.
		a.s.answerDurable(&a.log, m.c, Result{})
		return
	}
	a.carry(m.c, &d, Result{})
}

// CancelOrder refunds an order through p and puts its seats back on sale.
// A second cancel answers the same.
func (e *Engine) CancelOrder(orderID string, p Payer) Result {
	return e.cancelOrder(orderID, p, true)
}

// cancelOrder is CancelOrder; owe says a failed refund is handed to the
// settler (which calls it with owe false, and keeps the debt itself).
func (e *Engine) cancelOrder(orderID string, p Payer, owe bool) Result {
	s, zh, ok := e.route('o', orderID)
	if !ok {
		return Result{Err: errorf(CodeNotFound, "no such order")}
	}
	// 1. begin
	e.crashPoint("cancel.before_begin")
	c := newCall()
	e.sys.Root.Send(zh.pid, &cancelBeginCmd{c: c, orderID: orderID})
	r := c.wait(e.cfg.CallTimeout)
	if r.Err != nil || r.Order.State == "cancelled" || !r.cancelling {
		return r
	}
	// 2. refund
	e.crashPoint("cancel.before_refund")
	pay := Payment{Sale: s.def.ID, HoldID: r.Order.HoldID, OrderID: orderID, AmountCents: r.Order.Amount, Currency: s.def.Currency}
	if perr := p.Refund(pay); perr != nil {
		if owe {
			e.settler.oweCancel(s, zh, orderID, p)
		}
		e.sys.Root.Send(zh.pid, &cancelDropCmd{orderID: orderID, err: perr})
		return Result{Err: perr}
	}
	e.crashPoint("cancel.after_refund")
	// 3. record
	c = newCall()
	e.sys.Root.Send(zh.pid, &cancelCmd{c: c, orderID: orderID})
	res := c.wait(e.cfg.CallTimeout)
	e.crashPoint("cancel.after_record")
	return res
}

// cancelBeginCmd records a cancel's intent, or waits for the cancel of the
// order that is running.
type cancelBeginCmd struct {
	c       *call
	orderID string
}

func (m *cancelBeginCmd) call() *call { return m.c }

// cancelBegin is step 1 of a cancel, in the order's zone. The caller that
// gets an answer with cancelling set runs the refund and the record; every
// other cancel of the order meanwhile waits for that one's answer.
func (a *zoneActor) cancelBegin(m *cancelBeginCmd) {
	d := a.z.DecideCancelBegin(m.orderID, a.s.e.nowMs())
	if d.Refusal != nil || d.Answer.OrderCancelled {
		a.carryOrder(m.c, d)
		return
	}
	if w, busy := a.cancelling[m.orderID]; busy {
		if len(w) >= cancelWaitersMax {
			a.s.finish(m.c, Result{Err: errorf(CodeUnavailable, "too many cancels of this order at once; retry")})
			return
		}
		a.cancelling[m.orderID] = append(w, m.c)
		return
	}
	a.cancelling[m.orderID] = nil
	a.carry(m.c, &d, Result{Order: orderView(&a.s.def, a.z, &d.Answer), cancelling: true})
}

// cancelDropCmd ends a running cancel whose refund failed: its waiters get
// the same error; the intent stays open for the settler.
type cancelDropCmd struct {
	orderID string
	err     *Error
}

func (a *zoneActor) cancelDrop(m *cancelDropCmd) {
	for _, c := range a.cancelling[m.orderID] {
		a.s.finish(c, Result{Err: m.err})
	}
	delete(a.cancelling, m.orderID)
}

// cancelCmd cancels an order and puts its seats back on sale.
type cancelCmd struct {
	c       *call
	orderID string
}

func (m *cancelCmd) call() *call { return m.c }

// cancel is step 3 of a cancel, in the order's zone. The cancels that
// waited for it get its answer, once it is durable.
func (a *zoneActor) cancel(m *cancelCmd) {
	waiters := a.cancelling[m.orderID]
	delete(a.cancelling, m.orderID)
	d := a.z.DecideCancel(m.orderID, a.s.e.nowMs())
	if len(waiters) == 0 {
		a.carryOrder(m.c, d)
		return
	}
	appended := a.log.appended
	a.carryOrder(m.c, d)
	// The waiters get the same answer, once what it says is durable.
	var r Result
	switch {
	case d.Refusal != nil:
		r = Result{Err: refusalError(d.Refusal)}
	case d.Writes() && a.log.appended == appended:
		r = Result{Err: errorf(CodeUnavailable, "the cancel could not be made durable; retry")}
	default:
		r = Result{Order: orderView(&a.s.def, a.z, a.z.Order(m.orderID))}
	}
	for _, w := range waiters {
		w.zseq = m.c.zseq // answered at this cancel's place in the mailbox
		if r.Err != nil {
			a.s.finish(w, r)
		} else {
			a.s.answerDurable(&a.log, w, r)
		}
	}
}

// crashPoint calls Config.AtStep with the name of a step of the money flow:
// the crash tests stop the process there.
func (e *Engine) crashPoint(step string) {
	if e.cfg.AtStep != nil {
		e.cfg.AtStep(step)
	}
}
