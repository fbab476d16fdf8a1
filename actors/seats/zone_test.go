package seats

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"onsale/wal"
)

const (
	testPrice = 2500   // cents per seat in every test zone
	testSale  = "sale" // the sale of every test zone
)

// rowName is the name of the i-th row of a test zone: A..Z, then R27, R28...
func rowName(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return fmt.Sprintf("R%d", i+1)
}

func reservedDef(rows ...int) ZoneDef {
	def := ZoneDef{ID: "vip", Name: "VIP", PriceCents: testPrice}
	for i, n := range rows {
		def.Rows = append(def.Rows, RowDef{Row: rowName(i), Seats: n})
	}
	return def
}

func gaDef(capacity int) ZoneDef {
	return ZoneDef{ID: "ga", Name: "General admission", PriceCents: testPrice, Capacity: capacity}
}

func placedEvent(z *Zone, id string, seats []uint32, at, ttl int64) *wal.Event {
	return &wal.Event{Type: wal.TypeHoldPlaced, Zone: z.Def().ID, Hold: id, Buyer: "buyer-" + id,
		Seats: seats, At: at, Expires: at + ttl, Amount: int64(len(seats)) * z.Def().PriceCents,
		IdemKey: "key-" + id, IdemHash: uint64(len(id))}
}

func mustApply(t testing.TB, z *Zone, ev *wal.Event) {
	t.Helper()
	requireNoError(t, z.Apply(ev), "apply %s %s", ev.Type, ev.Hold)
	requireNoError(t, checkZone(z), "after %s %s", ev.Type, ev.Hold)
}

// layoutZone builds a reserved zone from one string per row: '.' free,
// 'h' held, 'x' sold.
func layoutZone(t testing.TB, rows ...string) *Zone {
	t.Helper()
	lens := make([]int, len(rows))
	for i, r := range rows {
		lens[i] = len(r)
	}
	z := NewZone(testSale, reservedDef(lens...))
	n := 0
	for r, row := range rows {
		for _, c := range "hx" {
			var seats []uint32
			for i := 0; i < len(row); i++ {
				if rune(row[i]) == c {
					seats = append(seats, z.segStart[r]+uint32(i))
				}
			}
			if len(seats) == 0 {
				continue
			}
			n++
			id := fmt.Sprintf("setup-%d", n)
			mustApply(t, z, placedEvent(z, id, seats, 1, 1_000_000))
			if c == 'x' {
				mustApply(t, z, &wal.Event{Type: wal.TypeOrderPaid, Hold: id, Order: "order-" + id, At: 2})
			}
		}
	}
	return z
}

// namesOf renders seat indexes as public ids, for readable assertions.
func namesOf(z *Zone, seats []uint32) []string {
	out := make([]string, len(seats))
	for i, s := range seats {
		out[i] = z.SeatName(s)
	}
	return out
}

func indexesOf(t testing.TB, z *Zone, names ...string) []uint32 {
	t.Helper()
	out := make([]uint32, len(names))
	for i, n := range names {
		s, ok := z.SeatIndex(n)
		requireTrue(t, ok, "seat %q", n)
		out[i] = s
	}
	return out
}

