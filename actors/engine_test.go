package actors

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/wal"
)

// Tests of the engine through its public surface: sales, holds, checkouts,
// orders, idempotency, expiry and recovery. Time is a fake clock that the
// test moves; the engine's ticker still runs every tickInterval, so after
// moving the clock a test polls until the expected state shows.

// testBase is the fake clock's start: every test runs from the same instant.
var testBase = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// fakeClock is Config.Now for tests: testBase plus an offset that only the
// test moves. Safe for concurrent use.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return testBase.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) Ms() int64               { return c.Now().UnixMilli() }
func (c *fakeClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// Polling limits of waitFor: the ticker runs every 100 ms, so a state that
// has not shown after 10 s never will.
const (
	waitForMax  = 10 * time.Second
	waitForPoll = 5 * time.Millisecond
)

// waitFor polls cond until it holds, and fails the test if it does not
// within waitForMax.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitForMax)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, waitForMax)
		}
		time.Sleep(waitForPoll)
	}
}

// Payment tokens of fakePayer, as the built-in simulator names them.
const (
	tokOK      = "tok_visa"
	tokDecline = "tok_decline"
	tokError   = "tok_error"
)

// fakePayer is a Payer that records what it was asked. tokDecline is
// declined, tokError (or any token while down) is a gateway error.
type fakePayer struct {
	mu       sync.Mutex
	down     bool
	attempts int                // calls to Charge
	charges  map[string]int64   // order id -> amount charged
	refunds  map[string][]int64 // order id -> amounts refunded
	onCharge func(orderID string)
	onRefund func(orderID string)
}

func newFakePayer() *fakePayer {
	return &fakePayer{charges: map[string]int64{}, refunds: map[string][]int64{}}
}

func (p *fakePayer) Charge(orderID string, amount int64, token string) *Error {
	p.mu.Lock()
	p.attempts++
	hook, down := p.onCharge, p.down
	p.mu.Unlock()
	if hook != nil {
		hook(orderID)
	}
	switch {
	case token == tokDecline:
		return errorf(CodePaymentDecline, "the card was declined")
	case token == tokError || down:
		return errorf(CodePaymentDown, "the payment gateway did not answer")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.charges[orderID]; ok {
		panic("fakePayer: order " + orderID + " charged twice")
	}
	p.charges[orderID] = amount
	return nil
}

func (p *fakePayer) Refund(orderID string, amount int64) *Error {
	p.mu.Lock()
	hook := p.onRefund
	p.mu.Unlock()
	if hook != nil {
		hook(orderID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refunds[orderID] = append(p.refunds[orderID], amount)
	return nil
}

func (p *fakePayer) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

func (p *fakePayer) setOnCharge(fn func(orderID string)) {
	p.mu.Lock()
	p.onCharge = fn
	p.mu.Unlock()
}

func (p *fakePayer) setOnRefund(fn func(orderID string)) {
	p.mu.Lock()
	p.onRefund = fn
	p.mu.Unlock()
}

func (p *fakePayer) chargeAttempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts
}

func (p *fakePayer) charged() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.charges))
	for k, v := range p.charges {
		out[k] = v
	}
	return out
}

func (p *fakePayer) refunded(orderID string) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.refunds[orderID])
}

// harness is an engine on a temporary directory with a fake clock, which a
// test may close and open again on the same directory.
type harness struct {
	t     testing.TB
	dir   string
	clock *fakeClock
	sync  bool // fsync every batch; off by default, for speed
	e     *Engine
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, dir: t.TempDir(), clock: &fakeClock{}}
	h.open()
	t.Cleanup(func() {
		if h.e != nil {
			if err := h.e.Close(); err != nil {
				t.Errorf("close engine: %v", err)
			}
		}
	})
	return h
}

func (h *harness) open() {
	h.t.Helper()
	e, err := Open(Config{Dir: h.dir, NoSync: !h.sync, Now: h.clock.Now})
	requireNoError(h.t, err, "open engine")
	h.e = e
}

func (h *harness) close() {
	h.t.Helper()
	e := h.e
	h.e = nil
	requireNoError(h.t, e.Close(), "close engine")
}

func (h *harness) restart() {
	h.t.Helper()
	h.close()
	h.open()
}

func (h *harness) sale(id string) *Sale {
	h.t.Helper()
	s, ok := h.e.Sale(id)
	requireTrue(h.t, ok, "sale %q exists", id)
	return s
}

func (h *harness) createSale(def SaleDef) *Sale {
	h.t.Helper()
	s, err := h.e.CreateSale(def)
	if err != nil {
		h.t.Fatalf("create sale %q: %v", def.ID, err)
	}
	return s
}

// stdSaleDef is the sale most tests use: general admission of 20 at 45.00
// and a reserved zone of two rows of 10 at 250.00; holds last 600 s and a
// buyer may take 6 seats.
func stdSaleDef() SaleDef {
	return SaleDef{ID: "final", HoldTTLS: 600, MaxPerBuyer: 6, Zones: []ZoneDef{
		{ID: "ga", PriceCents: 4500, Capacity: 20},
		{ID: "vip", PriceCents: 25000, Rows: []RowDef{{Row: "A", Seats: 10}, {Row: "B", Seats: 10}}},
	}}
}

const stdTTL = 600 * time.Second

