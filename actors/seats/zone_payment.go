package seats

import (
	"fmt"
	"slices"

	"onsale/wal"
)

// Money is recorded before it moves (DESIGN.md, Payments). A checkout writes
// payment_started before the gateway is charged, so that a crash at any
// point leaves a record of a payment that may be under way; order_paid,
// payment_failed or payment_refunded closes it. A cancel writes
// cancel_started before the refund, and order_cancelled closes it. The open
// ones are zone state: they survive restarts through replay and snapshots,
// so recovery can finish them by asking the gateway, and a retry of the
// same checkout resumes its attempt (same order id, so the same charge key)
// instead of starting a second one.

// Payment is an open payment attempt: money may have been taken for the
// hold under Order. Owned by the zone; callers get copies.
type Payment struct {
	Hold, Order, Buyer string
	Amount             int64  // cents: the hold's amount
	IdemKey            string // the checkout's idempotency key ("" if none)
	IdemHash           uint64
	StartedAt          int64 // unix ms
}

// CheckoutBegin asks to start (or resume) the payment of a hold.
type CheckoutBegin struct {
	Access
	OrderID  string // the order id a new attempt charges under
	IdemKey  string // the checkout's idempotency key ("" if none)
	IdemHash uint64
}

// DecideCheckoutBegin checks that the buyer's hold can be bought and
// records the attempt to pay for it (payment_started), to be durable before
// the gateway is called. At most one attempt per hold is open: a second
// checkout while one is open is refused as transient, unless it is the same
// request (same idempotency key and body), which resumes the open attempt:
// Decision.Payment is then that attempt and nothing is written. A hold
// already bought by the same request answers the purchased hold, with no
// Payment, so the caller answers its order.
func (z *Zone) DecideCheckoutBegin(r CheckoutBegin, now int64) Decision {
	h := z.Owned(r.Access)
	if h == nil {
		return holdNotFound()
	}
	if p := z.payments[h.ID]; p != nil {
		if p.IdemKey != "" && p.IdemKey == r.IdemKey && p.IdemHash == r.IdemHash {
			cp := *p
			return Decision{Answer: *h, Payment: &cp}
		}
		ref := refusalf(CodeHoldNotActive, "a checkout of this hold is already in progress; retry in a few seconds")
		ref.Transient = true
		return refused(ref)
	}
	switch {
	case h.State == HoldPurchased && r.IdemKey != "" && h.PayKey == r.IdemKey && h.PayHash == r.IdemHash:
		return Decision{Answer: *h}
	case h.State == HoldExpired:
		return refused(refusalf(CodeHoldExpired, "the hold expired at %s; hold the seats again", formatMs(h.ExpiresAt)))
	case h.State != HoldActive:
		return refused(refusalf(CodeHoldNotActive, "the hold is %s, not active", h.State))
	}
	p := &Payment{Hold: h.ID, Order: r.OrderID, Buyer: h.Buyer, Amount: h.Amount,
		IdemKey: r.IdemKey, IdemHash: r.IdemHash, StartedAt: now}
	ev := wal.Event{Type: wal.TypePaymentStarted, Sale: z.sale, Zone: z.def.ID, Hold: h.ID, Order: p.Order,
		Buyer: p.Buyer, At: now, Amount: p.Amount, IdemKey: p.IdemKey, IdemHash: p.IdemHash}
	return Decision{Event: ev, Answer: *h, Payment: p}
}

// DecidePaymentEnd closes the open attempt of hold under order without an
// order: refunded says the money was taken and given back
// (payment_refunded), else none was taken (payment_failed). ok is false
// when no such attempt is open (another path closed it already): nothing
// to write.
func (z *Zone) DecidePaymentEnd(holdID, orderID string, refunded bool, now int64) (d Decision, ok bool) {
	p := z.payments[holdID]
	h := z.holds[holdID]
	if p == nil || p.Order != orderID || h == nil {
		return Decision{}, false
	}
	typ := wal.TypePaymentFailed
	if refunded {
		typ = wal.TypePaymentRefunded
	}
	ev := wal.Event{Type: typ, Sale: z.sale, Zone: z.def.ID, Hold: holdID, Order: orderID, At: now}
	return Decision{Event: ev, Answer: *h}, true
}

// Payment returns a copy of the open attempt of a hold; ok is false when
// none is open.
func (z *Zone) Payment(holdID string) (p Payment, ok bool) {
	if q := z.payments[holdID]; q != nil {
		return *q, true
	}
	return Payment{}, false
}