// checkZone recomputes everything a zone keeps incrementally and compares.
func checkZone(z *Zone) error {
	var free, held, sold int
	for i, s := range z.seats {
		switch SeatState(s) {
		case SeatFree:
			free++
		case SeatHeld:
			held++
		case SeatSold:
			sold++
		default:
			return fmt.Errorf("seat %d has state byte %d", i, s)
		}
	}
	if free != z.free || held != z.held || sold != z.sold || z.blocked != 0 {
		return fmt.Errorf("counts %d/%d/%d (blocked %d), seats say %d/%d/%d", z.free, z.held, z.sold, z.blocked, free, held, sold)
	}
	if free+held+sold != z.Size() {
		return fmt.Errorf("free+held+sold = %d, size %d", free+held+sold, z.Size())
	}
	for g := range z.segFree {
		n := int32(bytes.Count(z.seats[z.segStart[g]:z.segStart[g+1]], []byte{0}))
		if n != z.segFree[g] {
			return fmt.Errorf("segment %d: free count %d, seats say %d", g, z.segFree[g], n)
		}
		if g < z.segCursor && n != 0 {
			return fmt.Errorf("segment %d has %d free seats but the cursor is at %d", g, n, z.segCursor)
		}
	}
	for r, sum := range z.runs {
		if !sum.fresh {
			continue
		}
		var exact rowRuns
		row := z.seats[z.segStart[r]:z.segStart[r+1]]
		for _, run := range strings.FieldsFunc(string(row), func(c rune) bool { return c != 0 }) {
			exact.add(len(run))
		}
		exact.fresh = true
		if exact != sum {
			return fmt.Errorf("row %s: run summary %+v, the row gives %+v", z.def.Rows[r].Row, sum, exact)
		}
	}
	want := make([]uint8, z.Size())
	active, orders := 0, 0
	if len(z.holds) != len(z.list)-z.listDropped {
		return fmt.Errorf("%d holds in the map, %d in the list less %d dropped", len(z.holds), len(z.list), z.listDropped)
	}
	if z.listDropped > len(z.list)/2+zoneListSlack {
		return fmt.Errorf("list of %d keeps %d dropped holds", len(z.list), z.listDropped)
	}
	endedKept := 0
	for _, h := range z.list {
		if h.dropped {
			if z.holds[h.ID] != nil {
				return fmt.Errorf("dropped hold %s still indexed", h.ID)
			}
			continue
		}
		if h.State == HoldReleased || h.State == HoldExpired {
			endedKept++
		}
		if z.holds[h.ID] != h {
			return fmt.Errorf("hold %s: list and map disagree", h.ID)
		}
		var st SeatState
		switch {
		case h.State == HoldActive:
			st = SeatHeld
			active++
		case h.State == HoldPurchased:
			orders++
			if z.orders[h.OrderID] != h {
				return fmt.Errorf("hold %s: order %s not indexed", h.ID, h.OrderID)
			}
			if !h.OrderCancelled {
				st = SeatSold
			}
		}
		if st == SeatFree {
			continue
		}
		for _, s := range h.Seats {
			if want[s] != 0 {
				return fmt.Errorf("seat %s is in two holds", z.SeatName(s))
			}
			want[s] = uint8(st)
		}
	}
	if !bytes.Equal(want, z.seats) {
		return fmt.Errorf("seat states do not follow from the holds")
	}
	if active != z.active || orders != len(z.orders) {
		return fmt.Errorf("active %d (kept %d), orders %d (kept %d)", active, z.active, orders, len(z.orders))
	}
	for i := 1; i < len(z.expiry); i++ {
		if expiryLess(z.expiry[i], z.expiry[(i-1)/2]) {
			return fmt.Errorf("expiry heap out of order at %d", i)
		}
	}
	if len(z.expiry) > 2*z.active+zoneExpirySlack {
		return fmt.Errorf("expiry heap has %d entries for %d active holds", len(z.expiry), z.active)
	}
	// Every ended hold kept is in the ended heap once, or parked by an
	// open payment.
	inHeap := make(map[*Hold]bool, len(z.ended))
	for i, h := range z.ended {
		if i > 0 && endedLess(h, z.ended[(i-1)/2]) {
			return fmt.Errorf("ended heap out of order at %d", i)
		}
		if inHeap[h] || h.dropped || h.parked || (h.State != HoldReleased && h.State != HoldExpired) {
			return fmt.Errorf("ended heap: hold %s is %s, dropped %v, parked %v, or twice", h.ID, h.State, h.dropped, h.parked)
		}
		inHeap[h] = true
	}
	for _, h := range z.holds {
		if h.parked && (inHeap[h] || z.payments[h.ID] == nil) {
			return fmt.Errorf("hold %s parked with no open payment, or in the heap too", h.ID)
		}
		if h.parked {
			endedKept--
		}
	}
	if endedKept != len(z.ended) {
		return fmt.Errorf("%d ended holds kept outside a payment, %d in the ended heap", endedKept, len(z.ended))
	}
	return nil
}

func TestZoneSeatNames(t *testing.T) {
	z := NewZone(testSale, reservedDef(20, 3, 1000))
	requireEqual(t, z.Size(), 1023)
	requireTrue(t, z.Reserved())
	for i := range uint32(z.Size()) {
		name := z.SeatName(i)
		back, ok := z.SeatIndex(name)
		requireTrue(t, ok, "SeatIndex(%q)", name)
		requireEqual(t, back, i, name)
	}
	requireEqual(t, z.SeatName(0), "A-1")
	requireEqual(t, z.SeatName(19), "A-20")
	requireEqual(t, z.SeatName(20), "B-1")
	requireEqual(t, z.SeatName(1022), "C-1000")
	requireEqual(t, z.SeatName(1023), "")
	for _, bad := range []string{"", "A", "A-", "A-0", "A-07", "A-21", "B-4", "D-1", "a-1", "-1", "1", "A-+1", "A--1", "A-1 ", "C-10000000", "A-1-1"} {
		_, ok := z.SeatIndex(bad)
		requireFalse(t, ok, "SeatIndex(%q)", bad)
	}

	g := NewZone(testSale, gaDef(1_000_000))
	requireFalse(t, g.Reserved())
	requireEqual(t, g.SeatName(0), "1")
	requireEqual(t, g.SeatName(999_999), "1000000")
	requireEqual(t, g.SeatName(1_000_000), "")
	for _, c := range []struct {
		name string
		idx  uint32
	}{{"1", 0}, {"17", 16}, {"1000000", 999_999}} {
		i, ok := g.SeatIndex(c.name)
		requireTrue(t, ok, c.name)
		requireEqual(t, i, c.idx, c.name)
	}
	for _, bad := range []string{"", "0", "01", "1000001", "A-1", "-1", "1e3", "99999999"} {
		_, ok := g.SeatIndex(bad)
		requireFalse(t, ok, "SeatIndex(%q)", bad)
	}
	requireEqual(t, HoldActive.String(), "active")
	requireEqual(t, HoldReleased.String(), "released")
	requireEqual(t, HoldExpired.String(), "expired")
	requireEqual(t, HoldPurchased.String(), "purchased")
	requireEqual(t, SeatSold.String(), "sold")
}

