package actors

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/actors/seats"
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
	seen     []Payment          // every charge and refund asked for, in order
	onCharge func(orderID string)
	// refundDown fails every refund, as a gateway that is down.
	refundDown bool
	voided     map[string]bool // order ids whose charge key Void closed
	// unconfirmed refuses charges as a cluster node that cannot confirm
	// it leads does, before calling the provider (a void still goes
	// through).
	unconfirmed bool
}

func newFakePayer() *fakePayer {
	return &fakePayer{charges: map[string]int64{}, refunds: map[string][]int64{}}
}

func (p *fakePayer) Charge(pay Payment) *Error {
	orderID, amount, token := pay.OrderID, pay.AmountCents, pay.Token
	p.mu.Lock()
	p.attempts++
	p.seen = append(p.seen, pay)
	hook, down, unconfirmed := p.onCharge, p.down, p.unconfirmed
	p.mu.Unlock()
	if unconfirmed {
		return errorf(CodeUnavailable, "nothing was charged: this node could not confirm it leads")
	}
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
	if p.voided[orderID] {
		return KeyClosed("the charge key was closed: the attempt was settled as unpaid")
	}
	if _, ok := p.charges[orderID]; ok {
		panic("fakePayer: order " + orderID + " charged twice")
	}
	p.charges[orderID] = amount
	return nil
}

func (p *fakePayer) Lookup(pay Payment) (ChargeState, *Error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch _, charged := p.charges[pay.OrderID]; {
	case len(p.refunds[pay.OrderID]) > 0:
		return ChargeRefunded, nil
	case charged:
		return ChargePaid, nil
	}
	return ChargeNone, nil
}

func (p *fakePayer) Void(pay Payment) (ChargeState, *Error) {
	st, err := p.Lookup(pay)
	if err != nil || st != ChargeNone {
		return st, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return ChargeUnknown, errorf(CodePaymentDown, "the payment gateway did not answer")
	}
	if p.voided == nil {
		p.voided = map[string]bool{}
	}
	p.voided[pay.OrderID] = true
	return ChargeNone, nil
}

// wasVoidedAny reports whether Void closed any charge key.
func (p *fakePayer) wasVoidedAny() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.voided) > 0
}

func (p *fakePayer) Refund(pay Payment) *Error {
	orderID, amount := pay.OrderID, pay.AmountCents
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen = append(p.seen, pay)
	if p.refundDown {
		return errorf(CodePaymentDown, "the payment gateway did not answer")
	}
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

func (p *fakePayer) payments() []Payment {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
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
	// payer finishes open payments at open (Config.Payer); atStep is
	// Config.AtStep. Both nil unless a test sets them.
	payer  Payer
	atStep func(step string)
	logFS  wal.FS // the log's file layer; nil: the real one
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
	e, err := Open(Config{Dir: h.dir, NoSync: !h.sync, Now: h.clock.Now, Payer: h.payer, AtStep: h.atStep, LogFS: h.logFS})
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

// resultErr turns a Result's refusal into an error, for requireNoError.
func resultErr(r Result) error {
	if r.Err != nil {
		return r.Err
	}
	return nil
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
		state             seats.HoldState
		cancelled         bool
	}
	seatMap := map[string]map[uint32]seats.SeatState{} // sale/zone -> seat -> state
	holds := map[string]*holdRec{}
	orders := map[string]*holdRec{}
	buyers := map[string]map[string]int{} // sale -> buyer -> held + bought
	fail := func(seq uint64, format string, args ...any) {
		t.Helper()
		t.Fatalf("log record %d: %s", seq, fmt.Sprintf(format, args...))
	}
	move := func(seq uint64, h *holdRec, from, to seats.SeatState) {
		zs := seatMap[h.sale+"/"+h.zone]
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
			if seatMap[key] == nil {
				seatMap[key] = map[uint32]seats.SeatState{}
			}
			if holds[ev.Hold] != nil {
				fail(seq, "hold %s placed twice", ev.Hold)
			}
			h := &holdRec{sale: ev.Sale, zone: ev.Zone, buyer: ev.Buyer, seats: slices.Clone(ev.Seats), state: seats.HoldActive}
			holds[ev.Hold] = h
			move(seq, h, seats.SeatFree, seats.SeatHeld)
			buyers[ev.Sale][ev.Buyer] += len(h.seats)
			if n, limit := buyers[ev.Sale][ev.Buyer], maxPerBuyer[ev.Sale]; n > limit {
				fail(seq, "buyer %s holds and owns %d seats in sale %s, over %d", ev.Buyer, n, ev.Sale, limit)
			}
		case wal.TypeHoldReleased, wal.TypeHoldExpired:
			h := holds[ev.Hold]
			if h == nil || h.state != seats.HoldActive {
				fail(seq, "%s of hold %s that is not active", ev.Type, ev.Hold)
			}
			h.state = seats.HoldReleased
			move(seq, h, seats.SeatHeld, seats.SeatFree)
			buyers[h.sale][h.buyer] -= len(h.seats)
		case wal.TypeOrderPaid:
			h := holds[ev.Hold]
			if h == nil || h.state != seats.HoldActive {
				fail(seq, "order %s of hold %s that is not active", ev.Order, ev.Hold)
			}
			if orders[ev.Order] != nil {
				fail(seq, "order %s paid twice", ev.Order)
			}
			h.state = seats.HoldPurchased
			orders[ev.Order] = h
			move(seq, h, seats.SeatHeld, seats.SeatSold)
		case wal.TypeOrderCancelled:
			h := orders[ev.Order]
			if h == nil || h.cancelled {
				fail(seq, "cancel of order %s that is not paid", ev.Order)
			}
			h.cancelled = true
			move(seq, h, seats.SeatSold, seats.SeatFree)
			buyers[h.sale][h.buyer] -= len(h.seats)
		}
	})
	return buyers
}