func describe(r Result) string {
	switch {
	case r.Err != nil:
		return fmt.Sprintf("error %s (%s)", r.Err.Code, r.Err.Message)
	case r.Hold != nil:
		return fmt.Sprintf("hold %+v", *r.Hold)
	case r.Order != nil:
		return fmt.Sprintf("order %+v", *r.Order)
	case r.Ticket != nil:
		return fmt.Sprintf("ticket %+v", *r.Ticket)
	}
	return "empty result"
}

// requireCode fails unless r is a refusal with that code, and returns it.
func requireCode(t testing.TB, r Result, code string, context ...any) *Error {
	t.Helper()
	if r.Err == nil || r.Err.Code != code {
		t.Fatalf("%sgot %s, want error %s", contextPrefix(context), describe(r), code)
	}
	return r.Err
}

func requireHold(t testing.TB, r Result, context ...any) *HoldView {
	t.Helper()
	if r.Err != nil || r.Hold == nil {
		t.Fatalf("%sgot %s, want a hold", contextPrefix(context), describe(r))
	}
	return r.Hold
}

func requireOrder(t testing.TB, r Result, context ...any) *OrderView {
	t.Helper()
	if r.Err != nil || r.Order == nil {
		t.Fatalf("%sgot %s, want an order", contextPrefix(context), describe(r))
	}
	return r.Order
}

func mustHold(t testing.TB, s *Sale, req HoldRequest) *HoldView {
	t.Helper()
	return requireHold(t, s.Hold(req), "hold %+v", req)
}

func counts(s *Sale, zone string) ZoneCounts {
	for _, c := range s.Counts() {
		if c.ID == zone {
			return c
		}
	}
	panic("no zone " + zone)
}

// seatStates returns the status of every seat of a reserved zone by name.
func seatStates(t testing.TB, s *Sale, zone string) map[string]string {
	t.Helper()
	seats, err := s.Seats(zone)
	requireTrue(t, err == nil && seats != nil, "seat map of zone %q: %v", zone, err)
	out := make(map[string]string, len(seats))
	for _, v := range seats {
		out[v.ID] = v.Status
	}
	return out
}

// adjacentInOneRow reports whether seats are consecutive numbers of one row.
func adjacentInOneRow(seats []string) bool {
	row, first := "", 0
	for i, name := range seats {
		r, num, ok := strings.Cut(name, "-")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			return false
		}
		if i == 0 {
			row, first = r, n
			continue
		}
		if r != row || n != first+i {
			return false
		}
	}
	return true
}

func TestEngineHoldQuantityGA(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	now := h.clock.Ms()

	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 3})
	requireTrue(t, strings.HasPrefix(v.ID, "h_"), "hold id %q", v.ID)
	requireEqual(t, *v, HoldView{ID: v.ID, Sale: "final", Zone: "ga", Buyer: "b1", Seats: []string{"1", "2", "3"},
		State: "active", CreatedAt: now, ExpiresAt: now + stdTTL.Milliseconds(), Amount: 3 * 4500})

	v2 := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2})
	requireEqual(t, v2.Seats, []string{"4", "5"})
	requireNotEqual(t, v2.ID, v.ID)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 15, Held: 5})
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20})
	requireEqual(t, s.Stats().HoldsPlaced, int64(2))

	// The hold reads back as it was answered.
	g := requireHold(t, h.e.GetHold(v.ID, "b1", false))
	requireEqual(t, *g, *v)
}

func TestEngineHoldQuantityReserved(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b0", Zone: "vip", Seats: []string{"A-2"}})

	cases := []struct {
		buyer string
		n     int
		want  []string
	}{
		// Row A is A-1 free, A-2 held, A-3..A-10 free: A-1 alone cannot
		// seat 3, the run of 8 can without leaving a single.
		{"b1", 3, []string{"A-3", "A-4", "A-5"}},
		// Row A now has runs of 1 and 5: 6 together only fit in row B.
		{"b2", 6, []string{"B-1", "B-2", "B-3", "B-4", "B-5", "B-6"}},
		// The run A-6..A-10 is exactly 5.
		{"b3", 5, []string{"A-6", "A-7", "A-8", "A-9", "A-10"}},
	}
	for _, c := range cases {
		v := mustHold(t, s, HoldRequest{Buyer: c.buyer, Zone: "vip", Quantity: c.n})
		requireEqual(t, v.Seats, c.want, "best %d seats", c.n)
		requireTrue(t, adjacentInOneRow(v.Seats), "%v adjacent in one row", v.Seats)
		requireEqual(t, v.Amount, int64(c.n)*25000)
	}
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 5, Held: 15})
	st := seatStates(t, s, "vip")
	for _, name := range []string{"A-1", "B-7", "B-8", "B-9", "B-10"} {
		requireEqual(t, st[name], "free", name)
	}
	requireEqual(t, st["A-2"], "held")
}

func TestEngineHoldNamedSeats(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"B-4", "B-3"}})
	requireEqual(t, v.Seats, []string{"B-4", "B-3"}, "the seats as named")
	requireEqual(t, v.Amount, int64(2*25000))
	st := seatStates(t, s, "vip")
	requireEqual(t, [3]string{st["B-2"], st["B-3"], st["B-4"]}, [3]string{"free", "held", "held"})
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})

	// Bad names and seats in a general-admission zone change nothing.
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"C-1"}}), CodeBadRequest)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-1", "A-1"}}), CodeBadRequest)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "ga", Seats: []string{"1"}}), CodeBadRequest)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "nope", Quantity: 1}), CodeBadRequest)
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})
}