// OpenPayments returns copies of the open attempts, by hold id: recovery
// finishes each.
func (z *Zone) OpenPayments() []Payment {
	out := make([]Payment, 0, len(z.payments))
	for _, p := range z.payments {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Payment) int { return cmpString(a.Hold, b.Hold) })
	return out
}

// DecideCancelBegin records the intent to cancel an order (cancel_started),
// to be durable before its refund. A cancelled order answers as it is, with
// nothing to write; so does one whose cancel is already open, and its
// caller goes on to refund (with the same refund key, so once) and record
// the cancel, which happens once: DecideCancel answers a cancelled order
// as it is.
func (z *Zone) DecideCancelBegin(orderID string, now int64) Decision {
	h := z.orders[orderID]
	switch {
	case h == nil:
		return orderNotFound()
	case h.OrderCancelled:
		return Decision{Answer: *h}
	case z.cancels[orderID] != 0:
		return Decision{Answer: *h}
	}
	ev := wal.Event{Type: wal.TypeCancelStarted, Sale: z.sale, Zone: z.def.ID, Hold: h.ID, Order: orderID, At: now}
	return Decision{Event: ev, Answer: *h}
}

// OpenCancels returns the orders whose cancel is open, sorted: recovery
// refunds and cancels each.
func (z *Zone) OpenCancels() []string {
	out := make([]string, 0, len(z.cancels))
	for o := range z.cancels {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// applyPaymentStarted opens an attempt: the hold must be active with none
// open, under an order id not used yet, for the hold's buyer and amount.
func (z *Zone) applyPaymentStarted(ev *wal.Event) error {
	h := z.holds[ev.Hold]
	switch {
	case h == nil:
		return fmt.Errorf("%w: payment_started %q", ErrZoneHoldUnknown, ev.Hold)
	case h.State != HoldActive:
		return fmt.Errorf("%w: payment_started %s: hold is %s", ErrZoneHoldNotActive, h.ID, h.State)
	case ev.Order == "" || len(ev.Order) > zoneKeyBytesMax:
		return fmt.Errorf("%w: payment_started %s: order id of %d bytes, want 1..%d", ErrZoneEventInvalid, h.ID, len(ev.Order), zoneKeyBytesMax)
	case len(ev.IdemKey) > zoneKeyBytesMax:
		return fmt.Errorf("%w: payment_started %s: idempotency key of %d bytes, at most %d", ErrZoneEventInvalid, h.ID, len(ev.IdemKey), zoneKeyBytesMax)
	case ev.Buyer != h.Buyer || ev.Amount != h.Amount:
		return fmt.Errorf("%w: payment_started %s: buyer %q amount %d, the hold's are %q %d", ErrZoneEventInvalid, h.ID, ev.Buyer, ev.Amount, h.Buyer, h.Amount)
	case z.payments[h.ID] != nil:
		return fmt.Errorf("%w: payment_started %s: order %s", ErrZonePaymentOpen, h.ID, z.payments[h.ID].Order)
	case z.orders[ev.Order] != nil:
		return fmt.Errorf("%w: payment_started %s: order %s", ErrZoneOrderExists, h.ID, ev.Order)
	}
	z.payments[h.ID] = &Payment{Hold: h.ID, Order: ev.Order, Buyer: h.Buyer, Amount: h.Amount,
		IdemKey: ev.IdemKey, IdemHash: ev.IdemHash, StartedAt: ev.At}
	return nil
}

// applyPaymentEnded closes an open attempt without an order.
func (z *Zone) applyPaymentEnded(ev *wal.Event) error {
	p := z.payments[ev.Hold]
	if p == nil || p.Order != ev.Order {
		return fmt.Errorf("%w: %s %s order %s", ErrZonePaymentUnknown, ev.Type, ev.Hold, ev.Order)
	}
	delete(z.payments, ev.Hold)
	if h := z.holds[ev.Hold]; h != nil && h.parked {
		h.parked = false
		z.endedPush(h)
	}
	return nil
}

// applyCancelStarted opens a cancel of a paid order.
func (z *Zone) applyCancelStarted(ev *wal.Event) error {
	if _, err := z.paidOrder(ev); err != nil {
		return err
	}
	if z.cancels[ev.Order] != 0 {
		return fmt.Errorf("%w: %s %s", ErrZoneCancelOpen, ev.Type, ev.Order)
	}
	z.cancels[ev.Order] = max(ev.At, 1) // nonzero: the map's zero means none
	return nil
}
