package seats

import (
	"bytes"
	"fmt"
)

// Best available. The rules, in order of weight:
//
//  1. Reserved zones: n adjacent seats in one row (consecutive numbers),
//     placed so that no lone single free seat is left beside them, in the
//     front-most row that allows it (rows in definition order), leftmost in
//     that row. Within a free run of length L the placement starts at the
//     run's left end, which leaves 0 (L == n) or L-n >= 2 seats: only a run
//     of exactly n+1 forces a single.
//  2. If no run anywhere allows that, the front-most, leftmost run of n+1,
//     leaving one single.
//  3. If no row has n adjacent free seats (or the zone is general
//     admission): the n lowest free seat indexes, which fills the front rows
//     in order and is the most compact set this cheap rule finds.
//
// Cost: rows (or general-admission blocks) before segCursor have no free
// seat and are never visited; rows with fewer than n free seats are skipped
// on their count. Each row also keeps a summary of its free runs (which
// lengths up to 127 occur, and the longest), refreshed lazily: a row that
// changed is rescanned on the next visit, a row that did not is judged from
// its summary alone. So a zone whose rows cannot seat n together (mostly
// sold, or fragmented into short runs) costs one pass over the changed rows
// and a glance at the others, not a scan of every seat per request.

// Pick returns the best available n seats without changing any state, or
// false when the zone has fewer than n free seats or n is outside
// 1..HoldSeatsMax.
func (z *Zone) Pick(n int) ([]uint32, bool) {
	if n < 1 || n > HoldSeatsMax || n > z.free-z.blocked {
		return nil, false
	}
	if z.reserved {
		if start, ok := z.pickAdjacent(n); ok {
			out := make([]uint32, n)
			for i := range out {
				out[i] = start + uint32(i)
			}
			return out, true
		}
	}
	return z.lowestFree(n), true
}

// rowRuns summarises the maximal free runs of one row. It is exact only
// while fresh; take, give and block make it stale.
type rowRuns struct {
	lens  [2]uint64 // bit L set: a run of exactly L free seats exists (L < 128)
	max   uint16    // the longest run
	fresh bool
}

// zoneRunBitsMax: run lengths below it are kept as bits. Pick asks about
// lengths up to HoldSeatsMax+1, so 128 covers them.
const zoneRunBitsMax = 128

func (r *rowRuns) add(l int) {
	if l < zoneRunBitsMax {
		r.lens[l/64] |= 1 << (l % 64)
	}
	r.max = max(r.max, uint16(l))
}

func (r *rowRuns) has(l int) bool {
	return l < zoneRunBitsMax && r.lens[l/64]&(1<<(l%64)) != 0
}

// fits reports whether n seats go in a run without leaving a single.
func (r *rowRuns) fits(n int) bool { return r.has(n) || int(r.max) >= n+2 }

func (z *Zone) staleRuns(row int) {
	if z.runs != nil {
		z.runs[row].fresh = false
	}
}

// pickAdjacent finds the first seat of the best run of n adjacent free seats
// in one row (rules 1 and 2 above). It refreshes the run summaries of the
// rows it scans to the end, which is no change of state.
func (z *Zone) pickAdjacent(n int) (uint32, bool) {
	singleRow := -1
	for r := z.segCursor; r < len(z.segFree); r++ {
		if int(z.segFree[r]) < n {
			continue
		}
		sum := &z.runs[r]
		if sum.fresh && !sum.fits(n) {
			if singleRow < 0 && sum.has(n+1) {
				singleRow = r
			}
			continue
		}
		if start, ok := z.scanRow(r, n); ok {
			return start, true
		}
		// The scan went to the end of the row: its summary is fresh now.
		if singleRow < 0 && sum.has(n+1) {
			singleRow = r
		}
	}
	if singleRow < 0 {
		return 0, false
	}
	base := z.segStart[singleRow]
	row := z.seats[base:z.segStart[singleRow+1]]
	for i := 0; i < len(row); {
		j := bytes.IndexByte(row[i:], uint8(SeatFree))
		if j < 0 {
			break
		}
		start, end := i+j, i+j+1
		for end < len(row) && row[end] == uint8(SeatFree) {
			end++
		}
		if end-start == n+1 {
			return base + uint32(start), true
		}
		i = end
	}
	panic(fmt.Sprintf("zone %q: row %s summary promises a run of %d free seats, the row has none", z.def.ID, z.def.Rows[singleRow].Row, n+1))
}