func TestEngineHoldSeatsTaken(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-3", "A-4"}})

	e := requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-4", "A-5"}}), CodeSeatsTaken)
	// Free now: A-1..A-2, A-5..A-10, row B. The named seats are left out,
	// and each set is the best of what the earlier sets left.
	requireEqual(t, e.Alternatives, [][]string{{"A-1", "A-2"}, {"A-6", "A-7"}, {"B-1", "B-2"}})
	st := seatStates(t, s, "vip")
	seen := map[string]bool{}
	for _, alt := range e.Alternatives {
		requireEqual(t, len(alt), 2, "same size as asked")
		for _, name := range alt {
			requireEqual(t, st[name], "free", "alternative seat %s", name)
			requireFalse(t, seen[name] || name == "A-3" || name == "A-4", "seat %s offered twice or taken", name)
			seen[name] = true
		}
	}
	// The refusal changed nothing: b2 may still take all 6 seats.
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 6})

	// A seat this buyer holds already is taken too.
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-3"}}), CodeSeatsTaken)

	// A zone with nothing free offers no alternative: an empty list.
	h2 := h.createSale(SaleDef{ID: "tiny", MaxPerBuyer: 6, Zones: []ZoneDef{{ID: "box", Rows: []RowDef{{Row: "A", Seats: 2}}}}})
	mustHold(t, h2, HoldRequest{Buyer: "b1", Zone: "box", Quantity: 2})
	e = requireCode(t, h2.Hold(HoldRequest{Buyer: "b2", Zone: "box", Seats: []string{"A-1"}}), CodeSeatsTaken)
	requireEqual(t, len(e.Alternatives), 0)
}

func TestEngineHoldAcceptAlternative(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-3", "A-4"}})

	// Every named seat taken, and some named seats still free: either way
	// the hold is the first alternative a seats_taken answer offers for
	// the same request at that moment.
	for _, named := range [][]string{{"A-3", "A-4"}, {"A-4", "A-5"}, {"A-2", "A-3", "A-9"}} {
		probe := requireCode(t, s.Hold(HoldRequest{Buyer: "probe", Zone: "vip", Seats: named}), CodeSeatsTaken)
		requireTrue(t, len(probe.Alternatives) > 0, "alternatives for %v", named)
		buyer := "alt-" + strings.Join(named, "")
		v := mustHold(t, s, HoldRequest{Buyer: buyer, Zone: "vip", Seats: named, AcceptAlternative: true})
		requireEqual(t, v.Seats, probe.Alternatives[0], "hold for %v with accept_alternative", named)
	}
	// Free named seats are simply held, alternative or not.
	v := mustHold(t, s, HoldRequest{Buyer: "b9", Zone: "vip", Seats: []string{"B-9", "B-10"}, AcceptAlternative: true})
	requireEqual(t, v.Seats, []string{"B-9", "B-10"})

	// No alternative at all: sold_out, naming the zones with seats free.
	tiny := h.createSale(SaleDef{ID: "tiny", MaxPerBuyer: 6, Zones: []ZoneDef{
		{ID: "box", Rows: []RowDef{{Row: "A", Seats: 3}}}, {ID: "ga", Capacity: 7},
	}})
	mustHold(t, tiny, HoldRequest{Buyer: "b1", Zone: "box", Seats: []string{"A-1", "A-3"}})
	e := requireCode(t, tiny.Hold(HoldRequest{Buyer: "b2", Zone: "box", Seats: []string{"A-1", "A-2"}, AcceptAlternative: true}), CodeSoldOut)
	requireEqual(t, e.Zones, []ZoneFree{{ID: "ga", Free: 7}})
	requireEqual(t, counts(tiny, "box"), ZoneCounts{ID: "box", Free: 1, Held: 2})
}

func TestEngineHoldSoldOut(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(SaleDef{ID: "small", MaxPerBuyer: 6, Zones: []ZoneDef{
		{ID: "ga", Capacity: 4},
		{ID: "vip", Rows: []RowDef{{Row: "A", Seats: 2}}},
		{ID: "box", Rows: []RowDef{{Row: "A", Seats: 2}}},
	}})
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 4})
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "box", Quantity: 2})

	e := requireCode(t, s.Hold(HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1}), CodeSoldOut)
	requireEqual(t, e.Zones, []ZoneFree{{ID: "vip", Free: 2}}, "other zones with seats free")
	e = requireCode(t, s.Hold(HoldRequest{Buyer: "b3", Zone: "vip", Quantity: 3}), CodeSoldOut)
	requireEqual(t, len(e.Zones), 0, "no other zone has seats free")
	// The refusals took nothing from b3's allowance.
	mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "vip", Quantity: 2})
	requireEqual(t, s.ledger.count("b3"), 2)
}

func TestEngineHoldLimitExceeded(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 4})

	e := requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3}), CodeLimitExceeded)
	requireTrue(t, e.Remaining != nil && *e.Remaining == 2, "remaining %v, want 2", e.Remaining)
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 2})
	e = requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1}), CodeLimitExceeded)
	requireTrue(t, e.Remaining != nil && *e.Remaining == 0, "remaining %v, want 0", e.Remaining)

	// Limits come before availability: a taken seat over the limit is
	// limit_exceeded, not seats_taken.
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"B-10"}})
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"B-10"}}), CodeLimitExceeded)
	requireEqual(t, s.ledger.count("b1"), 6)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 16, Held: 4})
}

