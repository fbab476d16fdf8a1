package seats

import (
	"fmt"
	"testing"

	"onsale/wal"
)

// fakeAllowance is a max_per_buyer account for one zone's tests.
type fakeAllowance struct {
	max    int
	counts map[string]int
}

func (f *fakeAllowance) Reserve(buyer string, n int) (bool, int) {
	c := f.counts[buyer]
	if c+n > f.max {
		return false, max(f.max-c, 0)
	}
	f.counts[buyer] = c + n
	return true, f.max - c - n
}

func (f *fakeAllowance) Give(buyer string, n int) { f.counts[buyer] -= n }

// decideHarness drives a zone through its decisions as the actor does:
// decide, then apply the record.
type decideHarness struct {
	t     *testing.T
	z     *Zone
	allow *fakeAllowance
	terms Terms
	ids   int
}

const decideTTL = 600_000

func newDecideHarness(t *testing.T, def ZoneDef) *decideHarness {
	h := &decideHarness{t: t, z: NewZone(testSale, def), allow: &fakeAllowance{max: 6, counts: map[string]int{}}}
	h.terms = Terms{
		HoldTTLMs: decideTTL, MaxPerBuyer: 6, Allowance: h.allow,
		OtherZones: func() []ZoneFree { return []ZoneFree{{ID: "other", Free: 7}} },
		NewHoldID: func() string {
			h.ids++
			return fmt.Sprintf("h%d", h.ids)
		},
	}
	return h
}

// carry applies d's record, as the actor does once the log has taken it.
func (h *decideHarness) carry(d Decision) Decision {
	h.t.Helper()
	if d.Writes() {
		mustApply(h.t, h.z, &d.Event)
		if d.Returned > 0 {
			h.allow.Give(d.Answer.Buyer, d.Returned)
		}
	}
	requireNoError(h.t, checkZone(h.z))
	return d
}

func (h *decideHarness) hold(r HoldRequest, now int64) Decision {
	h.t.Helper()
	return h.carry(h.z.DecideHold(r, &h.terms, now))
}

func requireRefusal(t *testing.T, d Decision, code string, durable bool) *Refusal {
	t.Helper()
	if d.Refusal == nil {
		t.Fatalf("decided %+v, want a %s refusal", d, code)
	}
	requireEqual(t, d.Refusal.Code, code, d.Refusal.Message)
	requireEqual(t, d.Refusal.Durable, durable, "durable")
	requireTrue(t, !d.Writes(), "a refusal writes nothing")
	return d.Refusal
}

