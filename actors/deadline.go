package actors

import (
	"sync"
	"time"
)

// Callers wait for answers with a timeout that only matters when something
// is badly wrong, yet a timer per request was a tenth of the engine's
// allocations under load. Waits share coarse deadlines instead: a channel
// per deadlineGranularity slot, closed once the slot has passed, so a wait
// costs a map lookup and times out up to one slot late.

// deadlineGranularity is how late a timeout may fire.
const deadlineGranularity = 50 * time.Millisecond

var deadlines struct {
	once  sync.Once
	mu    sync.Mutex              // a leaf (see Engine): nothing is taken under it
	slots map[int64]chan struct{} // slot number -> closed when it has passed
}

// after returns a channel closed no earlier than d from now and at most
// deadlineGranularity later.
func after(d time.Duration) <-chan struct{} {
	deadlines.once.Do(startDeadlines)
	slot := (time.Now().Add(d).UnixNano() + int64(deadlineGranularity) - 1) / int64(deadlineGranularity)
	deadlines.mu.Lock()
	ch := deadlines.slots[slot]
	if ch == nil {
		ch = make(chan struct{})
		deadlines.slots[slot] = ch
	}
	deadlines.mu.Unlock()
	return ch
}

// startDeadlines starts the one goroutine that closes passed slots. It runs
// for the life of the process; there are at most timeout/granularity slots.
func startDeadlines() {
	deadlines.slots = make(map[int64]chan struct{})
	go func() {
		t := time.NewTicker(deadlineGranularity)
		defer t.Stop()
		for now := range t.C {
			cur := now.UnixNano() / int64(deadlineGranularity)
			deadlines.mu.Lock()
			for slot, ch := range deadlines.slots {
				if slot <= cur {
					close(ch)
					delete(deadlines.slots, slot)
				}
			}
			deadlines.mu.Unlock()
		}
	}()
}
