package line

// The waiting room's data structures: where tickets live, the line of
// numbers, and the access expiries.

// roomTickets stores tickets in fixed chunks. A chunk never moves once made,
// so a *Ticket handed out stays valid while the line grows, and a million
// tickets are a few hundred allocations instead of a million.
type roomTickets struct {
	chunks [][]Ticket
	n      uint32
}

func (s *roomTickets) len() int { return int(s.n) }

func (s *roomTickets) at(i uint32) *Ticket {
	return &s.chunks[i/roomTicketsPerChunk][i%roomTicketsPerChunk]
}

// add stores t and returns its index. The caller bounds the count.
func (s *roomTickets) add(t Ticket) uint32 {
	if s.n%roomTicketsPerChunk == 0 {
		s.chunks = append(s.chunks, make([]Ticket, 0, roomTicketsPerChunk))
	}
	c := &s.chunks[len(s.chunks)-1]
	*c = append(*c, t)
	s.n++
	return s.n - 1
}

// roomLine is a Fenwick tree over ticket numbers 1..n holding 1 where the
// ticket waits, so the count of waiting tickets ahead of a number is a prefix
// sum: O(log n) for a position and for every change. It grows by append as
// numbers are handed out. int32 suffices: at most roomTicketsMax numbers.
type roomLine struct {
	t []int32 // t[0] unused; t[i] sums numbers (i-lowbit(i), i]
}

func roomLowbit(i int) int { return i & -i }

// size is the highest number in the tree.
func (f *roomLine) size() uint64 {
	if len(f.t) == 0 {
		return 0
	}
	return uint64(len(f.t) - 1)
}

// push appends the next number with value v.
func (f *roomLine) push(v int32) {
	if len(f.t) == 0 {
		f.t = append(f.t, 0)
	}
	i := len(f.t)
	// t[i] covers (i-lowbit(i), i]: v plus the nodes that tile
	// (i-roomLowbit(i), i-1].
	s := v
	for j := i - 1; j > i-roomLowbit(i); j -= roomLowbit(j) {
		s += f.t[j]
	}
	f.t = append(f.t, s)
}

// add adds d at number n (1-based).
func (f *roomLine) add(n uint64, d int32) {
	if n == 0 || n > f.size() {
		panic("roomLine.add: number out of range")
	}
	for i := int(n); i < len(f.t); i += roomLowbit(i) {
		f.t[i] += d
	}
}

// prefix sums numbers 1..n.
func (f *roomLine) prefix(n uint64) int64 {
	if n > f.size() {
		panic("roomLine.prefix: number out of range")
	}
	var s int64
	for i := int(n); i > 0; i -= roomLowbit(i) {
		s += int64(f.t[i])
	}
	return s
}

// roomAccessHeap is a min-heap of ticket indexes by AccessExpires, so that
// expire(now) finds the admissions whose access passed without a scan.
// Entries of tickets that stopped counting (done, left) stay until they
// reach the top and are dropped there; the heap is bounded by the tickets.
type roomAccessHeap struct {
	idx []uint32
	ts  *roomTickets
}

func (h *roomAccessHeap) less(a, b int) bool {
	return h.ts.at(h.idx[a]).AccessExpires < h.ts.at(h.idx[b]).AccessExpires
}

func (h *roomAccessHeap) push(i uint32) {
	h.idx = append(h.idx, i)
	for c := len(h.idx) - 1; c > 0; {
		p := (c - 1) / 2
		if !h.less(c, p) {
			break
		}
		h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
		c = p
	}
}

// top is the index of the earliest expiry; the heap must not be empty.
func (h *roomAccessHeap) top() uint32 { return h.idx[0] }

func (h *roomAccessHeap) pop() {
	last := len(h.idx) - 1
	h.idx[0] = h.idx[last]
	h.idx = h.idx[:last]
	for p := 0; ; {
		c := 2*p + 1
		if c >= last {
			break
		}
		if c+1 < last && h.less(c+1, c) {
			c++
		}
		if !h.less(c, p) {
			break
		}
		h.idx[c], h.idx[p] = h.idx[p], h.idx[c]
		p = c
	}
}