func TestEngineReleaseHold(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}})

	requireCode(t, h.e.ReleaseHold(v.ID, "b2", false), CodeNotFound, "another buyer's hold")
	r := requireHold(t, h.e.ReleaseHold(v.ID, "b1", false))
	requireEqual(t, r.State, "released")
	requireEqual(t, r.Seats, []string{"A-1", "A-2"})
	// Free at once, for anyone.
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20})
	requireEqual(t, s.ledger.count("b1"), 0)
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-1", "A-2"}})

	// Releasing again is fine and changes nothing.
	again := requireHold(t, h.e.ReleaseHold(v.ID, "b1", false))
	requireEqual(t, again.State, "released")
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})

	// The admin may release anyone's hold.
	v2 := mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 2})
	requireEqual(t, requireHold(t, h.e.ReleaseHold(v2.ID, "", true)).State, "released")

	// A purchased hold cannot be released.
	v3 := mustHold(t, s, HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1})
	requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v3.ID, Buyer: "b4", PaymentToken: tokOK}, p))
	requireCode(t, h.e.ReleaseHold(v3.ID, "b4", false), CodeHoldNotActive)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 19, Sold: 1})

	// Nor an expired one.
	v4 := mustHold(t, s, HoldRequest{Buyer: "b5", Zone: "ga", Quantity: 1})
	h.clock.Advance(stdTTL)
	waitFor(t, "hold expiry", func() bool { return h.e.GetHold(v4.ID, "b5", false).Hold.State == "expired" })
	requireCode(t, h.e.ReleaseHold(v4.ID, "b5", false), CodeHoldNotActive)
}

func TestEngineHoldVisibility(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1})

	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).ID, v.ID)
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "", true)).Buyer, "b1", "the admin sees every hold")
	requireCode(t, h.e.GetHold(v.ID, "b2", false), CodeNotFound, "another buyer")
	requireCode(t, h.e.GetHold(v.ID, "", false), CodeNotFound, "nobody")

	// Ids that cannot exist, or do not.
	for _, id := range []string{"", "h_", "h_short", "o" + v.ID[1:], newID('h', s.idx, 0), newID('h', s.idx, 9), newID('h', 999, 0)} {
		requireCode(t, h.e.GetHold(id, "b1", true), CodeNotFound, "hold %q", id)
		requireCode(t, h.e.ReleaseHold(id, "b1", true), CodeNotFound, "release %q", id)
		requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: id, Buyer: "b1", PaymentToken: tokOK}, newFakePayer()), CodeNotFound, "checkout %q", id)
	}
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "active")
}

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
		Seats: []string{"A-1", "A-2"}, Amount: 50000, State: "paid", PaidAt: now})
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

func TestEngineIdempotentHold(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	req := HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 2, IdemKey: "k1"}
	first := mustHold(t, s, req)
	again := mustHold(t, s, req)
	requireEqual(t, *again, *first, "the first answer again")
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2}, "no second hold")

	// Another request under the same key is refused and holds nothing.
	for _, other := range []HoldRequest{
		{Buyer: "b1", Zone: "vip", Quantity: 3, IdemKey: "k1"},
		{Buyer: "b1", Zone: "ga", Quantity: 2, IdemKey: "k1"},
		{Buyer: "b1", Zone: "vip", Quantity: 2, AcceptAlternative: true, IdemKey: "k1"},
		{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}, IdemKey: "k1"},
	} {
		requireCode(t, s.Hold(other), CodeIdemReused, "%+v", other)
	}
	requireEqual(t, s.ledger.count("b1"), 2)

	// The key belongs to one buyer and one endpoint.
	other := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Quantity: 2, IdemKey: "k1"})
	requireNotEqual(t, other.ID, first.ID)
	p := newFakePayer()
	requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: first.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}, p))

	// Duplicates that arrive together all wait for the one request.
	const dups = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	answers := make([]Result, dups)
	dreq := HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 3, IdemKey: "together"}
	for i := range dups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = s.Hold(dreq)
		}()
	}
	close(start)
	wg.Wait()
	one := requireHold(t, answers[0])
	for _, r := range answers {
		requireEqual(t, *requireHold(t, r), *one)
	}
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 17, Held: 3})
	requireEqual(t, s.Stats().HoldsPlaced, int64(3))

	// A paused sale's refusal is not stored: after the resume the same
	// key runs.
	requireNoError(t, resultErr(s.SetPaused(true)))
	preq := HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1, IdemKey: "p1"}
	requireCode(t, s.Hold(preq), CodeSalePaused)
	requireNoError(t, resultErr(s.SetPaused(false)))
	mustHold(t, s, preq)
}

// resultErr turns a Result's refusal into an error, for requireNoError.
func resultErr(r Result) error {
	if r.Err != nil {
		return r.Err
	}
	return nil
}

// sameRefusal compares two refusals as a client sees them: an empty list
// and an absent one read the same once encoded.
func sameRefusal(t testing.TB, got, want *Error, context ...any) {
	t.Helper()
	norm := func(e *Error) Error {
		c := *e
		if len(c.Alternatives) == 0 {
			c.Alternatives = nil
		}
		if len(c.Zones) == 0 {
			c.Zones = nil
		}
		return c
	}
	requireTrue(t, got != nil, "%sgot no refusal", contextPrefix(context))
	requireEqual(t, norm(got), norm(want), context...)
}