// scanRow returns the first placement of n seats in row r that leaves no
// single: the start of the first free run of length n or of n+2 or more. A
// run is measured only up to n+2 seats. When there is none, the scan has
// measured every run exactly and leaves the row's summary fresh.
func (z *Zone) scanRow(r, n int) (uint32, bool) {
	base := z.segStart[r]
	row := z.seats[base:z.segStart[r+1]]
	var sum rowRuns
	for i := 0; i < len(row); {
		j := bytes.IndexByte(row[i:], uint8(SeatFree))
		if j < 0 {
			break
		}
		start := i + j
		end := start + 1
		for end < len(row) && end-start < n+2 && row[end] == uint8(SeatFree) {
			end++
		}
		run := end - start
		if run == n || run >= n+2 {
			return base + uint32(start), true
		}
		sum.add(run)
		i = end
	}
	sum.fresh = true
	z.runs[r] = sum
	return 0, false
}

// lowestFree returns the n lowest free seat indexes; the caller has checked
// that there are n.
func (z *Zone) lowestFree(n int) []uint32 {
	out := make([]uint32, 0, n)
	for g := z.segCursor; g < len(z.segFree) && len(out) < n; g++ {
		if z.segFree[g] == 0 {
			continue
		}
		a, b := z.segStart[g], z.segStart[g+1]
		for i := a; i < b && len(out) < n; {
			j := bytes.IndexByte(z.seats[i:b], uint8(SeatFree))
			if j < 0 {
				break
			}
			out = append(out, i+uint32(j))
			i += uint32(j) + 1
		}
	}
	if len(out) < n {
		panic(fmt.Sprintf("zone %q: counts say %d seats free, found %d of %d", z.def.ID, z.free-z.blocked, len(out), n))
	}
	return out
}

// AllFree reports whether every seat is in range and free. An empty list
// is all free.
func (z *Zone) AllFree(seats []uint32) bool {
	for _, s := range seats {
		if int(s) >= len(z.seats) || z.seats[s] != uint8(SeatFree) {
			return false
		}
	}
	return true
}

// Alternatives offers seats instead of named ones that are taken: up to max
// disjoint sets of n seats, each free now and none containing a seat in
// avoid, best first by the rules of Pick. It returns an empty, non-nil list
// when there is none, and changes no state.
func (z *Zone) Alternatives(n, max int, avoid []uint32) [][]uint32 {
	out := [][]uint32{}
	max = min(max, zoneAltSetsMax)
	if n < 1 || n > HoldSeatsMax || max < 1 {
		return out
	}
	// Set the avoided seats and each set found aside as seatBlocked, so the
	// next Pick skips them, and put them back before returning.
	blocked := make([]uint32, 0, len(avoid)+max*n)
	defer func() { z.unblock(blocked) }()
	for _, s := range avoid {
		if int(s) < len(z.seats) && z.seats[s] == uint8(SeatFree) {
			z.block(s)
			blocked = append(blocked, s)
		}
	}
	for len(out) < max {
		set, ok := z.Pick(n)
		if !ok {
			break
		}
		out = append(out, set)
		for _, s := range set {
			z.block(s)
			blocked = append(blocked, s)
		}
	}
	return out
}

func (z *Zone) block(s uint32) {
	z.seats[s] = uint8(seatBlocked)
	g := z.seg(s)
	z.segFree[g]--
	z.staleRuns(g)
	z.blocked++
}

func (z *Zone) unblock(seats []uint32) {
	for _, s := range seats {
		z.seats[s] = uint8(SeatFree)
		g := z.seg(s)
		z.segFree[g]++
		z.staleRuns(g)
	}
	z.blocked -= len(seats)
}
