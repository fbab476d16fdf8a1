package seats

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"onsale/wal"
)

// A trivial model of a zone: a state per seat and a record per hold, with
// best available written out the slow, obvious way. TestZoneModel drives a
// Zone and the model with the same random operations and compares them
// after every step.

type modelHold struct {
	id        string
	seats     []uint32
	state     HoldState
	expires   int64
	order     string
	cancelled bool
}

type zoneModel struct {
	rows   []int // row lengths; nil for general admission
	seats  []SeatState
	holds  map[string]*modelHold
	ids    []string // hold ids in the order placed
	orders []string
}

func newZoneModel(def ZoneDef) *zoneModel {
	m := &zoneModel{holds: map[string]*modelHold{}}
	size := def.Capacity
	if len(def.Rows) > 0 {
		size = 0
		for _, r := range def.Rows {
			m.rows = append(m.rows, r.Seats)
			size += r.Seats
		}
	}
	m.seats = make([]SeatState, size)
	return m
}

func (m *zoneModel) counts() (free, held, sold int) {
	for _, s := range m.seats {
		switch s {
		case SeatFree:
			free++
		case SeatHeld:
			held++
		case SeatSold:
			sold++
		}
	}
	return free, held, sold
}

// pick is best available as the rules say it, on a copy of the seat states
// in which taken and set-aside seats are anything but SeatFree.
func modelPick(rows []int, seats []SeatState, n int) ([]uint32, bool) {
	free := 0
	for _, s := range seats {
		if s == SeatFree {
			free++
		}
	}
	if n < 1 || n > HoldSeatsMax || n > free {
		return nil, false
	}
	run := func(start int) []uint32 {
		out := make([]uint32, n)
		for i := range out {
			out[i] = uint32(start + i)
		}
		return out
	}
	single := -1
	base := 0
	for _, length := range rows {
		for i := 0; i < length; {
			if seats[base+i] != SeatFree {
				i++
				continue
			}
			j := i
			for j < length && seats[base+j] == SeatFree {
				j++
			}
			switch l := j - i; {
			case l == n || l >= n+2:
				return run(base + i), true
			case l == n+1 && single < 0:
				single = base + i
			}
			i = j
		}
		base += length
	}
	if single >= 0 {
		return run(single), true
	}
	var out []uint32
	for i, s := range seats {
		if s == SeatFree && len(out) < n {
			out = append(out, uint32(i))
		}
	}
	return out, true
}

func modelAlternatives(rows []int, seats []SeatState, n, max int, avoid []uint32) [][]uint32 {
	work := slices.Clone(seats)
	for _, s := range avoid {
		if int(s) < len(work) && work[s] == SeatFree {
			work[s] = seatBlocked
		}
	}
	out := [][]uint32{}
	for len(out) < min(max, zoneAltSetsMax) {
		set, ok := modelPick(rows, work, n)
		if !ok {
			break
		}
		out = append(out, set)
		for _, s := range set {
			work[s] = seatBlocked
		}
	}
	return out
}

// due is what TakeDue must return: active holds with expires <= now, by
// (expires, id), at most max.
func (m *zoneModel) due(now int64, max int) []string {
	var hs []*modelHold
	for _, h := range m.holds {
		if h.state == HoldActive && h.expires <= now {
			hs = append(hs, h)
		}
	}
	slices.SortFunc(hs, func(a, b *modelHold) int {
		return cmp.Or(cmp.Compare(a.expires, b.expires), strings.Compare(a.id, b.id))
	})
	var out []string
	for _, h := range hs {
		if len(out) < max {
			out = append(out, h.id)
		}
	}
	return out
}

func (m *zoneModel) setSeats(seats []uint32, st SeatState) {
	for _, s := range seats {
		m.seats[s] = st
	}
}