func TestEngineIdempotentRefusal(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	blocker := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}})

	taken := HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-2", "A-3"}, IdemKey: "t1"}
	first := requireCode(t, s.Hold(taken), CodeSeatsTaken)
	requireNoError(t, resultErr(h.e.ReleaseHold(blocker.ID, "b1", false)))
	// The seats are free now, and the stored answer still says taken.
	sameRefusal(t, requireCode(t, s.Hold(taken), CodeSeatsTaken), first)

	mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 6})
	over := HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1, IdemKey: "l1"}
	limit := requireCode(t, s.Hold(over), CodeLimitExceeded)

	check := func(when string) {
		t.Helper()
		sameRefusal(t, requireCode(t, s.Hold(taken), CodeSeatsTaken, when), first, when)
		sameRefusal(t, requireCode(t, s.Hold(over), CodeLimitExceeded, when), limit, when)
		other := taken
		other.Seats = []string{"A-3"}
		requireCode(t, s.Hold(other), CodeIdemReused, when)
		requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20}, when)
	}
	check("live")
	h.restart()
	s = h.sale("final")
	check("after a restart")

	requireNoError(t, h.e.Snapshot())
	requireTrue(t, h.e.log.FirstSeq() > 1, "the snapshot truncated the log (first record %d)", h.e.log.FirstSeq())
	mustHold(t, s, HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1})
	h.restart()
	s = h.sale("final")
	check("after a snapshot and a restart")
}

func TestEngineIdempotencyAcrossRestarts(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	hreq := HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3, IdemKey: "hk"}
	hv := mustHold(t, s, hreq)
	creq := CheckoutRequest{HoldID: hv.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "ck"}
	ov := requireOrder(t, h.e.Checkout(creq, p))
	hreq2 := HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2, IdemKey: "hk"}
	hv2 := mustHold(t, s, hreq2)
	dreq := CheckoutRequest{HoldID: hv2.ID, Buyer: "b2", PaymentToken: tokDecline, IdemKey: "dk"}
	decl := requireCode(t, h.e.Checkout(dreq, p), CodePaymentDecline)
	attempts := p.chargeAttempts()

	check := func(when string) {
		t.Helper()
		s := h.sale("final")
		// The first answers, though the hold is purchased by now.
		requireEqual(t, *mustHold(t, s, hreq), *hv, when)
		requireEqual(t, *mustHold(t, s, hreq2), *hv2, when)
		requireEqual(t, *requireOrder(t, h.e.Checkout(creq, p), when), *ov, when)
		sameRefusal(t, requireCode(t, h.e.Checkout(dreq, p), CodePaymentDecline, when), decl, when)
		requireEqual(t, p.chargeAttempts(), attempts, when)
		requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 4, IdemKey: "hk"}), CodeIdemReused, when)
		requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: hv.ID, Buyer: "b1", PaymentToken: "tok_other", IdemKey: "ck"}, p), CodeIdemReused, when)
		requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 18, Held: 2}, {ID: "vip", Free: 17, Sold: 3}}, when)
	}
	check("live")
	h.restart()
	check("after a restart")
	requireNoError(t, h.e.Snapshot())
	requireTrue(t, h.e.log.FirstSeq() > 1, "the snapshot truncated the log")
	h.restart()
	check("after a snapshot and a restart")
	// Still the same after writes that follow the snapshot.
	requireNoError(t, h.e.Snapshot())
	mustHold(t, h.sale("final"), HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1, IdemKey: "x"})
	h.restart()
	requireEqual(t, h.sale("final").Counts(), []ZoneCounts{{ID: "ga", Free: 17, Held: 3}, {ID: "vip", Free: 17, Sold: 3}})
}

func TestEngineHoldExpires(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	early := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 3})
	early2 := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3})
	h.clock.Advance(stdTTL / 2)
	late := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"B-1"}})
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1}), CodeLimitExceeded)

	h.clock.Advance(stdTTL/2 - time.Millisecond)
	requireEqual(t, requireHold(t, h.e.GetHold(early.ID, "", true)).State, "active", "one ms before its expiry")
	h.clock.Advance(time.Millisecond)
	waitFor(t, "expiry of the early holds", func() bool {
		return h.e.GetHold(early.ID, "", true).Hold.State == "expired" && h.e.GetHold(early2.ID, "", true).Hold.State == "expired"
	})
	// One tick released both zones' due holds, and only those.
	requireEqual(t, requireHold(t, h.e.GetHold(late.ID, "", true)).State, "active")
	requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 20}, {ID: "vip", Free: 19, Held: 1}})
	requireEqual(t, s.ledger.count("b1"), 0)
	requireEqual(t, s.Stats().HoldsExpired, int64(2))
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: early2.Seats})
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 3})

	h.clock.Advance(stdTTL / 2)
	waitFor(t, "expiry of the late hold", func() bool { return h.e.GetHold(late.ID, "b2", false).Hold.State == "expired" })
	requireEqual(t, s.ledger.count("b2"), 0)

	// The expiries are durable.
	h.restart()
	requireEqual(t, requireHold(t, h.e.GetHold(early.ID, "", true)).State, "expired")
	requireEqual(t, requireHold(t, h.e.GetHold(late.ID, "", true)).State, "expired")
}

func TestEngineHoldOverAtExpiry(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	read := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	release := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2})

	// At expires_at the hold is over, whether a tick has come by yet or
	// not: a read says expired and a release is refused, as a checkout is.
	h.clock.Advance(stdTTL)
	requireEqual(t, requireHold(t, h.e.GetHold(read.ID, "b1", false)).State, "expired")
	requireCode(t, h.e.ReleaseHold(release.ID, "b2", false), CodeHoldNotActive)
	requireEqual(t, requireHold(t, h.e.GetHold(release.ID, "", true)).State, "expired")
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})
	requireEqual(t, s.ledger.count("b1")+s.ledger.count("b2"), 0)
}