func TestCheckZoneLayout(t *testing.T) {
	f := func(def ZoneDef, ok bool) {
		t.Helper()
		err := CheckZoneLayout(def)
		requireEqual(t, err == nil, ok, "%+v: %v", def, err)
		if err != nil {
			requireErrorIs(t, err, ErrZoneLayout)
		}
	}
	f(gaDef(1), true)
	f(gaDef(GACapacityMax), true)
	f(gaDef(0), false)
	f(gaDef(GACapacityMax+1), false)
	f(reservedDef(1, RowSeatsMax), true)
	f(reservedDef(1, RowSeatsMax+1), false)
	f(reservedDef(0), false)
	f(reservedDef(make([]int, RowsMax+1)...), false)
	both := reservedDef(3)
	both.Capacity = 3
	f(both, false)
	dup := reservedDef(3, 3)
	dup.Rows[1].Row = "A"
	f(dup, false)
	dash := reservedDef(3)
	dash.Rows[0].Row = "A-1"
	f(dash, false)
	neg := gaDef(3)
	neg.PriceCents = -1
	f(neg, false)

	defer func() { requireTrue(t, recover() != nil, "NewZone of a bad definition must panic") }()
	NewZone(testSale, gaDef(0))
}

func TestZonePickReserved(t *testing.T) {
	f := func(name string, rows []string, n int, want ...string) {
		t.Run(name, func(t *testing.T) {
			z := layoutZone(t, rows...)
			before := z.AppendSnapshot(nil)
			got, ok := z.Pick(n)
			requireEqual(t, ok, len(want) > 0, "Pick(%d)", n)
			if ok {
				requireEqual(t, namesOf(z, got), want)
				requireTrue(t, z.AllFree(got))
			}
			requireEqual(t, z.AppendSnapshot(nil), before, "Pick changed the zone")
		})
	}
	f("empty zone: front row, from seat 1", []string{"..........", ".........."}, 2, "A-1", "A-2")
	f("after sold seats", []string{"xxx.......", ".........."}, 3, "A-4", "A-5", "A-6")
	f("held seats count as taken", []string{"hh........"}, 2, "A-3", "A-4")
	f("skips a run that would leave a single", []string{"x...xx...."}, 2, "A-7", "A-8")
	f("exact fit", []string{".x..x....."}, 2, "A-3", "A-4")
	f("exact fit at the row end", []string{"xxxxxxxx.."}, 2, "A-9", "A-10")
	f("front row first", []string{"xxxxxx....", ".........."}, 4, "A-7", "A-8", "A-9", "A-10")
	f("next row rather than a single", []string{"xxxxxxx...", ".........."}, 2, "B-1", "B-2")
	f("a row further back rather than a single", []string{"xxxxxxx...", "xxxxxxx...", "x........."}, 2, "C-2", "C-3")
	f("single only when unavoidable", []string{"xxxxxxx...", "xxxxxx...x"}, 2, "A-8", "A-9")
	f("single on one seat", []string{"x.."}, 1, "A-2")
	f("one seat, exact", []string{"x.x.."}, 1, "A-2")
	f("one seat into a run of three", []string{"x...x.."}, 1, "A-2")
	f("full rows skipped", []string{"xxxx", "hhhh", "...."}, 4, "C-1", "C-2", "C-3", "C-4")
	f("fallback: no row has the run", []string{".x.x.x.x.x", ".x.x.x.x.x"}, 3, "A-1", "A-3", "A-5")
	f("fallback across rows", []string{".xxxxxxxxx", "x.xxxxxxxx", "xxxxxxxxx."}, 3, "A-1", "B-2", "C-10")
	f("fallback: bigger than any row", []string{"....", "....", "...."}, 6, "A-1", "A-2", "A-3", "A-4", "B-1", "B-2")
	f("sold out", []string{"xx.x", "x.xx"}, 3)
	f("exactly the free seats", []string{"xx.x", "x.xx"}, 2, "A-3", "B-2")
	f("n = 0", []string{"...."}, 0)
	f("n over the limit", []string{strings.Repeat(".", 200)}, HoldSeatsMax+1)
	f("n at the limit", []string{strings.Repeat(".", 200)}, HoldSeatsMax, namesRange("A", 1, 100)...)
}

