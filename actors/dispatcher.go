package actors

import "sync"

// pinnedDispatcher runs an actor's mailbox on one long-lived goroutine
// instead of protoactor's default of a new goroutine each time the mailbox
// wakes. A busy zone wakes thousands of times a second; each fresh goroutine
// started with a small stack and grew it again (copystack was a tenth of the
// engine's CPU under load), and each start cost a scheduling round trip.
type pinnedDispatcher struct {
	work chan func()
}

// pinnedThroughput is how many messages a mailbox handles before it yields
// the processor: protoactor's default.
const pinnedThroughput = 300

// newPinnedDispatcher starts the dispatcher's goroutine; stop ends it.
func newPinnedDispatcher(wg *sync.WaitGroup) *pinnedDispatcher {
	// A mailbox schedules only on its idle-to-running transition, and only
	// a running mailbox sets it idle again, so at most one run waits while
	// another finishes: two slots never block a sender.
	d := &pinnedDispatcher{work: make(chan func(), 2)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for fn := range d.work {
			fn()
		}
	}()
	return d
}

func (d *pinnedDispatcher) Schedule(fn func()) { d.work <- fn }

func (d *pinnedDispatcher) Throughput() int { return pinnedThroughput }

// stop ends the goroutine once the actor has stopped: nothing schedules on
// it after that.
func (d *pinnedDispatcher) stop() { close(d.work) }