func TestEngineExpiryWhileClosed(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	due := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 4})
	h.clock.Advance(time.Minute)
	kept := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2})
	h.close()

	h.clock.Advance(stdTTL - time.Minute)
	h.open()
	// Expired by Open itself, before it returned: the first tick comes
	// 100 ms after it.
	s = h.sale("final")
	requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 18, Held: 2}, {ID: "vip", Free: 20}})
	requireEqual(t, s.ledger.count("b1"), 0)
	requireEqual(t, s.ledger.count("b2"), 2)
	requireEqual(t, requireHold(t, h.e.GetHold(due.ID, "b1", false)).State, "expired")
	requireEqual(t, requireHold(t, h.e.GetHold(kept.ID, "b2", false)).State, "active")

	// The expiry was written: it holds after another restart at the same time.
	h.restart()
	requireEqual(t, requireHold(t, h.e.GetHold(due.ID, "b1", false)).State, "expired")
	var expired int
	h.close()
	replayLog(t, h.dir, func(_ uint64, ev *wal.Event) {
		if ev.Type == wal.TypeHoldExpired {
			requireEqual(t, ev.Hold, due.ID)
			expired++
		}
	})
	requireEqual(t, expired, 1)
	h.open()
}

// engineState is what a restart must keep of a sale: counts, every hold and
// order, the buyers' allowances, the pause and the line.
type engineState struct {
	Counts  []ZoneCounts
	Holds   map[string]HoldView
	Orders  map[string]OrderView
	Ledger  map[string]int
	Paused  bool
	Tickets map[string]QueueTicket
}

func captureState(t testing.TB, h *harness, saleID string, holds, orders, queueIDs []string) engineState {
	t.Helper()
	s := h.sale(saleID)
	st := engineState{Counts: s.Counts(), Holds: map[string]HoldView{}, Orders: map[string]OrderView{},
		Ledger: map[string]int{}, Paused: s.Paused(), Tickets: map[string]QueueTicket{}}
	for _, id := range holds {
		v := requireHold(t, h.e.GetHold(id, "", true), "hold %s", id)
		st.Holds[id] = *v
		st.Ledger[v.Buyer] = s.ledger.count(v.Buyer)
	}
	for _, id := range orders {
		st.Orders[id] = *requireOrder(t, h.e.GetOrder(id), "order %s", id)
	}
	for _, q := range queueIDs {
		r := s.QueueStatus(q)
		requireTrue(t, r.Err == nil && r.Ticket != nil, "queue %s: %s", q, describe(r))
		tk := *r.Ticket
		// Position, ETA and polling advice come from measured rates,
		// which a restart measures afresh.
		tk.View = TicketView{State: tk.View.State, AccessExpires: tk.View.AccessExpires}
		st.Tickets[q] = tk
	}
	return st
}

func TestEngineRecovery(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	other := h.createSale(SaleDef{ID: "other", MaxPerBuyer: 4, Zones: []ZoneDef{{ID: "floor", Capacity: 10}}})
	p := newFakePayer()
	var holds, orders, queue []string
	hold := func(s *Sale, req HoldRequest) *HoldView {
		v := mustHold(t, s, req)
		holds = append(holds, v.ID)
		return v
	}
	buy := func(v *HoldView) *OrderView {
		o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: v.Buyer, PaymentToken: tokOK}, p))
		orders = append(orders, o.ID)
		return o
	}
	join := func(s *Sale, buyer string) {
		r := s.Join(buyer)
		requireTrue(t, r.Err == nil && r.Ticket != nil, "join: %s", describe(r))
		queue = append(queue, r.Ticket.QueueID)
	}

	active := hold(s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-5", "A-6"}})
	released := hold(s, HoldRequest{Buyer: "b2", Zone: "vip", Quantity: 3})
	requireNoError(t, resultErr(h.e.ReleaseHold(released.ID, "b2", false)))
	paid := buy(hold(s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 4}))
	cancelled := buy(hold(s, HoldRequest{Buyer: "b3", Zone: "vip", Quantity: 2}))
	requireOrder(t, h.e.CancelOrder(cancelled.ID, p))
	hold(other, HoldRequest{Buyer: "b1", Zone: "floor", Quantity: 4})
	join(s, "q1")
	join(s, "q2")
	join(other, "q1")
	requireNoError(t, resultErr(s.SetPaused(true)))

	before := captureState(t, h, "final", holds, orders, queue[:2])
	beforeOther := captureState(t, h, "other", holds[len(holds)-1:], nil, queue[2:])
	requireEqual(t, before.Counts, []ZoneCounts{{ID: "ga", Free: 16, Sold: 4}, {ID: "vip", Free: 18, Held: 2}})
	requireTrue(t, before.Paused, "paused")

	h.restart()
	requireEqual(t, captureState(t, h, "final", holds, orders, queue[:2]), before, "after a restart")
	requireEqual(t, captureState(t, h, "other", holds[len(holds)-1:], nil, queue[2:]), beforeOther)
	requireCode(t, h.sale("final").Hold(HoldRequest{Buyer: "b9", Zone: "ga", Quantity: 1}), CodeSalePaused, "still paused")
	requireEqual(t, h.sale("final").Queue().State, "paused")
	// The same buyer joining again keeps its place.
	requireEqual(t, h.sale("final").Join("q1").Ticket.QueueID, queue[0])

	// A snapshot, then more of everything, then a restart: the state is
	// the snapshot's plus the log after it.
	requireNoError(t, h.e.Snapshot())
	requireTrue(t, h.e.log.FirstSeq() > 1, "the snapshot truncated the log")
	s = h.sale("final")
	requireNoError(t, resultErr(s.SetPaused(false)))
	more := hold(s, HoldRequest{Buyer: "b4", Zone: "vip", Quantity: 4})
	requireNoError(t, resultErr(h.e.ReleaseHold(active.ID, "b1", false)))
	requireOrder(t, h.e.CancelOrder(paid.ID, p))
	buy(more)
	join(s, "q3")
	h.clock.Advance(time.Second)
	after := captureState(t, h, "final", holds, orders, append(queue[:2:2], queue[3:]...))
	requireFalse(t, after.Paused, "resumed")
	requireEqual(t, after.Counts, []ZoneCounts{{ID: "ga", Free: 20}, {ID: "vip", Free: 16, Sold: 4}})
	h.restart()
	requireEqual(t, captureState(t, h, "final", holds, orders, append(queue[:2:2], queue[3:]...)), after, "after a snapshot and a restart")
	requireEqual(t, captureState(t, h, "other", holds[len(holds)-2:len(holds)-1], nil, queue[2:3]), beforeOther)
	mustHold(t, h.sale("final"), HoldRequest{Buyer: "b9", Zone: "ga", Quantity: 1})
}

