package seats

// Hold retention: a hold that was released or expired is kept for reads
// (GET answers "released" or "expired") and for its idempotency key, then
// dropped, so that a zone's memory follows its live holds and orders, not
// every hold it ever made. Purchased holds are kept: a purchased hold is the
// order, which stays readable by its id for as long as the sale exists, and
// the few fields only the hold needed (its key, its expiry) are too small to
// be worth a second record type.
//
// Dropping is the caller's decision of when (DropEnded takes a cutoff time,
// no clock is read), and the core's of what: a released or expired hold
// whose EndedAt is at or before the cutoff and that has no open payment. A
// hold with an open payment is never dropped: recovery must find it to
// finish the payment; once the payment closes it becomes droppable again.
//
// Nothing is written to the log for a drop. No record can name a dropped
// hold after it: every decision about an ended hold with no open payment
// writes nothing, and a request naming a dropped hold answers not found. So
// replay, which drops on the records' clock instead of the ticks', and a
// snapshot, which carries no dropped hold, rebuild the same seats, orders
// and payments; they may differ from the live zone only in which ended
// holds near the cutoff are still readable.

// DropEnded drops, earliest ended first (ties by id), up to max released or
// expired holds that ended at or before cutoff (unix ms) and have no open
// payment. It returns how many it dropped.
func (z *Zone) DropEnded(cutoff int64, max int) int {
	n := 0
	for n < max && len(z.ended) > 0 {
		h := z.ended[0]
		if h.EndedAt > cutoff {
			break
		}
		z.endedPop()
		if z.payments[h.ID] != nil {
			h.parked = true // back in the heap when its payment closes
			continue
		}
		z.drop(h)
		n++
	}
	if n > 0 {
		z.compactList()
	}
	return n
}

// KeptHolds is the number of hold records the zone keeps: active,
// purchased, and ended ones not dropped yet.
func (z *Zone) KeptHolds() int { return len(z.holds) }

func (z *Zone) drop(h *Hold) {
	if h.State != HoldReleased && h.State != HoldExpired {
		panic("zone " + z.def.ID + ": dropping hold " + h.ID + " which is " + h.State.String())
	}
	delete(z.holds, h.ID)
	h.dropped = true
	z.listDropped++
}

// compactList removes dropped holds from the placement-order list once they
// are more than half of it, so the list costs O(1) amortized per drop and
// never holds more than twice the kept holds plus zoneListSlack.
func (z *Zone) compactList() {
	if z.listDropped <= len(z.list)/2+zoneListSlack {
		return
	}
	k := 0
	for _, h := range z.list {
		if !h.dropped {
			z.list[k] = h
			k++
		}
	}
	clear(z.list[k:])
	z.list = z.list[:k]
	z.listDropped = 0
	// Go maps never give back the space of deleted entries. Rebuild the
	// index once it holds far fewer holds than it was sized for, so that a
	// burst of holds does not pin its peak for the rest of the sale.
	if len(z.holds) < z.holdsPeak/4 {
		m := make(map[string]*Hold, len(z.holds))
		for id, h := range z.holds {
			m[id] = h
		}
		z.holds = m
		z.holdsPeak = len(m)
	}
}

// ended is a min-heap of released and expired holds by (EndedAt, ID): the
// ones DropEnded will drop, earliest first.

func endedLess(a, b *Hold) bool {
	if a.EndedAt != b.EndedAt {
		return a.EndedAt < b.EndedAt
	}
	return a.ID < b.ID
}

func (z *Zone) endedPush(h *Hold) {
	z.ended = append(z.ended, h)
	siftUp(z.ended, len(z.ended)-1, endedLess)
}

func (z *Zone) endedPop() *Hold {
	h, q := heapPop(z.ended, endedLess)
	z.ended = q
	return h
}

func (z *Zone) endedDown(i int) { siftDown(z.ended, i, endedLess) }

func (z *Zone) endedHeapify() { heapify(z.ended, endedLess) }