// namesRange is "row-from" .. "row-to".
func namesRange(row string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", row, i))
	}
	return out
}

func TestZonePickGA(t *testing.T) {
	const capacity = 3000 // three blocks of free counts
	z := NewZone(testSale, gaDef(capacity))
	got, ok := z.Pick(4)
	requireTrue(t, ok)
	requireEqual(t, got, []uint32{0, 1, 2, 3})

	// Fill past the first block in holds of 100, then free some seats
	// behind the cursor.
	at := int64(1000)
	for i := 0; i < 11; i++ {
		seats, ok := z.Pick(100)
		requireTrue(t, ok)
		mustApply(t, z, placedEvent(z, fmt.Sprintf("h%d", i), seats, at, 60_000))
	}
	got, _ = z.Pick(3)
	requireEqual(t, got, []uint32{1100, 1101, 1102})
	mustApply(t, z, &wal.Event{Type: wal.TypeHoldReleased, Hold: "h3", At: at})
	got, _ = z.Pick(2)
	requireEqual(t, got, []uint32{300, 301})
	got, _ = z.Pick(101)
	requireEqual(t, got, []uint32(nil))
	got, _ = z.Pick(100)
	requireEqual(t, got[0], uint32(300))
	requireEqual(t, got[99], uint32(399))
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderPaid, Hold: "h5", Order: "o5", At: at})
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderCancelled, Order: "o5", At: at})
	got, _ = z.Pick(100) // free run 300..399, then 500..599
	requireEqual(t, got[0], uint32(300))
	got, _ = z.Pick(HoldSeatsMax)
	requireEqual(t, len(got), HoldSeatsMax)

	// Sold out: take everything.
	for i := 0; ; i++ {
		seats, ok := z.Pick(100)
		if !ok {
			break
		}
		mustApply(t, z, placedEvent(z, fmt.Sprintf("fill%d", i), seats, at, 60_000))
	}
	free, _, _ := z.Counts()
	requireEqual(t, free, 0)
	_, ok = z.Pick(1)
	requireFalse(t, ok)
	requireEqual(t, z.segCursor, len(z.segFree))
	mustApply(t, z, &wal.Event{Type: wal.TypeHoldReleased, Hold: "h0", At: at})
	got, _ = z.Pick(1)
	requireEqual(t, got, []uint32{0})
}

func TestZoneAllFree(t *testing.T) {
	z := layoutZone(t, "..hx")
	requireTrue(t, z.AllFree(nil))
	requireTrue(t, z.AllFree([]uint32{0, 1}))
	requireFalse(t, z.AllFree([]uint32{0, 2}))
	requireFalse(t, z.AllFree([]uint32{3}))
	requireFalse(t, z.AllFree([]uint32{4}))
}

func TestZoneAlternatives(t *testing.T) {
	f := func(name string, rows []string, n, max int, avoid []string, want ...[]string) {
		t.Run(name, func(t *testing.T) {
			z := layoutZone(t, rows...)
			before := z.AppendSnapshot(nil)
			var av []uint32
			for _, a := range avoid {
				s, ok := z.SeatIndex(a)
				requireTrue(t, ok, a)
				av = append(av, s)
			}
			got := z.Alternatives(n, max, av)
			requireTrue(t, got != nil, "Alternatives must be [] rather than nil")
			names := [][]string{}
			seen := map[uint32]bool{}
			for _, set := range got {
				requireEqual(t, len(set), n)
				requireTrue(t, z.AllFree(set), "set %v not free", namesOf(z, set))
				for _, s := range set {
					requireFalse(t, seen[s], "seat %s in two sets", z.SeatName(s))
					requireFalse(t, slices.Contains(av, s), "seat %s is avoided", z.SeatName(s))
					seen[s] = true
				}
				names = append(names, namesOf(z, set))
			}
			if want == nil {
				want = [][]string{}
			}
			requireEqual(t, names, want)
			requireEqual(t, z.AppendSnapshot(nil), before, "Alternatives changed the zone")
			requireNoError(t, checkZone(z))
		})
	}
	f("best first, disjoint", []string{"..hh......", ".........."}, 2, 3, []string{"A-3", "A-4"},
		[]string{"A-1", "A-2"}, []string{"A-5", "A-6"}, []string{"A-7", "A-8"})
	f("avoided free seats are skipped", []string{"......", "......"}, 3, 3, []string{"A-1", "A-2"},
		[]string{"B-1", "B-2", "B-3"}, []string{"B-4", "B-5", "B-6"}, []string{"A-3", "A-4", "A-5"})
	f("fewer than max", []string{"xx....", "xxxxxx"}, 2, 3, []string{"A-1", "A-2"},
		[]string{"A-3", "A-4"}, []string{"A-5", "A-6"})
	f("max 1", []string{"......"}, 2, 1, nil, []string{"A-1", "A-2"})
	f("none: zone full", []string{"xxhh", "hhxx"}, 1, 3, []string{"A-1"})
	f("none: seats left are avoided", []string{"xx..", "xxxx"}, 2, 3, []string{"A-3", "A-4"})
	f("fallback sets when no run fits", []string{".x.x.x", "x.x.x."}, 2, 3, []string{"A-1"},
		[]string{"A-3", "A-5"}, []string{"B-2", "B-4"})
	f("max 0", []string{"...."}, 1, 0, nil)
	f("n 0", []string{"...."}, 0, 3, nil)
	f("avoiding a seat twice is harmless", []string{"...."}, 2, 3, []string{"A-1", "A-1"},
		[]string{"A-2", "A-3"})

	z := NewZone(testSale, gaDef(100))
	requireEqual(t, len(z.Alternatives(1, 1000, nil)), zoneAltSetsMax)
	got := z.Alternatives(4, 3, []uint32{0, 5, 1_000_000})
	requireEqual(t, got, [][]uint32{{1, 2, 3, 4}, {6, 7, 8, 9}, {10, 11, 12, 13}})
}

