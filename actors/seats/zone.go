package seats

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"onsale/wal"
)

// A Zone is the seat-and-hold state of one zone: which seats are free, held
// or sold, the holds and orders over them, and when each hold expires. It is
// a pure, deterministic state machine: no I/O, no clock (times are Unix ms
// passed in), no goroutines, no locks. The zone actor owns it; nothing else
// may touch it.
//
// Apply is its only mutator and runs the same way live and in recovery
// replay, so a zone rebuilt from the log equals the zone that wrote the log.
//
// Invariants (checked by the tests after every step):
//   - free+held+sold == Size();
//   - a seat is held by exactly one active hold, or sold to exactly one
//     purchased, not cancelled hold, or free;
//   - segFree[s] is the number of free seats in segment s, and no segment
//     before segCursor has a free seat;
//   - a fresh row summary (runs) describes the row's free runs exactly.

// Limits of a zone. The exported ones are the API's (API.md, "Sales" and
// "Holds") and are said once, here: SaleDef.Normalize (package actors)
// checks a zone's layout against them and the HTTP edge a hold's size, and
// the core asserts them.
const (
	// RowsMax: a reserved zone has up to 1,000 rows.
	RowsMax = 1000
	// RowSeatsMax: a row has up to 1,000 seats.
	RowSeatsMax = 1000
	// GACapacityMax: a general-admission zone has 1..1,000,000 seats.
	GACapacityMax = 1_000_000
	// zoneRowNameBytesMax: row names match ^[A-Za-z0-9]{1,8}$.
	zoneRowNameBytesMax = 8
	// HoldSeatsMax: a hold asks for 1..100 seats (quantity, or seats
	// named) and max_per_buyer is at most 100, so no hold is larger; it
	// also bounds Pick's work per request.
	HoldSeatsMax = 100
	// zoneHoldsMax bounds the hold records one zone keeps: active holds,
	// orders, and released or expired holds not dropped yet (see
	// zone_retention.go). At about 375 bytes each (TestZoneMemory1M) that is
	// 1.6 GB. Ended holds leave after the retention, so it bounds what is
	// live, not what was ever made; past it DecideHold refuses new holds
	// (see HoldsFull) until drops make room.
	zoneHoldsMax = 1 << 22
	// zoneSnapHoldsMax is what a snapshot may claim before the decoder
	// refuses it: twice zoneHoldsMax, since replay drops on the records'
	// clock and the live zone on its ticks', so a recovered zone may keep
	// a little more than the live one decided to.
	zoneSnapHoldsMax = 2 * zoneHoldsMax
	// zoneListSlack: the placement-order list is compacted once dropped
	// holds are more than half of it plus this many; below it, compaction
	// costs more than the pointers it frees.
	zoneListSlack = 1024
	// zoneKeyBytesMax bounds ids, buyer ids and idempotency keys (ids are at
	// most 64 bytes, keys 128); 1 KiB matches the log's own bound.
	zoneKeyBytesMax = 1 << 10
	// zoneAltSetsMax caps the sets one Alternatives call computes, whatever
	// the caller asks: the API shows 3, and each set is a Pick.
	zoneAltSetsMax = 16
	// zoneGABlockShift: a general-admission zone counts free seats per block
	// of 1<<10 seats, so Pick skips full blocks instead of scanning bytes
	// (977 blocks for 1,000,000 seats).
	zoneGABlockShift = 10
	// zoneExpirySlack: the expiry heap is compacted once it holds more than
	// twice the active holds plus this many entries; below it, lazy
	// deletion costs less than rebuilding.
	zoneExpirySlack = 1024
)