func TestDecideHold(t *testing.T) {
	h := newDecideHarness(t, reservedDef(6, 4))
	const now = 10_000

	d := h.hold(HoldRequest{Buyer: "b1", Seats: []string{"A-2", "A-3"}, IdemKey: "k", IdemHash: 9}, now)
	requireTrue(t, d.Refusal == nil, "refused %+v", d.Refusal)
	requireEqual(t, d.Event, wal.Event{Type: wal.TypeHoldPlaced, Sale: testSale, Zone: "vip", Hold: "h1", Buyer: "b1",
		Seats: []uint32{1, 2}, At: now, Expires: now + decideTTL, Amount: 2 * testPrice, IdemKey: "k", IdemHash: 9})
	requireEqual(t, d.Answer, Hold{ID: "h1", Buyer: "b1", Seats: []uint32{1, 2}, CreatedAt: now,
		ExpiresAt: HoldExpiresAt(now, decideTTL), Amount: 2 * testPrice, State: HoldActive})
	requireEqual(t, d.Reserved, 2)
	requireEqual(t, h.allow.counts["b1"], 2)

	// Input errors: answered, not stored, nothing reserved.
	requireRefusal(t, h.hold(HoldRequest{Buyer: "b2", Seats: []string{"C-1"}}, now), CodeBadRequest, false)
	requireRefusal(t, h.hold(HoldRequest{Buyer: "b2", Seats: []string{"B-1", "B-1"}}, now), CodeBadRequest, false)
	requireEqual(t, h.allow.counts["b2"], 0)

	// Taken: alternatives that leave the named seats out; the reservation
	// is given back.
	r := requireRefusal(t, h.hold(HoldRequest{Buyer: "b2", Seats: []string{"A-3", "A-4"}}, now), CodeSeatsTaken, true)
	requireEqual(t, r.Alternatives, [][]string{{"A-5", "A-6"}, {"B-1", "B-2"}, {"B-3", "B-4"}})
	requireEqual(t, h.allow.counts["b2"], 0)

	// accept_alternative takes the first of those.
	d = h.hold(HoldRequest{Buyer: "b2", Seats: []string{"A-3", "A-4"}, AcceptAlternative: true}, now)
	requireEqual(t, h.z.SeatNames(d.Answer.Seats), []string{"A-5", "A-6"})

	// The buyer's limit, counted before the seats are looked at.
	d = h.hold(HoldRequest{Buyer: "b3", Quantity: 4}, now)
	requireEqual(t, h.z.SeatNames(d.Answer.Seats), []string{"B-1", "B-2", "B-3", "B-4"})
	r = requireRefusal(t, h.hold(HoldRequest{Buyer: "b3", Seats: []string{"A-1", "A-2", "A-4"}}, now), CodeLimitExceeded, true)
	requireEqual(t, *r.Remaining, 2)
	requireEqual(t, h.allow.counts["b3"], 4)
	r = requireRefusal(t, h.hold(HoldRequest{Buyer: "b4", Quantity: 7}, now), CodeLimitExceeded, true)
	requireEqual(t, *r.Remaining, 6)
	requireEqual(t, h.allow.counts["b4"], 0)

	// Sold out (A-1 and A-4 are left): other zones listed, reservation
	// given back.
	r = requireRefusal(t, h.hold(HoldRequest{Buyer: "b5", Quantity: 3}, now), CodeSoldOut, true)
	requireEqual(t, r.Zones, []ZoneFree{{ID: "other", Free: 7}})
	requireEqual(t, h.allow.counts["b5"], 0)

	// Paused: refused before anything else, not stored.
	requireRefusal(t, h.hold(HoldRequest{Buyer: "b6", Quantity: 1, Paused: true}, now), CodeSalePaused, false)
	requireEqual(t, h.allow.counts["b6"], 0)

	// Full: no more hold records.
	h.z.holdsMax = h.z.KeptHolds()
	requireRefusal(t, h.z.DecideHold(HoldRequest{Buyer: "b6", Quantity: 1}, &h.terms, now), CodeUnavailable, false)
	requireEqual(t, h.allow.counts["b6"], 0)
}

func TestDecideHoldGA(t *testing.T) {
	h := newDecideHarness(t, gaDef(3))
	requireRefusal(t, h.hold(HoldRequest{Buyer: "b1", Seats: []string{"1"}}, 1), CodeBadRequest, false)
	d := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1)
	requireEqual(t, h.z.SeatNames(d.Answer.Seats), []string{"1", "2"})
	r := requireRefusal(t, h.hold(HoldRequest{Buyer: "b2", Quantity: 2}, 1), CodeSoldOut, true)
	requireEqual(t, r.Message, `zone "ga" cannot fill 2 seats; see the zones with seats free`)
	h.terms.OtherZones = nil
	r = requireRefusal(t, h.hold(HoldRequest{Buyer: "b2", Quantity: 2}, 1), CodeSoldOut, true)
	requireEqual(t, r.Zones, []ZoneFree{})
}

func TestDecideLimitCountsHeldSeats(t *testing.T) {
	h := newDecideHarness(t, gaDef(20))
	h.hold(HoldRequest{Buyer: "b1", Quantity: 4}, 1)
	r := requireRefusal(t, h.hold(HoldRequest{Buyer: "b1", Quantity: 3}, 1), CodeLimitExceeded, true)
	requireEqual(t, *r.Remaining, 2)
	requireEqual(t, r.Message, "this sale allows 6 seats per buyer; you may take 2 more")
	requireEqual(t, h.allow.counts["b1"], 4)
}