// zoneWithHistory returns a zone with holds in every state, for the Apply,
// snapshot and expiry tests: h-active (A-1,A-2, expires 61000), h-released
// h-expired, h-paid (B-1,B-2, order o-paid), h-cancelled (B-3,
// order o-cancelled, cancelled), h-active2 (C-1..C-3, expires 31000).
func zoneWithHistory(t testing.TB) *Zone {
	t.Helper()
	z := NewZone(testSale, reservedDef(10, 10, 10))
	s := func(names ...string) []uint32 { return indexesOf(t, z, names...) }
	mustApply(t, z, placedEvent(z, "h-active", s("A-1", "A-2"), 1000, 60_000))
	mustApply(t, z, placedEvent(z, "h-released", s("A-3"), 1000, 60_000))
	mustApply(t, z, placedEvent(z, "h-expired", s("A-4"), 1000, 10_000))
	mustApply(t, z, placedEvent(z, "h-paid", s("B-1", "B-2"), 1000, 60_000))
	mustApply(t, z, placedEvent(z, "h-cancelled", s("B-3"), 1000, 60_000))
	mustApply(t, z, placedEvent(z, "h-active2", s("C-1", "C-2", "C-3"), 1000, 30_000))
	mustApply(t, z, &wal.Event{Type: wal.TypeHoldReleased, Hold: "h-released", At: 2000})
	mustApply(t, z, &wal.Event{Type: wal.TypeHoldExpired, Hold: "h-expired", At: 11_000})
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderPaid, Hold: "h-paid", Order: "o-paid", At: 3000, Amount: 2 * testPrice, IdemKey: "pay-1", IdemHash: 7})
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderPaid, Hold: "h-cancelled", Order: "o-cancelled", At: 3000})
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderCancelled, Hold: "h-cancelled", Order: "o-cancelled", At: 4000})
	return z
}

func TestZoneApply(t *testing.T) {
	z := zoneWithHistory(t)
	free, held, sold := z.Counts()
	requireEqual(t, []int{free, held, sold}, []int{23, 5, 2})

	h := z.Hold("h-active")
	requireEqual(t, h.State, HoldActive)
	requireEqual(t, namesOf(z, h.Seats), []string{"A-1", "A-2"})
	requireEqual(t, h.Buyer, "buyer-h-active")
	requireEqual(t, h.CreatedAt, int64(1000))
	requireEqual(t, h.ExpiresAt, int64(61_000))
	requireEqual(t, h.Amount, int64(2*testPrice))
	requireEqual(t, h.IdemKey, "key-h-active")
	requireEqual(t, z.SeatState(indexesOf(t, z, "A-1")[0]), SeatHeld)

	requireEqual(t, z.Hold("h-released").State, HoldReleased)
	requireEqual(t, z.Hold("h-released").EndedAt, int64(2000))
	requireEqual(t, z.SeatState(indexesOf(t, z, "A-3")[0]), SeatFree)
	requireEqual(t, z.Hold("h-expired").State, HoldExpired)
	requireEqual(t, z.SeatState(indexesOf(t, z, "A-4")[0]), SeatFree)

	p := z.Order("o-paid")
	requireTrue(t, p == z.Hold("h-paid"))
	requireEqual(t, p.State, HoldPurchased)
	requireEqual(t, p.OrderID, "o-paid")
	requireEqual(t, p.PaidAt, int64(3000))
	requireEqual(t, p.EndedAt, int64(3000))
	requireEqual(t, p.PayKey, "pay-1")
	requireEqual(t, p.PayHash, uint64(7))
	requireFalse(t, p.OrderCancelled)
	requireEqual(t, z.SeatState(indexesOf(t, z, "B-1")[0]), SeatSold)

	c := z.Order("o-cancelled")
	requireEqual(t, c.State, HoldPurchased, "a cancelled order's hold still reads purchased")
	requireTrue(t, c.OrderCancelled)
	requireEqual(t, c.CancelledAt, int64(4000))
	requireEqual(t, z.SeatState(indexesOf(t, z, "B-3")[0]), SeatFree)
	requireTrue(t, z.Hold("nope") == nil)
	requireTrue(t, z.Order("nope") == nil)

	var ids []string
	z.ForEachHold(func(h *Hold) { ids = append(ids, h.ID) })
	requireEqual(t, ids, []string{"h-active", "h-released", "h-expired", "h-paid", "h-cancelled", "h-active2"})

	// A freed seat can be held again.
	mustApply(t, z, placedEvent(z, "h-again", indexesOf(t, z, "A-3", "B-3"), 5000, 1000))
	free, held, sold = z.Counts()
	requireEqual(t, []int{free, held, sold}, []int{21, 7, 2})
}