// Errors of Apply and RestoreZone, wrapped with the hold, order or seat
// concerned; match them with errors.Is. The decide functions check a request
// before they make an event, so from Apply they mean a bug, or a log that
// does not belong to this zone.
var (
	ErrZoneEventType      = errors.New("zone: event type does not change a zone")
	ErrZoneMismatch       = errors.New("zone: event is for another zone")
	ErrZoneEventInvalid   = errors.New("zone: malformed event")
	ErrZoneHoldExists     = errors.New("zone: hold id already used")
	ErrZoneHoldUnknown    = errors.New("zone: unknown hold")
	ErrZoneHoldNotActive  = errors.New("zone: hold is not active")
	ErrZoneHoldNotDue     = errors.New("zone: hold is not due to expire")
	ErrZoneSeatRange      = errors.New("zone: seat index out of range")
	ErrZoneSeatTaken      = errors.New("zone: seat is not free")
	ErrZoneOrderExists    = errors.New("zone: order id already used")
	ErrZoneOrderUnknown   = errors.New("zone: unknown order")
	ErrZoneOrderCancelled = errors.New("zone: order already cancelled")
	ErrZonePaymentOpen    = errors.New("zone: a payment of the hold is open already")
	ErrZonePaymentUnknown = errors.New("zone: no such open payment")
	ErrZoneCancelOpen     = errors.New("zone: a cancel of the order is open already")
	ErrZoneLayout         = errors.New("zone: invalid layout")
	ErrZoneSnapshot       = errors.New("zone: bad snapshot")
)

// SeatState is what a seat is now. The values are the bytes of Zone.seats.
type SeatState uint8

const (
	SeatFree SeatState = iota
	SeatHeld
	SeatSold
	// seatBlocked marks a free seat that Alternatives has set aside for the
	// length of one call. Nothing outside that call ever sees it.
	seatBlocked
)

func (s SeatState) String() string {
	switch s {
	case SeatFree:
		return "free"
	case SeatHeld:
		return "held"
	case SeatSold:
		return "sold"
	}
	return "seat_state(" + strconv.Itoa(int(s)) + ")"
}

// HoldState is where a hold is in its life. The values are written in
// snapshots: never renumber one.
type HoldState uint8

const (
	HoldActive HoldState = iota + 1
	HoldReleased
	HoldExpired
	HoldPurchased
)

func (s HoldState) String() string {
	switch s {
	case HoldActive:
		return "active"
	case HoldReleased:
		return "released"
	case HoldExpired:
		return "expired"
	case HoldPurchased:
		return "purchased"
	}
	return "hold_state(" + strconv.Itoa(int(s)) + ")"
}

// Hold is one hold and, once purchased, its order. Owned by the zone: read
// it inside the zone actor only, and never change it; Apply does.
type Hold struct {
	ID, Buyer      string
	Seats          []uint32 // seat indexes in the zone, in the order of the event
	CreatedAt      int64    // unix ms
	ExpiresAt      int64
	Amount         int64 // cents = len(Seats) * zone price
	State          HoldState
	EndedAt        int64  // when released, expired or purchased
	OrderID        string // set when purchased
	PaidAt         int64
	OrderCancelled bool // the order was cancelled; State stays HoldPurchased (API.md)
	CancelledAt    int64
	IdemKey        string // idempotency key of the hold request ("" if none)
	IdemHash       uint64
	PayKey         string // idempotency key of the checkout ("" if none)
	PayHash        uint64

	// dropped is set when the zone drops the hold (zone_retention.go); it
	// stays in the list until the next compaction, skipped. parked is set
	// while the hold is due to be dropped but out of the ended heap because
	// a payment of it is open.
	dropped, parked bool
}

