package httpapi

import (
	"sync"
	"sync/atomic"
	"time"

	"onsale/wal/raftlog"
)

// The leader's answers that no record of their own made durable (reads,
// refusals, not found) come from its memory, which is the cluster's state
// only while no other node leads. A leader paused (SIGSTOP) past an
// election answers from stale memory for the moment it takes to learn of
// the new term. So such an answer is sent only once leadership is
// confirmed at or after the time it was made: by a lease (a Verify that
// started before the request and less than raftlog.Lease ago), or else
// by the next Verify round. A write's 2xx needs none: it was committed by
// a majority, or it repeats an answer that was.

// confirmer runs Verify rounds while this node leads.
type confirmer struct {
	mu     sync.Mutex
	okAt   time.Time     // start of the last successful round
	okOf   uint64        // the leadership (cluster.epoch) that round ran in
	start  time.Time     // start of the round running now (zero: none)
	done   chan struct{} // closed when that round ends
	demand chan struct{} // capacity 1: a request waits for a round
	// needed is when an answer last asked for a confirmation (unix ns):
	// the ticked rounds run only while answers need them, so an idle
	// leader adds no entries to the log.
	needed atomic.Int64
}

func newConfirmer() *confirmer {
	return &confirmer{demand: make(chan struct{}, 1)}
}

// confirmEvery spaces the rounds while nobody waits, to keep the lease
// fresh for the fast path: each one commits an empty entry.
const confirmEvery = 100 * time.Millisecond

// confirmIdleAfter: with no answer asking for this long, the ticked rounds
// pause (the first answer after waits for one round).
const confirmIdleAfter = 2 * time.Second

// confirmWaitMax bounds a request's wait for a round.
const confirmWaitMax = time.Second

// runConfirm runs rounds for the leadership epoch until stop closes.
func (c *cluster) runConfirm(stop <-chan struct{}, epoch uint64) {
	cf := c.confirm
	t := time.NewTicker(confirmEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if time.Since(time.Unix(0, cf.needed.Load())) > confirmIdleAfter {
				continue
			}
		case <-cf.demand:
		}
		cf.mu.Lock()
		start, done := time.Now(), make(chan struct{})
		cf.start, cf.done = start, done
		cf.mu.Unlock()
		err := c.node.Verify()
		cf.mu.Lock()
		if err == nil {
			cf.okAt, cf.okOf = start, epoch
		}
		cf.start, cf.done = time.Time{}, nil
		cf.mu.Unlock()
		close(done)
	}
}

// confirmed reports whether an answer made by now, in leadership epoch (read
// before the request was routed), may be sent as this cluster's: this node
// led when it was made, in that leadership. A round of a later leadership
// proves nothing of an engine dropped before it.
func (c *cluster) confirmed(epoch uint64) bool {
	cf := c.confirm
	// The answer was made by now. A round that succeeded proves this node
	// led up to its start (a majority was still in its term) and, by the
	// lease, for raftlog.Lease after: so one that started no earlier than
	// Lease before now covers the answer, whenever it was made.
	made := time.Now()
	cf.needed.Store(made.UnixNano())
	deadline := made.Add(confirmWaitMax)
	for {
		cf.mu.Lock()
		okAt, okOf, start, done := cf.okAt, cf.okOf, cf.start, cf.done
		cf.mu.Unlock()
		if c.epoch.Load() != epoch {
			return false
		}
		if okOf == epoch && !okAt.IsZero() && okAt.Add(raftlog.Lease).After(made) {
			return true
		}
		if !c.leading.Load() || time.Now().After(deadline) {
			return false
		}
		if done == nil || start.Before(made) {
			select {
			case cf.demand <- struct{}{}:
			default:
			}
		}
		wait := done
		if wait == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		select {
		case <-wait:
		case <-time.After(time.Until(deadline)):
		}
	}
}