// replayLog calls fn for every record of the log of an engine that is
// closed, in log order.
func replayLog(t testing.TB, dir string, fn func(seq uint64, ev *wal.Event)) {
	t.Helper()
	lg, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal"), NoSync: true})
	requireNoError(t, err, "open log")
	err = lg.Replay(lg.FirstSeq(), func(seq uint64, ev *wal.Event) error {
		fn(seq, ev)
		return nil
	})
	requireNoError(t, err, "replay log")
	requireNoError(t, lg.Close(), "close log")
}

// logAudit replays an engine's whole log (the engine is closed, and the log
// was never truncated) and checks, in log order, that no seat is held or sold
// twice and that no buyer ever holds plus owns more than maxPerBuyer seats in
// a sale. It returns each buyer's final count per sale.
func logAudit(t testing.TB, dir string, maxPerBuyer map[string]int) map[string]map[string]int {
	t.Helper()
	type holdRec struct {
		sale, zone, buyer string
		seats             []uint32
		state             HoldState
		cancelled         bool
	}
	seats := map[string]map[uint32]SeatState{} // sale/zone -> seat -> state
	holds := map[string]*holdRec{}
	orders := map[string]*holdRec{}
	buyers := map[string]map[string]int{} // sale -> buyer -> held + bought
	fail := func(seq uint64, format string, args ...any) {
		t.Helper()
		t.Fatalf("log record %d: %s", seq, fmt.Sprintf(format, args...))
	}
	move := func(seq uint64, h *holdRec, from, to SeatState) {
		zs := seats[h.sale+"/"+h.zone]
		for _, x := range h.seats {
			if zs[x] != from {
				fail(seq, "seat %d of %s/%s is %s, want %s", x, h.sale, h.zone, zs[x], from)
			}
			zs[x] = to
		}
	}
	replayLog(t, dir, func(seq uint64, ev *wal.Event) {
		switch ev.Type {
		case wal.TypeSaleCreated:
			buyers[ev.Sale] = map[string]int{}
		case wal.TypeHoldPlaced:
			key := ev.Sale + "/" + ev.Zone
			if seats[key] == nil {
				seats[key] = map[uint32]SeatState{}
			}
			if holds[ev.Hold] != nil {
				fail(seq, "hold %s placed twice", ev.Hold)
			}
			h := &holdRec{sale: ev.Sale, zone: ev.Zone, buyer: ev.Buyer, seats: slices.Clone(ev.Seats), state: HoldActive}
			holds[ev.Hold] = h
			move(seq, h, SeatFree, SeatHeld)
			buyers[ev.Sale][ev.Buyer] += len(h.seats)
			if n, limit := buyers[ev.Sale][ev.Buyer], maxPerBuyer[ev.Sale]; n > limit {
				fail(seq, "buyer %s holds and owns %d seats in sale %s, over %d", ev.Buyer, n, ev.Sale, limit)
			}
		case wal.TypeHoldReleased, wal.TypeHoldExpired:
			h := holds[ev.Hold]
			if h == nil || h.state != HoldActive {
				fail(seq, "%s of hold %s that is not active", ev.Type, ev.Hold)
			}
			h.state = HoldReleased
			move(seq, h, SeatHeld, SeatFree)
			buyers[h.sale][h.buyer] -= len(h.seats)
		case wal.TypeOrderPaid:
			h := holds[ev.Hold]
			if h == nil || h.state != HoldActive {
				fail(seq, "order %s of hold %s that is not active", ev.Order, ev.Hold)
			}
			if orders[ev.Order] != nil {
				fail(seq, "order %s paid twice", ev.Order)
			}
			h.state = HoldPurchased
			orders[ev.Order] = h
			move(seq, h, SeatHeld, SeatSold)
		case wal.TypeOrderCancelled:
			h := orders[ev.Order]
			if h == nil || h.cancelled {
				fail(seq, "cancel of order %s that is not paid", ev.Order)
			}
			h.cancelled = true
			move(seq, h, SeatSold, SeatFree)
			buyers[h.sale][h.buyer] -= len(h.seats)
		}
	})
	return buyers
}