// Zone is the state of one zone; see the comment at the top of this file.
type Zone struct {
	sale     string // the sale's id, written in every record the zone makes
	def      ZoneDef
	reserved bool

	// seats holds one SeatState per seat index: one byte each, so a
	// 1,000,000-seat zone costs 1 MB and names are computed, never stored.
	seats            []uint8
	free, held, sold int
	// blocked counts seats set aside by a running Alternatives call; zero
	// between calls.
	blocked int

	// Segments are the rows of a reserved zone, or blocks of
	// 1<<zoneGABlockShift seats in a general-admission zone. Their free
	// counts let Pick skip what cannot help.
	segStart  []uint32 // seat index where each segment begins; one extra entry = Size()
	segFree   []int32  // free seats per segment
	segCursor int      // no segment before it has a free seat
	rowIndex  map[string]int
	// runs summarises the free runs of each row of a reserved zone (nil in
	// general admission), so Pick skips rows that cannot seat n together
	// without scanning them; see zone_pick.go.
	runs []rowRuns

	holds  map[string]*Hold // every hold kept, by id: active, purchased, and ended but not dropped
	orders map[string]*Hold // purchased holds by order id, cancelled ones included
	// list is every hold kept in the order placed, so snapshots and
	// ForEachHold are deterministic, plus listDropped dropped ones that the
	// next compaction removes.
	list        []*Hold
	listDropped int
	active      int // holds in state HoldActive
	// holdsMax is zoneHoldsMax; tests lower it.
	holdsMax int
	// holdsPeak is the most holds the map has had since it was last
	// rebuilt: compactList rebuilds it once it keeps a quarter of that.
	holdsPeak int
	// ended is a min-heap of the released and expired holds not dropped
	// yet, by (EndedAt, ID); see zone_retention.go.
	ended []*Hold

	// expiry is a min-heap of holds by (ExpiresAt, ID). Holds that ended
	// stay in it until they reach the top or a compaction (lazy deletion).
	expiry []*Hold

	// payments are the open payment attempts by hold id (at most one per
	// hold), and cancels the open cancels by order id -> start (ms): both
	// durable, changed by Apply only; see zone_payment.go.
	payments map[string]*Payment
	cancels  map[string]int64
}

// NewZone makes a zone of sale with every seat free. The caller has
// validated def; a def that CheckZoneLayout refuses is a bug and panics.
func NewZone(sale string, def ZoneDef) *Zone {
	if err := CheckZoneLayout(def); err != nil {
		panic("seats.NewZone: unvalidated definition: " + err.Error())
	}
	return newZone(sale, def)
}

func newZone(sale string, def ZoneDef) *Zone {
	def.Rows = slices.Clone(def.Rows) // the zone's copy; the caller's slice may change
	z := &Zone{
		sale:     sale,
		def:      def,
		reserved: len(def.Rows) > 0,
		holdsMax: zoneHoldsMax,
		holds:    make(map[string]*Hold),
		orders:   make(map[string]*Hold),
		payments: make(map[string]*Payment),
		cancels:  make(map[string]int64),
	}
	if z.reserved {
		z.rowIndex = make(map[string]int, len(def.Rows))
		z.segStart = make([]uint32, 0, len(def.Rows)+1)
		var n uint32
		for i, r := range def.Rows {
			z.rowIndex[r.Row] = i
			z.segStart = append(z.segStart, n)
			n += uint32(r.Seats)
		}
		z.segStart = append(z.segStart, n)
		z.runs = make([]rowRuns, len(def.Rows)) // all stale: computed on first visit
	} else {
		const block = 1 << zoneGABlockShift
		nseg := (def.Capacity + block - 1) / block
		z.segStart = make([]uint32, nseg+1)
		for i := range nseg {
			z.segStart[i] = uint32(i * block)
		}
		z.segStart[nseg] = uint32(def.Capacity)
	}
	nseg := len(z.segStart) - 1
	z.seats = make([]uint8, z.segStart[nseg])
	z.free = len(z.seats)
	z.segFree = make([]int32, nseg)
	for i := range nseg {
		z.segFree[i] = int32(z.segStart[i+1] - z.segStart[i])
	}
	return z
}

// Sale is the id of the zone's sale.
func (z *Zone) Sale() string { return z.sale }

// Def is the zone's definition. Read only.
func (z *Zone) Def() *ZoneDef { return &z.def }

