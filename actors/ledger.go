package actors

import "sync"

// ledger counts, per buyer, the seats held plus the seats bought (and not
// cancelled) in one sale, so that max_per_buyer holds across all of its zones.
//
// Zones reserve against it before they hold (it is the seat core's
// seats.Allowance: DecideHold reserves and gives back what a refusal did not
// take), and the zone actor gives back what a release, expiry or cancel
// returned once its record is applied. The mutex is held for a map lookup
// and an add, never across I/O or a send, so zones never wait on each other
// for long. Because Reserve checks and adds under one lock, no interleaving
// of zones can take a buyer past the limit; TestEngineMaxPerBuyerConcurrent
// (engine_hold_test.go) drives that with concurrent zones.
type ledger struct {
	max int // max_per_buyer of the sale; fixed

	mu     sync.Mutex
	counts map[string]int // buyer -> seats held + bought; entries at 0 are deleted
}

func newLedger(max int) *ledger {
	return &ledger{max: max, counts: make(map[string]int)}
}

// Reserve takes n seats for buyer if that keeps them within the limit. It
// returns false and how many more they may take when it does not.
func (l *ledger) Reserve(buyer string, n int) (ok bool, remaining int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts[buyer]
	if c+n > l.max {
		return false, max(l.max-c, 0)
	}
	l.counts[buyer] = c + n
	return true, l.max - c - n
}

// Give returns n seats that buyer no longer holds or owns.
func (l *ledger) Give(buyer string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts[buyer] - n
	if c < 0 {
		panic("ledger: buyer " + buyer + " gives back more seats than reserved")
	}
	if c == 0 {
		delete(l.counts, buyer)
	} else {
		l.counts[buyer] = c
	}
}

// force adds n without checking the limit. Recovery uses it: what was durable
// before the crash was within the limit when it was taken.
func (l *ledger) force(buyer string, n int) {
	l.mu.Lock()
	l.counts[buyer] += n
	l.mu.Unlock()
}

// count reports buyer's seats held plus bought.
func (l *ledger) count(buyer string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[buyer]
}