func TestEngineMaxPerBuyerConcurrent(t *testing.T) {
	const (
		zones       = 4
		maxPerBuyer = 10
		buyers      = 3
	)
	h := newHarness(t)
	def := SaleDef{ID: "limits", MaxPerBuyer: maxPerBuyer}
	for i := range zones {
		def.Zones = append(def.Zones, ZoneDef{ID: fmt.Sprintf("z%d", i), Capacity: 1000, PriceCents: 100})
	}
	s := h.createSale(def)
	p := newFakePayer()
	buyer := func(i int) string { return fmt.Sprintf("b%d", i%buyers) }

	// Phase 1: a burst of holds in every zone at once, nothing given back:
	// what the answers granted is what each buyer holds, and it is within
	// the limit.
	const burst = 48
	answers := make([]Result, burst)
	asked := make([]int, burst)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range burst {
		asked[i] = 1 + (i/buyers)%3
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = s.Hold(HoldRequest{Buyer: buyer(i), Zone: fmt.Sprintf("z%d", (i/buyers)%zones), Quantity: asked[i]})
		}()
	}
	close(start)
	wg.Wait()
	granted := map[string]int{}
	for i, r := range answers {
		if r.Err == nil {
			granted[buyer(i)] += len(requireHold(t, r).Seats)
			continue
		}
		e := requireCode(t, r, CodeLimitExceeded)
		requireTrue(t, e.Remaining != nil && *e.Remaining >= 0 && *e.Remaining < asked[i], "remaining %v for %d", e.Remaining, asked[i])
	}
	for i := range buyers {
		b := buyer(i)
		requireTrue(t, granted[b] <= maxPerBuyer, "buyer %s granted %d", b, granted[b])
		requireTrue(t, granted[b] > maxPerBuyer-3, "buyer %s granted only %d of %d asked", b, granted[b], maxPerBuyer)
		requireEqual(t, s.ledger.count(b), granted[b], "ledger of %s", b)
	}

	// Giving everything back brings every allowance back to zero.
	for _, r := range answers {
		if r.Err == nil {
			requireNoError(t, resultErr(h.e.ReleaseHold(r.Hold.ID, r.Hold.Buyer, false)))
		}
	}
	for i := range buyers {
		requireEqual(t, s.ledger.count(buyer(i)), 0, "ledger of %s after the releases", buyer(i))
	}

	// Phase 2: holds, releases, checkouts and cancels in every zone from
	// many goroutines; the log is audited afterwards.
	const (
		workers = 24
		steps   = 150
	)
	seed := testSeed(t)
	var holds, limits, releases, buys, cancels atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			b := buyer(w)
			var mine []*HoldView
			var orders []string
			for range steps {
				k := rng.IntN(20)
				switch {
				case k >= 17 && len(orders) == 0, k >= 9 && k < 17 && len(mine) == 0:
					k = 0 // nothing of that kind to act on: hold instead
				}
				switch {
				case k < 9:
					r := s.Hold(HoldRequest{Buyer: b, Zone: fmt.Sprintf("z%d", rng.IntN(zones)), Quantity: 1 + rng.IntN(3)})
					switch {
					case r.Err == nil:
						mine = append(mine, r.Hold)
						holds.Add(1)
					case r.Err.Code == CodeLimitExceeded:
						limits.Add(1)
					default:
						t.Errorf("hold: %s", describe(r))
						return
					}
				case k < 14:
					i := rng.IntN(len(mine))
					if r := h.e.ReleaseHold(mine[i].ID, b, false); r.Err != nil {
						t.Errorf("release: %s", describe(r))
						return
					}
					mine = slices.Delete(mine, i, i+1)
					releases.Add(1)
				case k < 17:
					i := rng.IntN(len(mine))
					r := h.e.Checkout(CheckoutRequest{HoldID: mine[i].ID, Buyer: b, PaymentToken: tokOK}, p)
					if r.Err != nil {
						t.Errorf("checkout: %s", describe(r))
						return
					}
					mine = slices.Delete(mine, i, i+1)
					orders = append(orders, r.Order.ID)
					buys.Add(1)
				default:
					i := rng.IntN(len(orders))
					if r := h.e.CancelOrder(orders[i], p); r.Err != nil {
						t.Errorf("cancel: %s", describe(r))
						return
					}
					orders = slices.Delete(orders, i, i+1)
					cancels.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d holds, %d refused over the limit, %d releases, %d checkouts, %d cancels",
		holds.Load(), limits.Load(), releases.Load(), buys.Load(), cancels.Load())
	requireTrue(t, limits.Load() > 0 && releases.Load() > 0 && buys.Load() > 0 && cancels.Load() > 0, "every kind of request ran")
	final := map[string]int{}
	for i := range buyers {
		b := buyer(i)
		final[b] = s.ledger.count(b)
		requireTrue(t, final[b] <= maxPerBuyer, "buyer %s counts %d", b, final[b])
	}
	h.close()
	got := logAudit(t, h.dir, map[string]int{"limits": maxPerBuyer})
	for b, n := range final {
		requireEqual(t, got["limits"][b], n, "buyer %s: the log's count and the ledger's", b)
	}
	h.open()
	for b, n := range final {
		requireEqual(t, h.sale("limits").ledger.count(b), n, "buyer %s after recovery", b)
	}
}
