package seats

import (
	"fmt"
	"time"

	"onsale/wal"
)

// A zone's decisions. Each takes the state, a request and the time (Unix ms,
// passed in) and returns a Decision: the record to make durable and what to
// answer, or a refusal. They do not apply what they decide: the caller hands
// the record to the log and calls Apply once the log has taken it, so a
// record the log refuses changes nothing. Recovery replays the same records
// through the same Apply.

// Stable codes of the refusals the zone makes. They are the API's codes
// (API.md; package actors names them Code*): never rename one.
const (
	CodeBadRequest    = "bad_request"
	CodeNotFound      = "not_found"
	CodeSeatsTaken    = "seats_taken"
	CodeSoldOut       = "sold_out"
	CodeLimitExceeded = "limit_exceeded"
	CodeSalePaused    = "sale_paused"
	CodeHoldNotActive = "hold_not_active"
	CodeHoldExpired   = "hold_expired"
	CodeUnavailable   = "unavailable"
)

// Limits of the decisions.
const (
	// alternativesMax is how many alternatives a seats_taken answer offers.
	alternativesMax = 3
)

// A Refusal is a request the zone turned down; nothing changed.
type Refusal struct {
	Code    string // one of the Code* constants
	Message string // for the buyer, in a sentence
	// Remaining is set with CodeLimitExceeded: how many more seats the
	// buyer may take.
	Remaining *int
	// Alternatives is set with CodeSeatsTaken: up to 3 lists of seat ids of
	// the size asked for, best first.
	Alternatives [][]string
	// Zones is set with CodeSoldOut: the sale's other zones with seats free.
	Zones []ZoneFree
	// Durable marks a refusal that follows from what the zone holds (the
	// buyer's limit, the seats, the hold's state at payment): the caller
	// writes it under the request's idempotency key before it answers, so a
	// retry after a crash gets the same answer. Other refusals follow from
	// the request alone or from nothing lasting, and are only answered.
	Durable bool
	// Transient marks a refusal that a retry may well not get (another
	// checkout of the hold is in progress): never stored.
	Transient bool
}

// ZoneFree names a zone and how many seats it has free.
type ZoneFree struct {
	ID   string `json:"id"`
	Free int    `json:"free"`
}

// A Decision is what a decide function concluded, one of three:
//   - Refusal set: nothing changes; answer with the refusal.
//   - Writes(): write Event to the log; once the log has taken it, Apply
//     it and give Returned seats back to Answer.Buyer's allowance; answer
//     with Answer once Event is durable. If the log refuses Event, nothing
//     changes and the Reserved seats go back to Answer.Buyer's allowance.
//   - neither: nothing to write; answer with Answer once every record the
//     zone appended so far is durable, since Answer was read from state
//     that may not be yet.
type Decision struct {
	// Event is the record to write; its Type is zero when there is none
	// (see Writes). A value, not a pointer: the log encodes it when it is
	// appended, so it need not outlive the caller's frame.
	Event   wal.Event
	Refusal *Refusal
	// Answer is the hold (or its order) as the buyer is told of it: as it
	// will be once Event is applied, or as it is. Its Seats may alias the
	// zone's; read it, never change it.
	Answer Hold
	// Returned is how many seats Answer.Buyer no longer holds or owns once
	// Event is applied (a release, expiry or cancel).
	Returned int
	// Reserved is how many seats DecideHold took from the buyer's allowance
	// for Event.
	Reserved int
	// Payment is set by DecideCheckoutBegin: the attempt the checkout goes
	// on with, new (Event opens it) or resumed (nothing to write).
	Payment *Payment
}

// Writes reports whether the decision has a record to write.
func (d *Decision) Writes() bool { return d.Event.Type != 0 }

func refused(r *Refusal) Decision { return Decision{Refusal: r} }

