package actors

import (
	"testing"

	"onsale/actors/seats"
)

// TestSaleSeatsMatchZone: the seat map rendered outside the zone's actor
// names every seat as the zone does, in index order, with its state.
func TestSaleSeatsMatchZone(t *testing.T) {
	h := newHarness(t)
	def := SaleDef{ID: "map", MaxPerBuyer: 10, Zones: []ZoneDef{
		{ID: "vip", PriceCents: 100, Rows: []RowDef{{Row: "A", Seats: 3}, {Row: "BB", Seats: 5}, {Row: "C9", Seats: 2}}},
	}}
	s := h.createSale(def)
	held := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"BB-2", "BB-3"}})
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"C9-1"}})
	requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: held.ID, Buyer: "b1", PaymentToken: "tok"}, newFakePayer()))

	view, err := s.Seats("vip")
	requireTrue(t, err == nil, "seats: %v", err)
	names := seats.NewZone(def.ID, def.Zones[0])
	requireEqual(t, len(view), names.Size(), "one entry per seat")
	want := map[string]string{"BB-2": "sold", "BB-3": "sold", "C9-1": "held"}
	for i, v := range view {
		requireEqual(t, v.ID, names.SeatName(uint32(i)), "seat %d", i)
		st, ok := want[v.ID]
		if !ok {
			st = "free"
		}
		requireEqual(t, v.Status, st, "seat %s", v.ID)
	}
	if _, err := s.Seats("nope"); err == nil || err.Code != CodeNotFound {
		t.Fatalf("unknown zone: %v", err)
	}
}

// TestZoneLimitsFitCounts: the largest zone the seat core allows fits the
// fields of a zone's published counts (zoneCountBits).
func TestZoneLimitsFitCounts(t *testing.T) {
	largest := max(seats.GACapacityMax, seats.RowsMax*seats.RowSeatsMax)
	requireTrue(t, largest < 1<<zoneCountBits, "a zone of %d seats overflows %d-bit counts", largest, zoneCountBits)
}

// TestSaleSeatRows: a copy of some rows holds exactly their seats, with the
// zone's counts; every change moves the version on, and a read alone does
// not; a change moves the stamp of the rows it touches and of no other.
func TestSaleSeatRows(t *testing.T) {
	h := newHarness(t)
	def := SaleDef{ID: "rows", MaxPerBuyer: 10, Zones: []ZoneDef{
		{ID: "vip", PriceCents: 100, Rows: []RowDef{{Row: "A", Seats: 3}, {Row: "B", Seats: 5}, {Row: "C", Seats: 2}}},
	}}
	s := h.createSale(def)
	v0 := s.SeatsVersion("vip")
	requireTrue(t, v0 > 0, "a started zone has a version")
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"B-2", "C-1"}})
	v1 := s.SeatsVersion("vip")
	requireTrue(t, v1 > v0, "a hold moves the version on: %d then %d", v0, v1)

	r, err := s.SeatRows("vip", 1, 3)
	requireTrue(t, err == nil, "seat rows: %v", err)
	requireEqual(t, r.Version, v1, "the copy's version")
	requireEqual(t, r.Counts, ZoneCounts{ID: "vip", Free: 8, Held: 2})
	requireEqual(t, r.Rows, def.Zones[0].Rows[1:3])
	var got []string
	for i := range r.States {
		got = append(got, r.Status(i))
	}
	requireEqual(t, got, []string{"free", "held", "free", "free", "free", "held", "free"})
	requireEqual(t, s.SeatsVersion("vip"), v1, "reading changes nothing")
	requireEqual(t, r.Stamp, v1, "the copy's stamp: its rows changed with the hold")
	requireEqual(t, s.SeatRowsStamp("vip", 1, 3), v1, "the stamp without a copy")
	requireEqual(t, s.SeatRowsStamp("vip", 0, 1), uint64(0), "row A has not changed")

	// A change stamps the rows it touches and no other.
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-1"}})
	v2 := s.SeatsVersion("vip")
	requireEqual(t, s.SeatRowsStamp("vip", 0, 1), v2, "row A changed")
	requireEqual(t, s.SeatRowsStamp("vip", 1, 3), v1, "rows B and C did not")
	requireEqual(t, s.SeatRowsStamp("vip", 0, 3), v2, "the largest stamp of the range")
	r, err = s.SeatRows("vip", 1, 3)
	requireTrue(t, err == nil && r.Stamp == v1 && r.Version == v2, "a copy of unchanged rows keeps their stamp: %+v %v", r, err)
	requireEqual(t, s.SeatRowsStamp("nope", 0, 0), uint64(0), "unknown zone")

	empty, err := s.SeatRows("vip", 3, 3)
	requireTrue(t, err == nil && len(empty.States) == 0, "no rows, no seats: %+v %v", empty, err)
	if _, err := s.SeatRows("nope", 0, 1); err == nil || err.Code != CodeNotFound {
		t.Fatalf("unknown zone: %v", err)
	}
}
