package httpapi

import (
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// liveHist is a latency histogram the alert rules read: fixed power-of-two
// buckets of atomic counters, so that the hot path pays one atomic add.
// Counts only grow; the evaluator takes the difference between ticks.
type liveHist struct {
	counts [liveBuckets]atomic.Uint64
}

// Buckets of liveHist: bucket i holds durations below liveBase<<i; the last
// one holds everything longer (liveBase<<(liveBuckets-2) is ~13 s).
const (
	liveBuckets = 20
	liveBase    = 50 * time.Microsecond
)

func (h *liveHist) observe(d time.Duration) {
	i := 0
	if d >= liveBase {
		i = bits.Len64(uint64(d / liveBase))
	}
	if i >= liveBuckets {
		i = liveBuckets - 1
	}
	h.counts[i].Add(1)
}

func (h *liveHist) load() (c [liveBuckets]uint64) {
	for i := range c {
		c[i] = h.counts[i].Load()
	}
	return c
}

// histWindow is a liveHist's last few ticks, to take a quantile over them.
// Owned by one reader (the alert evaluator, or the dashboard's frame maker);
// never read from another goroutine. Readers of one liveHist each keep
// their own window: the histogram only grows, so they never disturb it.
type histWindow struct {
	h    *liveHist
	last [liveBuckets]uint64
	ring [][liveBuckets]uint64 // per tick, a ring of the window's ticks
	next int
}

func newHistWindow(h *liveHist, ticks int) *histWindow {
	return &histWindow{h: h, last: h.load(), ring: make([][liveBuckets]uint64, ticks)}
}

// tick takes the counts since the last tick into the ring.
func (w *histWindow) tick() { w.advance(1) }

// advance moves the window on by ticks ticks at once, for a reader that
// missed some: the counts since the last tick go into the newest, the ones
// missed are empty. Counts from more ticks back than the ring holds are of
// an unknown time, maybe long before the window: they are dropped, and the
// window starts empty.
func (w *histWindow) advance(ticks int) {
	if ticks < 1 {
		panic(fmt.Sprintf("histWindow: advance by %d ticks", ticks))
	}
	cur := w.h.load()
	if ticks > len(w.ring) {
		w.last = cur
		clear(w.ring)
		return
	}
	for range ticks - 1 {
		w.ring[w.next] = [liveBuckets]uint64{}
		w.next = (w.next + 1) % len(w.ring)
	}
	var d [liveBuckets]uint64
	for i := range cur {
		d[i] = cur[i] - w.last[i]
	}
	w.last = cur
	w.ring[w.next] = d
	w.next = (w.next + 1) % len(w.ring)
}

// quantile is the upper bound of the bucket holding the q quantile of the
// last ticks ticks (at most the ring's), in seconds, and the number of
// samples; 0, 0 for none.
func (w *histWindow) quantile(q float64, ticks int) (float64, uint64) {
	var sum [liveBuckets]uint64
	var n uint64
	for k := range min(ticks, len(w.ring)) {
		d := &w.ring[(w.next-1-k+len(w.ring))%len(w.ring)]
		for i, c := range d {
			sum[i] += c
			n += c
		}
	}
	if n == 0 {
		return 0, 0
	}
	// Nearest rank: the smallest value with at least q of the samples at
	// or below it. With few samples the top ones count (the p99 of 50 is
	// the slowest), so a single slow request is not hidden.
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	var seen uint64
	for i, c := range sum {
		seen += c
		if seen >= rank {
			return (liveBase << i).Seconds(), n
		}
	}
	panic("histWindow: rank past the counts")
}

// counterWindow is a running total's last few ticks. Owned by the alert
// evaluator.
type counterWindow struct {
	read func() int64
	last int64
	ring []int64
	next int
}

func newCounterWindow(read func() int64) *counterWindow {
	return &counterWindow{read: read, last: read(), ring: make([]int64, alertWindowTicks)}
}

func (w *counterWindow) tick() {
	cur := w.read()
	w.ring[w.next] = cur - w.last
	w.last = cur
	w.next = (w.next + 1) % len(w.ring)
}

// sum is the total of the last ticks ticks, at most the ring's.
func (w *counterWindow) sum(ticks int) int64 {
	var s int64
	for k := range min(ticks, len(w.ring)) {
		s += w.ring[(w.next-1-k+len(w.ring))%len(w.ring)]
	}
	return s
}