func TestDecideReleaseAndExpiry(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1_000).Answer
	b := h.hold(HoldRequest{Buyer: "b2", Quantity: 3}, 2_000).Answer
	mine := Access{HoldID: a.ID, Buyer: "b1"}

	requireRefusal(t, h.z.DecideRelease(Access{HoldID: a.ID, Buyer: "b2"}, 3_000), CodeNotFound, false)
	requireRefusal(t, h.z.LookupHold(Access{HoldID: a.ID, Buyer: "b2"}), CodeNotFound, false)
	requireEqual(t, h.z.LookupHold(Access{HoldID: a.ID, Admin: true}).Answer.ID, a.ID)

	d := h.carry(h.z.DecideRelease(mine, 3_000))
	requireEqual(t, d.Event, wal.Event{Type: wal.TypeHoldReleased, Sale: testSale, Zone: "ga", Hold: a.ID, At: 3_000})
	requireEqual(t, d.Answer.State, HoldReleased)
	requireEqual(t, d.Returned, 2)
	requireEqual(t, h.allow.counts["b1"], 0)
	// Again: the same answer, nothing to write.
	d = h.z.DecideRelease(mine, 4_000)
	requireTrue(t, !d.Writes() && d.Refusal == nil, "second release %+v", d)
	requireEqual(t, d.Answer.State, HoldReleased)

	// Expiry: not before expires_at, then once.
	_, ok := h.z.DecideExpiry(b.ID, b.ExpiresAt-1)
	requireFalse(t, ok, "expired early")
	_, ok = h.z.DecideExpiry(a.ID, b.ExpiresAt)
	requireFalse(t, ok, "expired a released hold")
	_, ok = h.z.DecideExpiry("nope", b.ExpiresAt)
	requireFalse(t, ok, "expired an unknown hold")
	d, ok = h.z.DecideExpiry(b.ID, b.ExpiresAt)
	requireTrue(t, ok)
	h.carry(d)
	requireEqual(t, d.Event, wal.Event{Type: wal.TypeHoldExpired, Sale: testSale, Zone: "ga", Hold: b.ID, At: b.ExpiresAt})
	requireEqual(t, d.Returned, 3)
	requireEqual(t, h.allow.counts["b2"], 0)
	r := requireRefusal(t, h.z.DecideRelease(Access{HoldID: b.ID, Buyer: "b2"}, b.ExpiresAt), CodeHoldNotActive, false)
	requireEqual(t, r.Message, "the hold is expired, not active")
}

func TestDecideCheckout(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1_000).Answer
	mine := CheckoutBegin{Access: Access{HoldID: a.ID, Buyer: "b1"}, OrderID: "o1", IdemKey: "pk", IdemHash: 5}

	requireRefusal(t, h.z.DecideCheckoutBegin(CheckoutBegin{Access: Access{HoldID: a.ID, Buyer: "b2"}, OrderID: "o9"}, 2_000), CodeNotFound, false)
	// The attempt is a record, written before the gateway is called.
	d := h.carry(h.z.DecideCheckoutBegin(mine, 2_000))
	requireEqual(t, d.Event, wal.Event{Type: wal.TypePaymentStarted, Sale: testSale, Zone: "ga", Hold: a.ID, Order: "o1",
		Buyer: "b1", At: 2_000, Amount: 2 * testPrice, IdemKey: "pk", IdemHash: 5})
	requireEqual(t, d.Answer.Amount, int64(2*testPrice))
	requireEqual(t, *d.Payment, Payment{Hold: a.ID, Order: "o1", Buyer: "b1", Amount: 2 * testPrice, IdemKey: "pk", IdemHash: 5, StartedAt: 2_000})
	// Another checkout while it is open: transient.
	other := mine
	other.OrderID, other.IdemKey = "o2", "other"
	r := requireRefusal(t, h.z.DecideCheckoutBegin(other, 2_500), CodeHoldNotActive, false)
	requireTrue(t, r.Transient)
	// The same request again resumes it: same order, nothing written.
	again := mine
	again.OrderID = "o-new"
	d = h.z.DecideCheckoutBegin(again, 3_000)
	requireTrue(t, !d.Writes() && d.Refusal == nil, "resume %+v", d)
	requireEqual(t, d.Payment.Order, "o1")

	d = h.carry(h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1", IdemKey: "pk", IdemHash: 5}, 4_000))
	requireEqual(t, d.Event, wal.Event{Type: wal.TypeOrderPaid, Sale: testSale, Zone: "ga", Hold: a.ID, Order: "o1",
		At: 4_000, Amount: 2 * testPrice, IdemKey: "pk", IdemHash: 5})
	requireEqual(t, d.Answer.State, HoldPurchased)
	requireEqual(t, d.Answer.OrderID, "o1")
	requireEqual(t, d.Answer.PaidAt, int64(4_000))
	requireEqual(t, h.allow.counts["b1"], 2, "bought seats still count")
	requireEqual(t, len(h.z.OpenPayments()), 0, "the order closes the attempt")
	// The same payment finished twice answers the order.
	d = h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, 4_500)
	requireTrue(t, !d.Writes() && d.Refusal == nil && d.Answer.OrderID == "o1", "again %+v", d)
	// The same request after its order: the purchased hold, no attempt.
	d = h.z.DecideCheckoutBegin(mine, 5_000)
	requireTrue(t, !d.Writes() && d.Refusal == nil && d.Payment == nil && d.Answer.OrderID == "o1", "after %+v", d)

	r = requireRefusal(t, h.z.DecideCheckoutBegin(other, 5_000), CodeHoldNotActive, false)
	requireEqual(t, r.Message, "the hold is purchased, not active")
	r = requireRefusal(t, h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o2"}, 5_000), CodeHoldNotActive, true)
	requireEqual(t, r.Message, "the hold is purchased, not active; the payment is refunded")
	requireRefusal(t, h.z.DecideOrder(OrderRequest{HoldID: "nope", OrderID: "o2"}, 5_000), CodeNotFound, false)
}

