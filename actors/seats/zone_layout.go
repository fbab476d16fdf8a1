package seats

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// ZoneDef is one zone of a sale: general admission (Capacity, seats
// "1".."N") or reserved seating (Rows, seats "ROW-N" numbered from 1). It is
// part of the sale definition, written as JSON in the sale_created record:
// never rename a field's JSON name.
type ZoneDef struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PriceCents int64    `json:"price_cents"`
	Capacity   int      `json:"capacity,omitempty"`
	Rows       []RowDef `json:"rows,omitempty"`
}

// RowDef is one row of a reserved zone. Consecutive seat numbers are adjacent.
type RowDef struct {
	Row   string `json:"row"`
	Seats int    `json:"seats"`
}

// The layout of a zone: checking a definition, and the mapping between seat
// indexes and public seat ids. Names are computed from the rows, never
// stored, so a 1,000,000-seat zone keeps no per-seat string.

// CheckZoneLayout reports whether def describes a zone this package can
// hold: capacity or rows (not both), within the API's limits, with unique
// row names of the API's form, and a price that is not negative (amounts
// are computed from it). Ids are the sale's business.
func CheckZoneLayout(def ZoneDef) error {
	if def.PriceCents < 0 {
		return fmt.Errorf("%w: zone %q: negative price", ErrZoneLayout, def.ID)
	}
	if len(def.Rows) == 0 {
		if def.Capacity < 1 || def.Capacity > GACapacityMax {
			return fmt.Errorf("%w: zone %q: capacity %d outside 1..%d", ErrZoneLayout, def.ID, def.Capacity, GACapacityMax)
		}
		return nil
	}
	if def.Capacity != 0 {
		return fmt.Errorf("%w: zone %q: both capacity and rows", ErrZoneLayout, def.ID)
	}
	if len(def.Rows) > RowsMax {
		return fmt.Errorf("%w: zone %q: %d rows, at most %d", ErrZoneLayout, def.ID, len(def.Rows), RowsMax)
	}
	seen := make(map[string]bool, len(def.Rows))
	for _, r := range def.Rows {
		if !validRowName(r.Row) {
			return fmt.Errorf("%w: zone %q: row name %q is not 1-%d letters or digits", ErrZoneLayout, def.ID, r.Row, zoneRowNameBytesMax)
		}
		if seen[r.Row] {
			return fmt.Errorf("%w: zone %q: row %q twice", ErrZoneLayout, def.ID, r.Row)
		}
		seen[r.Row] = true
		if r.Seats < 1 || r.Seats > RowSeatsMax {
			return fmt.Errorf("%w: zone %q: row %q has %d seats, not 1..%d", ErrZoneLayout, def.ID, r.Row, r.Seats, RowSeatsMax)
		}
	}
	return nil
}

func validRowName(s string) bool {
	if len(s) < 1 || len(s) > zoneRowNameBytesMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// seg returns the segment of seat i.
func (z *Zone) seg(i uint32) int {
	if !z.reserved {
		return int(i >> zoneGABlockShift)
	}
	// The first segment that starts after i, minus one. Rows are at most
	// 1,000, so this is ten steps.
	return sort.Search(len(z.segStart)-1, func(s int) bool { return z.segStart[s+1] > i })
}

// SeatRow is the index of the row of seat i in a reserved zone, in
// definition order. i must be below Size(); a general-admission zone has no
// rows, and asking is a bug.
func (z *Zone) SeatRow(i uint32) int {
	if !z.reserved || int(i) >= len(z.seats) {
		panic(fmt.Sprintf("zone %q: no row for seat %d (reserved %v, %d seats)", z.def.ID, i, z.reserved, len(z.seats)))
	}
	return z.seg(i)
}

// SeatName is the seat's public id: "A-7" (row name, dash, number from 1) in
// a reserved zone, "17" (index+1) in general admission; "" when i is out of
// range.
func (z *Zone) SeatName(i uint32) string {
	if int(i) >= len(z.seats) {
		return ""
	}
	if !z.reserved {
		return strconv.FormatUint(uint64(i)+1, 10)
	}
	r := z.seg(i)
	return z.def.Rows[r].Row + "-" + strconv.FormatUint(uint64(i-z.segStart[r])+1, 10)
}

// SeatNames returns the public ids of seats, in order.
func (z *Zone) SeatNames(seats []uint32) []string {
	out := make([]string, len(seats))
	for i, s := range seats {
		out[i] = z.SeatName(s)
	}
	return out
}

// SeatIndex maps a public seat id back to its index. Only the canonical form
// is accepted ("A-7", not "A-07"), so each seat has exactly one name.
func (z *Zone) SeatIndex(name string) (uint32, bool) {
	num := name
	row := 0
	if z.reserved {
		dash := strings.IndexByte(name, '-')
		if dash < 0 {
			return 0, false
		}
		r, ok := z.rowIndex[name[:dash]]
		if !ok {
			return 0, false
		}
		row, num = r, name[dash+1:]
	}
	n, ok := parseSeatNumber(num)
	if !ok {
		return 0, false
	}
	if z.reserved {
		if n > uint64(z.def.Rows[row].Seats) {
			return 0, false
		}
		return z.segStart[row] + uint32(n-1), true
	}
	if n > uint64(len(z.seats)) {
		return 0, false
	}
	return uint32(n - 1), true
}

// parseSeatNumber parses a seat number: decimal digits, no sign, no leading
// zero, at least 1. Seven digits cover the largest zone.
func parseSeatNumber(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 7 || s[0] == '0' {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