func refusalf(code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

func holdNotFound() Decision  { return refused(&Refusal{Code: CodeNotFound, Message: "no such hold"}) }
func orderNotFound() Decision { return refused(&Refusal{Code: CodeNotFound, Message: "no such order"}) }

// HoldExpiresAt is when a hold placed at now (Unix ms) expires, for a sale
// whose holds last ttlMs. The one place that sum is made: it is written in
// the hold's record, and recovery and every later check read it from there.
func HoldExpiresAt(now, ttlMs int64) int64 { return now + ttlMs }

// Allowance is the sale's max_per_buyer account: seats held plus bought per
// buyer. It spans the sale's zones, so the zone does not own it. Reserve
// takes n seats for buyer if that keeps them within the limit, and else
// reports how many more they may take; Give returns seats.
type Allowance interface {
	Reserve(buyer string, n int) (ok bool, remaining int)
	Give(buyer string, n int)
}

// Terms are what a zone's hold decisions need from its sale. The caller
// builds them once per zone.
type Terms struct {
	HoldTTLMs   int64 // how long a hold lasts
	MaxPerBuyer int   // for the limit_exceeded message; Allowance enforces it
	Allowance   Allowance
	// OtherZones lists the sale's other zones with seats free, for a
	// sold_out answer; nil for none.
	OtherZones func() []ZoneFree
	// NewHoldID makes the id of a hold; called once per hold granted.
	NewHoldID func() string
}

// HoldRequest is a buyer's request for seats in this zone: Quantity seats
// picked by the zone, or the named Seats.
type HoldRequest struct {
	Buyer             string
	Quantity          int
	Seats             []string
	AcceptAlternative bool
	IdemKey           string // written in the hold's record ("" if none)
	IdemHash          uint64
	Paused            bool // the sale is paused now
}

// DecideHold decides a hold. In order: a paused sale or a zone that keeps
// all the holds it can refuses; named seats must exist, once each, in a
// reserved zone; the buyer's allowance must cover the seats (reserved here,
// given back on any later refusal); then the named seats if all are free,
// else the alternatives (seats_taken, or with AcceptAlternative the best
// one), or best available for a quantity; sold_out when none fits.
func (z *Zone) DecideHold(r HoldRequest, t *Terms, now int64) Decision {
	if r.Paused {
		return refused(refusalf(CodeSalePaused, "the sale is paused; holds resume when the organizer resumes it"))
	}
	if z.HoldsFull() {
		// A zone keeps its ended holds for a while, for reads and
		// idempotency; past its bound it takes no more until some are
		// dropped, rather than grow without limit. Not stored: a retry
		// may well succeed.
		return refused(refusalf(CodeUnavailable, "zone %q keeps as many holds as it can; retry once older holds have been dropped", z.def.ID))
	}
	var named []uint32
	n := r.Quantity
	if len(r.Seats) > 0 {
		if !z.reserved {
			return refused(refusalf(CodeBadRequest, "zone %q is general admission: ask for a quantity, not seats", z.def.ID))
		}
		named = make([]uint32, len(r.Seats))
		seen := make(map[uint32]bool, len(r.Seats))
		for i, name := range r.Seats {
			idx, ok := z.SeatIndex(name)
			if !ok {
				return refused(refusalf(CodeBadRequest, "zone %q has no seat %q", z.def.ID, name))
			}
			if seen[idx] {
				return refused(refusalf(CodeBadRequest, "seat %q is named twice", name))
			}
			seen[idx] = true
			named[i] = idx
		}
		n = len(named)
	}
	ok, remaining := t.Allowance.Reserve(r.Buyer, n)
	if !ok {
		return refused(&Refusal{Code: CodeLimitExceeded, Remaining: &remaining, Durable: true,
			Message: fmt.Sprintf("this sale allows %d seats per buyer; you may take %d more", t.MaxPerBuyer, remaining)})
	}
	var chosen []uint32
	switch {
	case named != nil && z.AllFree(named):
		chosen = named
	case named != nil && !r.AcceptAlternative:
		t.Allowance.Give(r.Buyer, n)
		alts := z.Alternatives(n, alternativesMax, named)
		ref := &Refusal{Code: CodeSeatsTaken, Message: "some of those seats are held or sold; see the alternatives",
			Alternatives: make([][]string, 0, len(alts)), Durable: true}
		for _, alt := range alts {
			ref.Alternatives = append(ref.Alternatives, z.SeatNames(alt))
		}
		return refused(ref)
	default:
		var picked []uint32
		ok := false
		if named != nil {
			// accept_alternative: the best alternative is the first set a
			// seats_taken answer to the same request would offer, so it
			// leaves out every named seat, as those sets do.
			if alts := z.Alternatives(n, 1, named); len(alts) > 0 {
				picked, ok = alts[0], true
			}
		} else {
			picked, ok = z.Pick(n)
		}
		if !ok {
			t.Allowance.Give(r.Buyer, n)
			zones := []ZoneFree{}
			if t.OtherZones != nil {
				zones = t.OtherZones()
			}
			return refused(&Refusal{Code: CodeSoldOut, Zones: zones, Durable: true,
				Message: fmt.Sprintf("zone %q cannot fill %d seats; see the zones with seats free", z.def.ID, n)})
		}
		chosen = picked
	}
	ev := wal.Event{
		Type: wal.TypeHoldPlaced, Sale: z.sale, Zone: z.def.ID,
		Hold: t.NewHoldID(), Buyer: r.Buyer, Seats: chosen,
		At: now, Expires: HoldExpiresAt(now, t.HoldTTLMs), Amount: int64(len(chosen)) * z.def.PriceCents,
		IdemKey: r.IdemKey, IdemHash: r.IdemHash,
	}
	return Decision{Event: ev, Reserved: n, Answer: Hold{
		ID: ev.Hold, Buyer: ev.Buyer, Seats: chosen, CreatedAt: now, ExpiresAt: ev.Expires,
		Amount: ev.Amount, State: HoldActive,
	}}
}

// Access names a hold and who asks for it: the buyer, or an operator
// (Admin) who may see every hold.
type Access struct {
	HoldID string
	Buyer  string
	Admin  bool
}

// Owned returns the hold r names if r may see it, else nil: a hold's
// existence is not revealed to anyone but its buyer and operators.
func (z *Zone) Owned(r Access) *Hold {
	h := z.holds[r.HoldID]
	if h == nil || (!r.Admin && h.Buyer != r.Buyer) {
		return nil
	}
	return h
}

// DecideExpiry expires the hold with that id if it is active and due at
// now: at expires_at the hold is over (API.md), so a tick, a read, a
// release and a checkout at the same instant agree. ok is false when there
// is nothing to expire. The zone's tick, its requests and recovery (for
// holds that expired while the process was down) all expire through it.
func (z *Zone) DecideExpiry(holdID string, now int64) (d Decision, ok bool) {
	h := z.holds[holdID]
	if h == nil || h.State != HoldActive || now < h.ExpiresAt {
		return Decision{}, false
	}
	a := *h
	a.State = HoldExpired
	ev := wal.Event{Type: wal.TypeHoldExpired, Sale: z.sale, Zone: z.def.ID, Hold: h.ID, At: now}
	return Decision{Event: ev, Answer: a, Returned: len(h.Seats)}, true
}

// LookupHold answers a read of the hold r names.
func (z *Zone) LookupHold(r Access) Decision {
	h := z.Owned(r)
	if h == nil {
		return holdNotFound()
	}
	return Decision{Answer: *h}
}

// DecideRelease gives up the hold r names. Releasing a released hold
// answers the same again; any other ended hold is refused.
func (z *Zone) DecideRelease(r Access, now int64) Decision {
	h := z.Owned(r)
	switch {
	case h == nil:
		return holdNotFound()
	case h.State == HoldReleased:
		return Decision{Answer: *h}
	case h.State != HoldActive:
		return refused(refusalf(CodeHoldNotActive, "the hold is %s, not active", h.State))
	}
	a := *h
	a.State = HoldReleased
	ev := wal.Event{Type: wal.TypeHoldReleased, Sale: z.sale, Zone: z.def.ID, Hold: h.ID, At: now}
	return Decision{Event: ev, Answer: a, Returned: len(h.Seats)}
}

// OrderRequest turns a paid hold into an order.
type OrderRequest struct {
	HoldID   string
	OrderID  string
	IdemKey  string // the checkout's idempotency key ("" if none)
	IdemHash uint64
}

// DecideOrder records a payment: the hold becomes an order under
// r.OrderID. A hold already bought under r.OrderID answers as it is (the
// same payment finished twice, by a retry and by recovery). A hold that
// expired during the payment, or is due to, or ended otherwise, is refused
// durably (the payment is then refunded).
func (z *Zone) DecideOrder(r OrderRequest, now int64) Decision {
	h := z.holds[r.HoldID]
	switch {
	case h == nil:
		return holdNotFound()
	case h.State == HoldPurchased && h.OrderID == r.OrderID:
		return Decision{Answer: *h}
	case z.payments[h.ID] != nil && z.payments[h.ID].Order != r.OrderID:
		// Another attempt is open: this payment is not the hold's.
		ref := refusalf(CodeHoldNotActive, "another payment of the hold is in progress; the payment is refunded")
		ref.Durable = true
		return refused(ref)
	case h.State == HoldExpired || (h.State == HoldActive && now >= h.ExpiresAt):
		// The second form: due, but its expiry could not be queued yet.
		ref := refusalf(CodeHoldExpired, "the hold expired at %s during payment; the payment is refunded", formatMs(h.ExpiresAt))
		ref.Durable = true
		return refused(ref)
	case h.State != HoldActive:
		ref := refusalf(CodeHoldNotActive, "the hold is %s, not active; the payment is refunded", h.State)
		ref.Durable = true
		return refused(ref)
	}
	a := *h
	a.OrderID, a.PaidAt, a.State = r.OrderID, now, HoldPurchased
	ev := wal.Event{Type: wal.TypeOrderPaid, Sale: z.sale, Zone: z.def.ID, Hold: h.ID, Order: r.OrderID,
		At: now, Amount: h.Amount, IdemKey: r.IdemKey, IdemHash: r.IdemHash}
	return Decision{Event: ev, Answer: a}
}

// LookupOrder answers a read of an order; its id is the capability.
func (z *Zone) LookupOrder(orderID string) Decision {
	h := z.orders[orderID]
	if h == nil {
		return orderNotFound()
	}
	return Decision{Answer: *h}
}

// DecideCancel cancels an order and puts its seats back on sale. A second
// cancel answers the same again.
func (z *Zone) DecideCancel(orderID string, now int64) Decision {
	h := z.orders[orderID]
	switch {
	case h == nil:
		return orderNotFound()
	case h.OrderCancelled:
		return Decision{Answer: *h}
	}
	a := *h
	a.OrderCancelled, a.CancelledAt = true, now
	ev := wal.Event{Type: wal.TypeOrderCancelled, Sale: z.sale, Zone: z.def.ID, Hold: h.ID, Order: h.OrderID, At: now}
	return Decision{Event: ev, Answer: a, Returned: len(h.Seats)}
}

// formatMs writes a time as the API does everywhere (actors.FormatTime):
// UTC with milliseconds.
func formatMs(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}