func TestZoneApplyRefusals(t *testing.T) {
	seats := func(z *Zone, names ...string) []uint32 { return indexesOf(t, z, names...) }
	ev := func(typ wal.Type, hold, order string, at int64) *wal.Event {
		return &wal.Event{Type: typ, Hold: hold, Order: order, At: at}
	}
	many := make([]uint32, HoldSeatsMax+1)
	for i := range many {
		many[i] = uint32(i)
	}
	f := func(name string, target error, mk func(z *Zone) *wal.Event) {
		t.Run(name, func(t *testing.T) {
			z := zoneWithHistory(t)
			before := z.AppendSnapshot(nil)
			free, held, sold := z.Counts()
			err := z.Apply(mk(z))
			requireErrorIs(t, err, target)
			t.Logf("refused: %v", err)
			requireEqual(t, z.AppendSnapshot(nil), before, "a refused event changed the zone")
			f2, h2, s2 := z.Counts()
			requireEqual(t, []int{f2, h2, s2}, []int{free, held, sold})
			requireNoError(t, checkZone(z))
		})
	}
	placed := func(mut func(z *Zone, e *wal.Event)) func(z *Zone) *wal.Event {
		return func(z *Zone) *wal.Event {
			e := placedEvent(z, "h-new", seats(z, "A-5", "A-6"), 9000, 60_000)
			mut(z, e)
			return e
		}
	}
	f("placed: hold id reused", ErrZoneHoldExists, placed(func(z *Zone, e *wal.Event) { e.Hold = "h-released" }))
	f("placed: seat held", ErrZoneSeatTaken, placed(func(z *Zone, e *wal.Event) { e.Seats = seats(z, "A-5", "A-1") }))
	f("placed: seat sold", ErrZoneSeatTaken, placed(func(z *Zone, e *wal.Event) { e.Seats = seats(z, "A-5", "B-2") }))
	f("placed: last seat taken", ErrZoneSeatTaken, placed(func(z *Zone, e *wal.Event) {
		e.Seats = seats(z, "A-5", "A-6", "A-7", "C-3")
		e.Amount = 4 * testPrice
	}))
	f("placed: seat out of range", ErrZoneSeatRange, placed(func(z *Zone, e *wal.Event) { e.Seats = []uint32{5, 30} }))
	f("placed: seat twice", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Seats = seats(z, "A-5", "A-5") }))
	f("placed: seat twice in a big hold", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) {
		e.Seats = []uint32{4, 5, 6, 7, 8, 9, 13, 14, 15, 4}
		e.Amount = 10 * testPrice
	}))
	f("placed: no seats", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Seats, e.Amount = nil, 0 }))
	f("placed: too many seats", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) {
		e.Seats, e.Amount = many, int64(len(many))*testPrice
	}))
	f("placed: no hold id", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Hold = "" }))
	f("placed: long hold id", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Hold = strings.Repeat("h", zoneKeyBytesMax+1) }))
	f("placed: no buyer", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Buyer = "" }))
	f("placed: long key", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.IdemKey = strings.Repeat("k", zoneKeyBytesMax+1) }))
	f("placed: expires at creation", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Expires = e.At }))
	f("placed: wrong amount", ErrZoneEventInvalid, placed(func(z *Zone, e *wal.Event) { e.Amount++ }))
	f("placed: other zone", ErrZoneMismatch, placed(func(z *Zone, e *wal.Event) { e.Zone = "ga" }))

	f("released: unknown", ErrZoneHoldUnknown, func(z *Zone) *wal.Event { return ev(wal.TypeHoldReleased, "nope", "", 9000) })
	f("released: twice", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldReleased, "h-released", "", 9000) })
	f("released: expired", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldReleased, "h-expired", "", 9000) })
	f("released: purchased", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldReleased, "h-paid", "", 9000) })
	f("released: cancelled order", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldReleased, "h-cancelled", "", 9000) })

	f("expired: unknown", ErrZoneHoldUnknown, func(z *Zone) *wal.Event { return ev(wal.TypeHoldExpired, "nope", "", 99_000) })
	f("expired: released", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldExpired, "h-released", "", 99_000) })
	f("expired: twice", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldExpired, "h-expired", "", 99_000) })
	f("expired: purchased", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeHoldExpired, "h-paid", "", 99_000) })
	f("expired: not due", ErrZoneHoldNotDue, func(z *Zone) *wal.Event { return ev(wal.TypeHoldExpired, "h-active", "", 60_999) })

	f("paid: unknown hold", ErrZoneHoldUnknown, func(z *Zone) *wal.Event { return ev(wal.TypeOrderPaid, "nope", "o-new", 9000) })
	f("paid: released", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeOrderPaid, "h-released", "o-new", 9000) })
	f("paid: expired", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeOrderPaid, "h-expired", "o-new", 9000) })
	f("paid: twice", ErrZoneHoldNotActive, func(z *Zone) *wal.Event { return ev(wal.TypeOrderPaid, "h-paid", "o-new", 9000) })
	f("paid: no order id", ErrZoneEventInvalid, func(z *Zone) *wal.Event { return ev(wal.TypeOrderPaid, "h-active", "", 9000) })
	f("paid: order id reused", ErrZoneOrderExists, func(z *Zone) *wal.Event { return ev(wal.TypeOrderPaid, "h-active", "o-cancelled", 9000) })
	f("paid: wrong amount", ErrZoneEventInvalid, func(z *Zone) *wal.Event {
		e := ev(wal.TypeOrderPaid, "h-active", "o-new", 9000)
		e.Amount = testPrice
		return e
	})
	f("paid: long key", ErrZoneEventInvalid, func(z *Zone) *wal.Event {
		e := ev(wal.TypeOrderPaid, "h-active", "o-new", 9000)
		e.IdemKey = strings.Repeat("k", zoneKeyBytesMax+1)
		return e
	})
	f("paid: other zone", ErrZoneMismatch, func(z *Zone) *wal.Event {
		e := ev(wal.TypeOrderPaid, "h-active", "o-new", 9000)
		e.Zone = "ga"
		return e
	})

	f("cancelled: unknown order", ErrZoneOrderUnknown, func(z *Zone) *wal.Event { return ev(wal.TypeOrderCancelled, "", "nope", 9000) })
	f("cancelled: no order id", ErrZoneOrderUnknown, func(z *Zone) *wal.Event { return ev(wal.TypeOrderCancelled, "h-paid", "", 9000) })
	f("cancelled: twice", ErrZoneOrderCancelled, func(z *Zone) *wal.Event { return ev(wal.TypeOrderCancelled, "", "o-cancelled", 9000) })
	f("cancelled: other hold", ErrZoneEventInvalid, func(z *Zone) *wal.Event { return ev(wal.TypeOrderCancelled, "h-active", "o-paid", 9000) })

	for _, typ := range []wal.Type{0, wal.TypeSaleCreated, wal.TypeIdemResult, wal.TypeQueueJoined, wal.TypeMarker, 200} {
		f("type "+typ.String(), ErrZoneEventType, func(z *Zone) *wal.Event { return ev(typ, "h-active", "o-new", 99_000) })
	}
}

