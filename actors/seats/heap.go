package seats

// The zone keeps two binary min-heaps of holds, by expiry (active holds)
// and by when they ended (for retention); these sift a heap kept in a slice.

// siftUp moves q[i] up while it is less than its parent.
func siftUp(q []*Hold, i int, less func(a, b *Hold) bool) {
	for i > 0 {
		p := (i - 1) / 2
		if !less(q[i], q[p]) {
			return
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

// siftDown moves q[i] down while a child is less than it.
func siftDown(q []*Hold, i int, less func(a, b *Hold) bool) {
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && less(q[r], q[l]) {
			m = r
		}
		if !less(q[m], q[i]) {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// heapify orders q as a heap.
func heapify(q []*Hold, less func(a, b *Hold) bool) {
	for i := len(q)/2 - 1; i >= 0; i-- {
		siftDown(q, i, less)
	}
}

// heapPop takes the least hold off q and returns it with the shorter heap;
// the freed slot is cleared so that the hold can go once nothing else keeps
// it.
func heapPop(q []*Hold, less func(a, b *Hold) bool) (*Hold, []*Hold) {
	h := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = nil
	q = q[:last]
	if last > 0 {
		siftDown(q, 0, less)
	}
	return h, q
}
