package seats

// Hold expiry: one min-heap per zone ordered by (ExpiresAt, ID), never a
// timer per hold. A hold that ends before it expires stays in the heap and is
// skipped when it surfaces (lazy deletion); ended() compacts the heap when
// such leftovers outnumber the active holds, so its size stays within twice
// the active holds plus zoneExpirySlack.

// TakeDue returns the ids of active holds with ExpiresAt <= now, earliest
// first (ties by id), at most max of them, and removes them from the expiry
// heap. The caller applies a HoldExpired event for each: a hold taken here
// is not offered again.
func (z *Zone) TakeDue(now int64, max int) []string {
	var due []string
	for len(due) < max && len(z.expiry) > 0 {
		h := z.expiry[0]
		if h.State != HoldActive {
			z.expiryPop()
			continue
		}
		if h.ExpiresAt > now {
			break
		}
		z.expiryPop()
		due = append(due, h.ID)
	}
	return due
}

// NextExpiry returns the earliest ExpiresAt among the active holds still in
// the expiry heap, and false when there is none.
func (z *Zone) NextExpiry() (int64, bool) {
	for len(z.expiry) > 0 {
		h := z.expiry[0]
		if h.State == HoldActive {
			return h.ExpiresAt, true
		}
		z.expiryPop()
	}
	return 0, false
}

func expiryLess(a, b *Hold) bool {
	if a.ExpiresAt != b.ExpiresAt {
		return a.ExpiresAt < b.ExpiresAt
	}
	return a.ID < b.ID
}

func (z *Zone) expiryPush(h *Hold) {
	z.expiry = append(z.expiry, h)
	z.expiryUp(len(z.expiry) - 1)
}

func (z *Zone) expiryPop() *Hold {
	h, q := heapPop(z.expiry, expiryLess)
	z.expiry = q
	return h
}

func (z *Zone) expiryUp(i int) { siftUp(z.expiry, i, expiryLess) }

func (z *Zone) expiryDown(i int) { siftDown(z.expiry, i, expiryLess) }

// compactExpiry drops ended holds from the heap, in place. It keeps only
// the active holds already in the heap: one taken by TakeDue and not yet
// expired must not come back.
func (z *Zone) compactExpiry() {
	q := z.expiry
	k := 0
	for _, h := range q {
		if h.State == HoldActive {
			q[k] = h
			k++
		}
	}
	clear(q[k:])
	z.expiry = q[:k]
	z.expiryHeapify()
}

func (z *Zone) expiryHeapify() { heapify(z.expiry, expiryLess) }