func TestZoneTakeDue(t *testing.T) {
	z := NewZone(testSale, gaDef(100))
	place := func(id string, expires int64) {
		seats, ok := z.Pick(2)
		requireTrue(t, ok)
		mustApply(t, z, placedEvent(z, id, seats, 0, expires))
	}
	place("d", 300)
	place("b", 100)
	place("c", 200)
	place("a", 200) // same time as c: ties go by id
	place("e", 400)
	place("f", 500)
	place("g", 600)
	next, ok := z.NextExpiry()
	requireTrue(t, ok)
	requireEqual(t, next, int64(100))

	requireEqual(t, z.TakeDue(99, 10), []string(nil))
	requireEqual(t, z.TakeDue(200, 2), []string{"b", "a"})
	requireEqual(t, z.TakeDue(200, 10), []string{"c"})
	requireEqual(t, z.TakeDue(200, 10), []string(nil), "a hold is handed out once")
	for _, id := range []string{"b", "a", "c"} {
		mustApply(t, z, &wal.Event{Type: wal.TypeHoldExpired, Hold: id, At: 200})
	}

	// Holds that ended another way are skipped: lazy deletion.
	mustApply(t, z, &wal.Event{Type: wal.TypeHoldReleased, Hold: "d", At: 250})
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderPaid, Hold: "e", Order: "o-e", At: 250})
	next, ok = z.NextExpiry()
	requireTrue(t, ok)
	requireEqual(t, next, int64(500))
	requireEqual(t, z.TakeDue(10_000, 0), []string(nil))
	requireEqual(t, z.TakeDue(10_000, 10), []string{"f", "g"})
	_, ok = z.NextExpiry()
	requireFalse(t, ok)

	// Expiring during replay, with no TakeDue, leaves stale entries that are
	// skipped and compacted away.
	z = NewZone(testSale, gaDef(100_000))
	n := 5 * zoneExpirySlack
	for i := 0; i < n; i++ {
		seats, _ := z.Pick(1)
		requireNoError(t, z.Apply(placedEvent(z, fmt.Sprintf("r%05d", i), seats, 0, int64(1000+i))))
	}
	for i := 0; i < n; i += 2 {
		requireNoError(t, z.Apply(&wal.Event{Type: wal.TypeHoldReleased, Hold: fmt.Sprintf("r%05d", i), At: 10}))
	}
	requireNoError(t, checkZone(z))
	requireTrue(t, len(z.expiry) <= 2*z.ActiveHolds()+zoneExpirySlack, "heap of %d for %d active", len(z.expiry), z.ActiveHolds())
	next, _ = z.NextExpiry()
	requireEqual(t, next, int64(1001))
	due := z.TakeDue(1_000_000, n)
	requireEqual(t, len(due), n/2)
	for i, id := range due {
		requireEqual(t, id, fmt.Sprintf("r%05d", 2*i+1))
	}
}