func TestZoneModel(t *testing.T) {
	rng := testRand(t)
	zones, steps := 24, 600
	if testing.Short() {
		zones = 10
	}
	for zi := range zones {
		var def ZoneDef
		maxN := 8
		switch k := rng.IntN(10); {
		case k < 5:
			rows := make([]int, 1+rng.IntN(6))
			for i := range rows {
				rows[i] = 1 + rng.IntN(14)
			}
			def = reservedDef(rows...)
		case k < 6:
			rows := make([]int, 1+rng.IntN(40))
			for i := range rows {
				rows[i] = 1 + rng.IntN(120)
			}
			def, maxN = reservedDef(rows...), HoldSeatsMax
		case k < 9:
			def = gaDef(1 + rng.IntN(60))
		default:
			def, maxN = gaDef(1500+rng.IntN(2000)), HoldSeatsMax
		}
		t.Run(fmt.Sprintf("zone%d", zi), func(t *testing.T) {
			runZoneModel(t, rng, def, maxN, steps)
		})
	}
}

func runZoneModel(t *testing.T, rng *rand.Rand, def ZoneDef, maxN, steps int) {
	z := NewZone(testSale, def)
	m := newZoneModel(def)
	now := int64(1_000_000)
	next := 0
	randomHold := func() string {
		if len(m.ids) == 0 || rng.IntN(20) == 0 {
			return "unknown"
		}
		return m.ids[rng.IntN(len(m.ids))]
	}
	// refused applies an event the model says must be refused, and checks
	// that nothing changed.
	refused := func(step int, ev *wal.Event) {
		t.Helper()
		before := z.AppendSnapshot(nil)
		err := z.Apply(ev)
		requireError(t, err, "step %d: %s %q should be refused", step, ev.Type, ev.Hold)
		requireEqual(t, z.AppendSnapshot(nil), before, "step %d: refused %s changed the zone", step, ev.Type)
	}
	place := func(step int, seats []uint32) {
		t.Helper()
		next++
		id := fmt.Sprintf("h%04d", next)
		if len(m.ids) > 0 && rng.IntN(20) == 0 {
			id = m.ids[rng.IntN(len(m.ids))] // reused id: refused
		}
		ev := placedEvent(z, id, seats, now, int64(1000+rng.IntN(30_000)))
		allFree := true
		for _, s := range seats {
			allFree = allFree && m.seats[s] == SeatFree
		}
		requireEqual(t, z.AllFree(seats), allFree, "step %d: AllFree", step)
		_, dup := duplicateSeat(seats)
		if !allFree || dup || m.holds[id] != nil {
			refused(step, ev)
			return
		}
		requireNoError(t, z.Apply(ev), "step %d", step)
		m.holds[id] = &modelHold{id: id, seats: slices.Clone(seats), state: HoldActive, expires: ev.Expires}
		m.ids = append(m.ids, id)
		m.setSeats(seats, SeatHeld)
	}

	for step := range steps {
		now += int64(rng.IntN(3000))
		switch op := rng.IntN(100); {
		case op < 30: // best available, then hold it
			n := 1 + rng.IntN(maxN)
			got, ok := z.Pick(n)
			want, wantOK := modelPick(m.rows, m.seats, n)
			requireEqual(t, ok, wantOK, "step %d: Pick(%d) ok", step, n)
			requireEqual(t, got, want, "step %d: Pick(%d)", step, n)
			if ok {
				place(step, got)
			}
		case op < 40: // named seats, maybe taken
			seats := make([]uint32, 1+rng.IntN(4))
			for i := range seats {
				seats[i] = uint32(rng.IntN(len(m.seats)))
			}
			place(step, seats)
		case op < 52:
			id := randomHold()
			ev := &wal.Event{Type: wal.TypeHoldReleased, Hold: id, At: now}
			h := m.holds[id]
			if h == nil || h.state != HoldActive {
				refused(step, ev)
				break
			}
			requireNoError(t, z.Apply(ev), "step %d", step)
			h.state = HoldReleased
			m.setSeats(h.seats, SeatFree)
		case op < 62: // the tick
			max := 1 + rng.IntN(4)
			due := z.TakeDue(now, max)
			requireEqual(t, due, m.due(now, max), "step %d: TakeDue", step)
			for _, id := range due {
				requireNoError(t, z.Apply(&wal.Event{Type: wal.TypeHoldExpired, Hold: id, At: now}), "step %d", step)
				m.holds[id].state = HoldExpired
				m.setSeats(m.holds[id].seats, SeatFree)
			}
		case op < 66: // an expiry straight from the log (replay)
			id := randomHold()
			ev := &wal.Event{Type: wal.TypeHoldExpired, Hold: id, At: now}
			h := m.holds[id]
			if h == nil || h.state != HoldActive || now < h.expires {
				refused(step, ev)
				break
			}
			requireNoError(t, z.Apply(ev), "step %d", step)
			h.state = HoldExpired
			m.setSeats(h.seats, SeatFree)
		case op < 78:
			id := randomHold()
			next++
			order := fmt.Sprintf("o%04d", next)
			if len(m.orders) > 0 && rng.IntN(10) == 0 {
				order = m.orders[rng.IntN(len(m.orders))]
			}
			ev := &wal.Event{Type: wal.TypeOrderPaid, Hold: id, Order: order, At: now}
			h := m.holds[id]
			if h == nil || h.state != HoldActive || slices.Contains(m.orders, order) {
				refused(step, ev)
				break
			}
			requireNoError(t, z.Apply(ev), "step %d", step)
			h.state, h.order = HoldPurchased, order
			m.orders = append(m.orders, order)
			m.setSeats(h.seats, SeatSold)
		case op < 86:
			order := "unknown"
			if len(m.orders) > 0 && rng.IntN(10) != 0 {
				order = m.orders[rng.IntN(len(m.orders))]
			}
			ev := &wal.Event{Type: wal.TypeOrderCancelled, Order: order, At: now}
			var h *modelHold
			for _, mh := range m.holds {
				if mh.order == order {
					h = mh
				}
			}
			if h == nil || h.cancelled {
				refused(step, ev)
				break
			}
			requireNoError(t, z.Apply(ev), "step %d", step)
			h.cancelled = true
			m.setSeats(h.seats, SeatFree)
		case op < 94:
			n, max := 1+rng.IntN(maxN), rng.IntN(5)
			avoid := make([]uint32, rng.IntN(4))
			for i := range avoid {
				avoid[i] = uint32(rng.IntN(len(m.seats) + 2))
			}
			got := z.Alternatives(n, max, avoid)
			requireEqual(t, got, modelAlternatives(m.rows, m.seats, n, max, avoid), "step %d: Alternatives(%d, %d, %v)", step, n, max, avoid)
		case op < 97:
			z = snapshotZone(t, z)
		default:
			got, ok := z.NextExpiry()
			want, wantOK := int64(0), false
			for _, h := range m.holds {
				if h.state == HoldActive && (!wantOK || h.expires < want) {
					want, wantOK = h.expires, true
				}
			}
			requireEqual(t, ok, wantOK, "step %d: NextExpiry ok", step)
			requireEqual(t, got, want, "step %d: NextExpiry", step)
		}

		requireNoError(t, checkZone(z), "step %d", step)
		free, held, sold := z.Counts()
		f, h, s := m.counts()
		requireEqual(t, []int{free, held, sold}, []int{f, h, s}, "step %d: counts", step)
		requireEqual(t, free+held+sold, z.Size())
		for i, st := range m.seats {
			if z.SeatState(uint32(i)) != st {
				t.Fatalf("step %d: seat %s is %s, model says %s", step, z.SeatName(uint32(i)), z.SeatState(uint32(i)), st)
			}
		}
		for id, mh := range m.holds {
			zh := z.Hold(id)
			requireEqual(t, zh.State, mh.state, "step %d: hold %s", step, id)
			requireEqual(t, zh.OrderCancelled, mh.cancelled, "step %d: hold %s", step, id)
			if mh.order != "" {
				requireTrue(t, z.Order(mh.order) == zh, "step %d: order %s", step, mh.order)
			}
		}
	}
}