// Size is the number of seats.
func (z *Zone) Size() int { return len(z.seats) }

// Reserved reports whether the zone has rows (named seats) rather than a
// general-admission capacity.
func (z *Zone) Reserved() bool { return z.reserved }

// Counts returns how many seats are free, held and sold. O(1).
func (z *Zone) Counts() (free, held, sold int) { return z.free, z.held, z.sold }

// ActiveHolds is the number of holds in state active.
func (z *Zone) ActiveHolds() int { return z.active }

// HoldsFull reports whether the zone keeps zoneHoldsMax hold records, so
// that DecideHold refuses another hold until ended ones are dropped.
func (z *Zone) HoldsFull() bool { return len(z.holds) >= z.holdsMax }

// SeatState is the state of seat i; i must be below Size().
func (z *Zone) SeatState(i uint32) SeatState { return SeatState(z.seats[i]) }

// AppendSeatStates appends the SeatState of seats [from, to), by index, to
// dst: a copy that a reader can render outside the zone's actor. The range
// must lie within Size().
func (z *Zone) AppendSeatStates(dst []byte, from, to uint32) []byte {
	if from > to || int(to) > len(z.seats) {
		panic(fmt.Sprintf("zone %q: seat range [%d, %d) outside 0..%d", z.def.ID, from, to, len(z.seats)))
	}
	return append(dst, z.seats[from:to]...)
}

// Hold returns the hold with that id, in any state; nil if unknown or
// dropped.
func (z *Zone) Hold(id string) *Hold { return z.holds[id] }

// Order returns the purchased hold carrying that order id, cancelled or not;
// nil if unknown.
func (z *Zone) Order(orderID string) *Hold { return z.orders[orderID] }

// ForEachHold calls fn for every hold kept, in any state, in the order they
// were placed: for rebuilding buyer ledgers and idempotency tables after
// recovery. fn must not change the hold.
func (z *Zone) ForEachHold(fn func(h *Hold)) {
	for _, h := range z.list {
		if !h.dropped {
			fn(h)
		}
	}
}

// Apply changes the zone by one event. It is the only mutator, used live and
// in replay. An event that does not fit the state returns an error wrapping
// one of the ErrZone* values and changes nothing: every check runs before
// the first write.
//
//   - HoldPlaced (Hold, Buyer, Seats, At, Expires, Amount, IdemKey,
//     IdemHash): a new hold id, 1..100 distinct free seats, Expires after At,
//     Amount = seats × price. The seats become held. Seats is copied.
//   - HoldReleased (Hold, At): an active hold is released; its seats are free.
//   - HoldExpired (Hold, At): an active hold whose ExpiresAt <= At expires;
//     its seats are free.
//   - OrderPaid (Hold, Order, At, Amount, IdemKey, IdemHash): an active hold
//     is purchased under a new order id; its seats are sold. Amount, if not
//     zero, must be the hold's. At is not compared with ExpiresAt: whether a
//     checkout was in time is the actor's decision, made when it starts.
//   - OrderCancelled (Order, At; Hold optional): a paid order is cancelled;
//     its seats are free and the hold keeps State purchased. It closes the
//     order's open cancel, if any.
//   - PaymentStarted (Hold, Order, Buyer, At, Amount, IdemKey, IdemHash): an
//     active hold with no open attempt opens one under an unused order id.
//     OrderPaid closes it (its Order must then be the attempt's).
//   - PaymentFailed, PaymentRefunded (Hold, Order, At): close the open
//     attempt of the hold under that order; the hold is as it was.
//   - CancelStarted (Order, At; Hold optional): a paid, not cancelled order
//     with no cancel open opens one.
//
// Zone, when set, must be this zone's id. Other event types are an error.
func (z *Zone) Apply(ev *wal.Event) error {
	if ev.Zone != "" && ev.Zone != z.def.ID {
		return fmt.Errorf("%w: %s event for zone %q applied to zone %q", ErrZoneMismatch, ev.Type, ev.Zone, z.def.ID)
	}
	switch ev.Type {
	case wal.TypeHoldPlaced:
		return z.applyPlaced(ev)
	case wal.TypeHoldReleased:
		return z.applyEnded(ev, HoldReleased)
	case wal.TypeHoldExpired:
		return z.applyEnded(ev, HoldExpired)
	case wal.TypeOrderPaid:
		return z.applyPaid(ev)
	case wal.TypeOrderCancelled:
		return z.applyCancelled(ev)
	case wal.TypePaymentStarted:
		return z.applyPaymentStarted(ev)
	case wal.TypePaymentFailed, wal.TypePaymentRefunded:
		return z.applyPaymentEnded(ev)
	case wal.TypeCancelStarted:
		return z.applyCancelStarted(ev)
	}
	return fmt.Errorf("%w: %s", ErrZoneEventType, ev.Type)
}