// TestZoneHoldsFull: the bound counts the holds kept, so dropping ended
// ones makes room again.
func TestZoneHoldsFull(t *testing.T) {
	z := NewZone(testSale, gaDef(10))
	z.holdsMax = 2
	requireFalse(t, z.HoldsFull())
	mustApply(t, z, placedEvent(z, "h1", []uint32{0}, 1, 1000))
	mustApply(t, z, placedEvent(z, "h2", []uint32{1}, 1, 1000))
	requireTrue(t, z.HoldsFull())
	mustApply(t, z, &wal.Event{Type: wal.TypeHoldReleased, Hold: "h1", At: 5})
	requireTrue(t, z.HoldsFull(), "a released hold is kept until it is dropped")
	requireEqual(t, z.DropEnded(5, 10), 1)
	requireFalse(t, z.HoldsFull())
	requireNoError(t, checkZone(z))
}

// TestZoneAppliedSeats: after every kind of record, AppliedSeats names
// exactly the seats whose state the record changed, and SeatRow puts each
// in the row its name says.
func TestZoneAppliedSeats(t *testing.T) {
	z := NewZone(testSale, reservedDef(10, 10, 10))
	s := func(names ...string) []uint32 { return indexesOf(t, z, names...) }
	for _, ev := range []*wal.Event{
		placedEvent(z, "h1", s("A-1", "C-10"), 1000, 60_000),
		placedEvent(z, "h2", s("B-3"), 1000, 10_000),
		placedEvent(z, "h3", s("B-4", "B-5"), 1000, 60_000),
		{Type: wal.TypeHoldReleased, Hold: "h1", At: 2000},
		{Type: wal.TypeHoldExpired, Hold: "h2", At: 11_000},
		{Type: wal.TypeOrderPaid, Hold: "h3", Order: "o3", At: 3000},
		{Type: wal.TypeOrderCancelled, Order: "o3", At: 4000},
	} {
		before := z.AppendSeatStates(nil, 0, uint32(z.Size()))
		mustApply(t, z, ev)
		after := z.AppendSeatStates(nil, 0, uint32(z.Size()))
		var changed []uint32
		for i := range before {
			if before[i] != after[i] {
				changed = append(changed, uint32(i))
			}
		}
		got := slices.Clone(z.AppliedSeats(ev))
		slices.Sort(got)
		requireEqual(t, got, changed, "%s %s%s", ev.Type, ev.Hold, ev.Order)
		for _, i := range got {
			row, _, _ := strings.Cut(z.SeatName(i), "-")
			requireEqual(t, z.Def().Rows[z.SeatRow(i)].Row, row, "row of seat %s", z.SeatName(i))
		}
	}
	requireTrue(t, z.AppliedSeats(&wal.Event{Type: wal.TypeHoldReleased, Hold: "nope"}) == nil, "an unknown hold changed nothing")
}