func TestDecideCheckoutOfExpiredHold(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1_000).Answer
	mine := CheckoutBegin{Access: Access{HoldID: a.ID, Buyer: "b1"}, OrderID: "o1"}
	// Due but not yet expired (its expiry could not be queued): a payment
	// that ends now is refused, durably.
	r := requireRefusal(t, h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, a.ExpiresAt), CodeHoldExpired, true)
	requireEqual(t, r.Message, "the hold expired at 1970-01-01T00:10:01.000Z during payment; the payment is refunded")
	d, _ := h.z.DecideExpiry(a.ID, a.ExpiresAt)
	h.carry(d)
	r = requireRefusal(t, h.z.DecideCheckoutBegin(mine, a.ExpiresAt), CodeHoldExpired, false)
	requireEqual(t, r.Message, "the hold expired at 1970-01-01T00:10:01.000Z; hold the seats again")
	requireRefusal(t, h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, a.ExpiresAt), CodeHoldExpired, true)
}

// TestDecidePaymentOutlivesTheHold: an attempt stays open when its hold
// ends, until its outcome is recorded: the money may have been taken.
func TestDecidePaymentOutlivesTheHold(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 1}, 1_000).Answer
	h.carry(h.z.DecideCheckoutBegin(CheckoutBegin{Access: Access{HoldID: a.ID, Buyer: "b1"}, OrderID: "o1", IdemKey: "k"}, 2_000))
	h.carry(h.z.DecideRelease(Access{HoldID: a.ID, Buyer: "b1"}, 3_000))
	requireEqual(t, len(h.z.OpenPayments()), 1)
	// The same request resumes it, to learn the outcome.
	d := h.z.DecideCheckoutBegin(CheckoutBegin{Access: Access{HoldID: a.ID, Buyer: "b1"}, OrderID: "o2", IdemKey: "k"}, 3_500)
	requireTrue(t, d.Refusal == nil && d.Payment != nil && d.Payment.Order == "o1", "resume %+v", d)
	requireRefusal(t, h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, 4_000), CodeHoldNotActive, true)
	_, ok := h.z.DecidePaymentEnd(a.ID, "o-other", true, 4_000)
	requireTrue(t, !ok, "another order's outcome closes nothing")
	d, ok = h.z.DecidePaymentEnd(a.ID, "o1", true, 4_000)
	requireTrue(t, ok, "open")
	h.carry(d)
	requireEqual(t, d.Event, wal.Event{Type: wal.TypePaymentRefunded, Sale: testSale, Zone: "ga", Hold: a.ID, Order: "o1", At: 4_000})
	requireEqual(t, len(h.z.OpenPayments()), 0)
	_, ok = h.z.DecidePaymentEnd(a.ID, "o1", true, 5_000)
	requireTrue(t, !ok, "closed once")
}