// AppliedSeats is the seats whose state ev changed, for an event that Apply
// has just taken: those of the hold it placed, released, expired or paid
// for, or of the order it cancelled. Readers that keep what they made of
// some seats (the HTTP edge's seat-map pages) learn from it what went
// stale. The slice is the zone's own: read it, never change it. Nil for an
// event that Apply would refuse to name.
func (z *Zone) AppliedSeats(ev *wal.Event) []uint32 {
	var h *Hold
	switch ev.Type {
	case wal.TypeHoldPlaced, wal.TypeHoldReleased, wal.TypeHoldExpired, wal.TypeOrderPaid:
		h = z.holds[ev.Hold]
	case wal.TypeOrderCancelled:
		h = z.orders[ev.Order]
	}
	if h == nil {
		return nil
	}
	return h.Seats
}

func (z *Zone) applyPlaced(ev *wal.Event) error {
	n := len(ev.Seats)
	switch {
	case ev.Hold == "" || len(ev.Hold) > zoneKeyBytesMax:
		return fmt.Errorf("%w: hold_placed: hold id of %d bytes, want 1..%d", ErrZoneEventInvalid, len(ev.Hold), zoneKeyBytesMax)
	case ev.Buyer == "" || len(ev.Buyer) > zoneKeyBytesMax:
		return fmt.Errorf("%w: hold_placed %s: buyer id of %d bytes, want 1..%d", ErrZoneEventInvalid, ev.Hold, len(ev.Buyer), zoneKeyBytesMax)
	case len(ev.IdemKey) > zoneKeyBytesMax:
		return fmt.Errorf("%w: hold_placed %s: idempotency key of %d bytes, at most %d", ErrZoneEventInvalid, ev.Hold, len(ev.IdemKey), zoneKeyBytesMax)
	case n < 1 || n > HoldSeatsMax:
		return fmt.Errorf("%w: hold_placed %s: %d seats, want 1..%d", ErrZoneEventInvalid, ev.Hold, n, HoldSeatsMax)
	case ev.Expires <= ev.At:
		return fmt.Errorf("%w: hold_placed %s: expires at %d, not after %d", ErrZoneEventInvalid, ev.Hold, ev.Expires, ev.At)
	case ev.Amount != int64(n)*z.def.PriceCents:
		return fmt.Errorf("%w: hold_placed %s: amount %d, want %d seats × %d", ErrZoneEventInvalid, ev.Hold, ev.Amount, n, z.def.PriceCents)
	}
	if z.holds[ev.Hold] != nil {
		return fmt.Errorf("%w: hold_placed %s", ErrZoneHoldExists, ev.Hold)
	}
	for _, s := range ev.Seats {
		if int(s) >= len(z.seats) {
			return fmt.Errorf("%w: hold_placed %s: seat index %d, zone %q has %d seats", ErrZoneSeatRange, ev.Hold, s, z.def.ID, len(z.seats))
		}
		if st := SeatState(z.seats[s]); st != SeatFree {
			return fmt.Errorf("%w: hold_placed %s: seat %s is %s", ErrZoneSeatTaken, ev.Hold, z.SeatName(s), st)
		}
	}
	if d, ok := duplicateSeat(ev.Seats); ok {
		return fmt.Errorf("%w: hold_placed %s: seat %s named twice", ErrZoneEventInvalid, ev.Hold, z.SeatName(d))
	}

	h := &Hold{
		ID: ev.Hold, Buyer: ev.Buyer, Seats: slices.Clone(ev.Seats),
		CreatedAt: ev.At, ExpiresAt: ev.Expires, Amount: ev.Amount, State: HoldActive,
		IdemKey: ev.IdemKey, IdemHash: ev.IdemHash,
	}
	z.take(h.Seats, SeatHeld)
	z.held += n
	z.advanceCursor()
	z.holds[h.ID] = h
	z.holdsPeak = max(z.holdsPeak, len(z.holds))
	z.list = append(z.list, h)
	z.active++
	z.expiryPush(h)
	return nil
}

