package actors

import (
	"slices"

	"onsale/actors/seats"
)

// Best available written out the slow, obvious way, for the engine model:
// the same rules as the oracle in seats/zone_model_test.go, which tests
// cannot share across packages. A zone's Pick is checked against that one;
// this one checks that the engine answers with what the zone picks.

const (
	// mdlPickSeatsMax: a hold asks for 1..100 seats (API.md).
	mdlPickSeatsMax = 100
	// mdlAltsShown: a seats_taken answer offers 3 alternatives (API.md).
	mdlAltsShown = 3
	// mdlAltSetsMax: the zone computes at most 16 alternative sets.
	mdlAltSetsMax = 16
	// mdlSetAside marks a seat that an alternative already took or the
	// request named: anything but free.
	mdlSetAside = seats.SeatState(0xff)
)

// modelPick is best available on a copy of the seat states in which taken
// and set-aside seats are anything but SeatFree.
func modelPick(rows []int, states []seats.SeatState, n int) ([]uint32, bool) {
	free := 0
	for _, s := range states {
		if s == seats.SeatFree {
			free++
		}
	}
	if n < 1 || n > mdlPickSeatsMax || n > free {
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
			if states[base+i] != seats.SeatFree {
				i++
				continue
			}
			j := i
			for j < length && states[base+j] == seats.SeatFree {
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
	for i, s := range states {
		if s == seats.SeatFree && len(out) < n {
			out = append(out, uint32(i))
		}
	}
	return out, true
}

func modelAlternatives(rows []int, states []seats.SeatState, n, max int, avoid []uint32) [][]uint32 {
	work := slices.Clone(states)
	for _, s := range avoid {
		if int(s) < len(work) && work[s] == seats.SeatFree {
			work[s] = mdlSetAside
		}
	}
	out := [][]uint32{}
	for len(out) < min(max, mdlAltSetsMax) {
		set, ok := modelPick(rows, work, n)
		if !ok {
			break
		}
		out = append(out, set)
		for _, s := range set {
			work[s] = mdlSetAside
		}
	}
	return out
}