func TestDecidePaymentFailed(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 1}, 1_000).Answer
	begin := CheckoutBegin{Access: Access{HoldID: a.ID, Buyer: "b1"}, OrderID: "o1"}
	h.carry(h.z.DecideCheckoutBegin(begin, 2_000))
	// Without a key nothing can resume it: a second checkout waits.
	requireRefusal(t, h.z.DecideCheckoutBegin(begin, 2_100), CodeHoldNotActive, false)
	d, ok := h.z.DecidePaymentEnd(a.ID, "o1", false, 3_000)
	requireTrue(t, ok, "open")
	h.carry(d)
	requireEqual(t, d.Event.Type, wal.TypePaymentFailed)
	requireEqual(t, h.z.Hold(a.ID).State, HoldActive, "the hold stays")
	begin.OrderID = "o2"
	d = h.carry(h.z.DecideCheckoutBegin(begin, 4_000))
	requireEqual(t, d.Payment.Order, "o2", "a new attempt, a new order id")
}

func TestDecideCancelBegin(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1_000).Answer
	h.carry(h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, 2_000))
	requireRefusal(t, h.z.DecideCancelBegin("nope", 3_000), CodeNotFound, false)
	d := h.carry(h.z.DecideCancelBegin("o1", 3_000))
	requireEqual(t, d.Event, wal.Event{Type: wal.TypeCancelStarted, Sale: testSale, Zone: "ga", Hold: a.ID, Order: "o1", At: 3_000})
	requireEqual(t, h.z.OpenCancels(), []string{"o1"})
	free, _, _ := h.z.Counts()
	requireEqual(t, free, 8, "the intent frees nothing")
	d = h.z.DecideCancelBegin("o1", 3_500)
	requireTrue(t, !d.Writes() && d.Refusal == nil && !d.Answer.OrderCancelled, "open already %+v", d)
	h.carry(h.z.DecideCancel("o1", 4_000))
	requireEqual(t, len(h.z.OpenCancels()), 0, "the cancel closes the intent")
	d = h.z.DecideCancelBegin("o1", 5_000)
	requireTrue(t, !d.Writes() && d.Answer.OrderCancelled, "after %+v", d)
}

func TestDecideCancel(t *testing.T) {
	h := newDecideHarness(t, gaDef(10))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1_000).Answer
	h.carry(h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, 2_000))

	requireRefusal(t, h.z.DecideCancel("nope", 3_000), CodeNotFound, false)
	requireRefusal(t, h.z.LookupOrder("nope"), CodeNotFound, false)
	requireEqual(t, h.z.LookupOrder("o1").Answer.ID, a.ID)

	d := h.carry(h.z.DecideCancel("o1", 3_000))
	requireEqual(t, d.Event, wal.Event{Type: wal.TypeOrderCancelled, Sale: testSale, Zone: "ga", Hold: a.ID, Order: "o1", At: 3_000})
	requireTrue(t, d.Answer.OrderCancelled)
	requireEqual(t, d.Answer.CancelledAt, int64(3_000))
	requireEqual(t, d.Returned, 2)
	requireEqual(t, h.allow.counts["b1"], 0)
	free, _, _ := h.z.Counts()
	requireEqual(t, free, 10)

	d = h.z.DecideCancel("o1", 4_000)
	requireTrue(t, !d.Writes() && d.Refusal == nil, "second cancel %+v", d)
	requireEqual(t, d.Answer.CancelledAt, int64(3_000))
}

// TestDecideChangesNothing: a decision leaves the seats and holds as they
// were until its record is applied (a record the log refuses changes
// nothing).
func TestDecideChangesNothing(t *testing.T) {
	h := newDecideHarness(t, reservedDef(6, 4))
	a := h.hold(HoldRequest{Buyer: "b1", Quantity: 2}, 1_000).Answer
	h.carry(h.z.DecideOrder(OrderRequest{HoldID: a.ID, OrderID: "o1"}, 2_000))
	b := h.hold(HoldRequest{Buyer: "b2", Seats: []string{"B-1"}}, 1_000).Answer
	before := h.z.AppendSnapshot(nil)
	h.z.DecideHold(HoldRequest{Buyer: "b3", Quantity: 3}, &h.terms, 3_000)
	h.z.DecideHold(HoldRequest{Buyer: "b3", Seats: []string{"B-1", "B-2"}}, &h.terms, 3_000)
	h.z.DecideRelease(Access{HoldID: b.ID, Buyer: "b2"}, 3_000)
	h.z.DecideExpiry(b.ID, b.ExpiresAt)
	h.z.DecideOrder(OrderRequest{HoldID: b.ID, OrderID: "o2"}, 3_000)
	h.z.DecideCancel("o1", 3_000)
	requireEqual(t, h.z.AppendSnapshot(nil), before)
}