// applyEnded releases or expires an active hold.
func (z *Zone) applyEnded(ev *wal.Event, to HoldState) error {
	h := z.holds[ev.Hold]
	if h == nil {
		return fmt.Errorf("%w: %s %q", ErrZoneHoldUnknown, ev.Type, ev.Hold)
	}
	if h.State != HoldActive {
		return fmt.Errorf("%w: %s %s: hold is %s", ErrZoneHoldNotActive, ev.Type, h.ID, h.State)
	}
	if to == HoldExpired && ev.At < h.ExpiresAt {
		return fmt.Errorf("%w: %s %s at %d: expires at %d", ErrZoneHoldNotDue, ev.Type, h.ID, ev.At, h.ExpiresAt)
	}
	h.State, h.EndedAt = to, ev.At
	z.give(h.Seats, SeatHeld)
	z.held -= len(h.Seats)
	z.endedActive()
	z.endedPush(h)
	return nil
}

func (z *Zone) applyPaid(ev *wal.Event) error {
	h := z.holds[ev.Hold]
	if h == nil {
		return fmt.Errorf("%w: order_paid %q", ErrZoneHoldUnknown, ev.Hold)
	}
	switch {
	case h.State != HoldActive:
		return fmt.Errorf("%w: order_paid %s: hold is %s", ErrZoneHoldNotActive, h.ID, h.State)
	case ev.Order == "" || len(ev.Order) > zoneKeyBytesMax:
		return fmt.Errorf("%w: order_paid %s: order id of %d bytes, want 1..%d", ErrZoneEventInvalid, h.ID, len(ev.Order), zoneKeyBytesMax)
	case len(ev.IdemKey) > zoneKeyBytesMax:
		return fmt.Errorf("%w: order_paid %s: idempotency key of %d bytes, at most %d", ErrZoneEventInvalid, h.ID, len(ev.IdemKey), zoneKeyBytesMax)
	case ev.Amount != 0 && ev.Amount != h.Amount:
		return fmt.Errorf("%w: order_paid %s: amount %d, the hold's is %d", ErrZoneEventInvalid, h.ID, ev.Amount, h.Amount)
	case z.orders[ev.Order] != nil:
		return fmt.Errorf("%w: order_paid %s: order %s", ErrZoneOrderExists, h.ID, ev.Order)
	case z.payments[h.ID] != nil && z.payments[h.ID].Order != ev.Order:
		return fmt.Errorf("%w: order_paid %s: order %s, the open payment's is %s", ErrZoneEventInvalid, h.ID, ev.Order, z.payments[h.ID].Order)
	}
	delete(z.payments, h.ID)
	h.State, h.EndedAt = HoldPurchased, ev.At
	h.OrderID, h.PaidAt = ev.Order, ev.At
	h.PayKey, h.PayHash = ev.IdemKey, ev.IdemHash
	for _, s := range h.Seats {
		z.seats[s] = uint8(SeatSold)
	}
	z.held -= len(h.Seats)
	z.sold += len(h.Seats)
	z.orders[h.OrderID] = h
	z.endedActive()
	return nil
}

// paidOrder is the order ev names, if it is paid and not cancelled, and
// ev's hold (if it names one) is the order's.
func (z *Zone) paidOrder(ev *wal.Event) (*Hold, error) {
	h := z.orders[ev.Order]
	switch {
	case h == nil:
		return nil, fmt.Errorf("%w: %s %q", ErrZoneOrderUnknown, ev.Type, ev.Order)
	case ev.Hold != "" && ev.Hold != h.ID:
		return nil, fmt.Errorf("%w: %s %s names hold %q, the order's is %s", ErrZoneEventInvalid, ev.Type, ev.Order, ev.Hold, h.ID)
	case h.OrderCancelled:
		return nil, fmt.Errorf("%w: %s %s", ErrZoneOrderCancelled, ev.Type, ev.Order)
	}
	return h, nil
}

func (z *Zone) applyCancelled(ev *wal.Event) error {
	h, err := z.paidOrder(ev)
	if err != nil {
		return err
	}
	h.OrderCancelled, h.CancelledAt = true, ev.At
	delete(z.cancels, ev.Order)
	z.give(h.Seats, SeatSold)
	z.sold -= len(h.Seats)
	return nil
}

// take marks free seats as st and keeps the free counts; the caller adds
// to held or sold. It does not move the cursor: see advanceCursor.
func (z *Zone) take(seats []uint32, st SeatState) {
	for _, s := range seats {
		if z.seats[s] != uint8(SeatFree) {
			panic(fmt.Sprintf("zone %q: taking seat %s which is %s", z.def.ID, z.SeatName(s), SeatState(z.seats[s])))
		}
		z.seats[s] = uint8(st)
		g := z.seg(s)
		z.segFree[g]--
		z.staleRuns(g)
	}
	z.free -= len(seats)
}

// give frees seats that are in state from and keeps the free counts and the
// cursor; the caller subtracts from held or sold.
func (z *Zone) give(seats []uint32, from SeatState) {
	for _, s := range seats {
		if z.seats[s] != uint8(from) {
			panic(fmt.Sprintf("zone %q: freeing seat %s which is %s, want %s", z.def.ID, z.SeatName(s), SeatState(z.seats[s]), from))
		}
		z.seats[s] = uint8(SeatFree)
		g := z.seg(s)
		z.segFree[g]++
		z.staleRuns(g)
		if g < z.segCursor {
			z.segCursor = g
		}
	}
	z.free += len(seats)
}

// advanceCursor moves segCursor past segments with no free seat. It runs
// after seats are taken; each step passes a segment that filled up, so the
// cost is paid once per segment filled.
func (z *Zone) advanceCursor() {
	for z.segCursor < len(z.segFree) && z.segFree[z.segCursor] == 0 {
		z.segCursor++
	}
}

// endedActive is called when an active hold stops being active.
func (z *Zone) endedActive() {
	z.active--
	if len(z.expiry) > 2*z.active+zoneExpirySlack {
		z.compactExpiry()
	}
}

// duplicateSeat returns a seat that appears twice in seats. len(seats) is at
// most HoldSeatsMax; the copy lives on the stack.
func duplicateSeat(seats []uint32) (uint32, bool) {
	if len(seats) <= 8 {
		for i := range seats {
			for j := i + 1; j < len(seats); j++ {
				if seats[i] == seats[j] {
					return seats[i], true
				}
			}
		}
		return 0, false
	}
	var buf [HoldSeatsMax]uint32
	s := buf[:copy(buf[:], seats)]
	if len(s) != len(seats) {
		panic(fmt.Sprintf("duplicateSeat: %d seats, at most %d", len(seats), HoldSeatsMax))
	}
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return s[i], true
		}
	}
	return 0, false
}
