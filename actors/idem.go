package actors

import (
	"sync"

	"onsale/actors/seats"
	"time"
)

// A call is one engine request waiting for its answer. The answer is set once,
// after what it says is durable, by whichever goroutine learns it (usually the
// log writer's callback), and done is closed. Callers wait on done with a
// timeout; a duplicate request with the same idempotency key waits on the same
// call.
type call struct {
	done chan struct{}
	res  Result

	zseq uint64 // set by the zone actor that handles the request

	// Idempotency, zero when the request carried no key.
	key  idemKey
	hash uint64
	at   int64 // unix ms of the first request, for retention
}

// Result is an engine answer: one of Hold or Order, or Err.
type Result struct {
	Hold   *HoldView    `json:"hold,omitempty"`
	Order  *OrderView   `json:"order,omitempty"`
	Ticket *QueueTicket `json:"ticket,omitempty"`

	// zseq is the position of the request in its zone actor's mailbox order
	// (0 outside zones): tests check answers against a sequential model
	// replayed in that order.
	zseq uint64
	Err  *Error `json:"err,omitempty"`

	// pay is the attempt a checkout's begin answers; cancelling tells the
	// cancel that its begin answered to refund and record.
	pay        *seats.Payment
	cancelling bool
}

func newCall() *call { return &call{done: make(chan struct{})} }

// finish sets the answer and wakes the waiters. It must be called once.
func (c *call) finish(r Result) {
	c.res = r
	c.res.zseq = c.zseq
	close(c.done)
}

// Wait returns the answer, or a CodeUnavailable error when it did not come
// within d: the outcome is then unknown, and a retry with the same
// idempotency key is the way to learn it.
func (c *call) wait(d time.Duration) Result {
	select {
	case <-c.done:
		return c.res
	default:
	}
	select {
	case <-c.done:
		return c.res
	case <-after(d):
		return Result{Err: errorf(CodeUnavailable, "the server did not answer in time; retry with the same Idempotency-Key")}
	}
}

type idemScope uint8

const (
	scopeHold     idemScope = 1
	scopeCheckout idemScope = 2
)

type idemKey struct {
	buyer string
	scope idemScope
	key   string
}

// idemRetention is how long an answer is kept for retries: API.md promises
// at least 24 hours. The table is swept at every tick; stored refusals are
// dropped from snapshots after it; answers of successful holds and checkouts
// are rebuilt from the holds at recovery, if younger than it.
const idemRetention = 24 * time.Hour

// idemTable maps (buyer, endpoint, key) to the call that answered it first.
// One per sale, shared by its zone actors and the HTTP edge; the mutex covers a
// map operation only.
type idemTable struct {
	mu sync.Mutex
	m  map[idemKey]*call
	// order lists the keys by when they were first used, from head on, so
	// that sweep drops expired answers without scanning the whole map.
	order []idemKey
	head  int
}

// idemSweepMax bounds the keys one sweep looks at, so that the mutex is
// never held for long; the engine sweeps at every tick.
const idemSweepMax = 10_000

// sweep forgets answers first given before cutoff (unix ms), oldest first,
// looking at most at idemSweepMax keys.
func (t *idemTable) sweep(cutoff int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n := 0; n < idemSweepMax && t.head < len(t.order); n++ {
		k := t.order[t.head]
		if c, ok := t.m[k]; ok {
			if c.at >= cutoff {
				break
			}
			select {
			case <-c.done:
				delete(t.m, k)
			default:
				return // still in flight: it finishes within a call timeout
			}
		}
		t.order[t.head] = idemKey{}
		t.head++
	}
	if t.head > len(t.order)/2 {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

func newIdemTable() *idemTable { return &idemTable{m: make(map[idemKey]*call)} }

// begin returns the call for k: fresh when this is the first request with
// that key (the caller must then send it on and finish it), the existing one
// otherwise. A key reused with another request body is refused.
func (t *idemTable) begin(k idemKey, hash uint64, now int64) (c *call, fresh bool, err *Error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.m[k]; ok {
		if old.hash != hash {
			return nil, false, errorf(CodeIdemReused, "this Idempotency-Key was used with a different request; use a new key for a new request")
		}
		return old, false, nil
	}
	c = &call{done: make(chan struct{}), key: k, hash: hash, at: now}
	t.m[k] = c
	t.order = append(t.order, k)
	return c, true, nil
}

// forget drops k, so that a retry runs again: used for answers that API.md
// says are not stored (429 and 5xx).
func (t *idemTable) forget(c *call) {
	t.mu.Lock()
	if t.m[c.key] == c {
		delete(t.m, c.key)
	}
	t.mu.Unlock()
}

// put records a finished answer during recovery.
func (t *idemTable) put(k idemKey, hash uint64, at int64, r Result) {
	c := &call{done: make(chan struct{}), key: k, hash: hash, at: at, res: r}
	close(c.done)
	t.mu.Lock()
	if _, ok := t.m[k]; !ok {
		t.order = append(t.order, k)
	}
	t.m[k] = c
	t.mu.Unlock()
}

// storable reports whether an answer is kept for retries: API.md stores 2xx
// and 4xx answers, not 429 and 5xx.
func storable(r Result) bool {
	if r.Err == nil {
		return true
	}
	switch r.Err.Code {
	case CodeUnavailable, CodeStorageUnavailable, CodeSalePaused, CodePaymentDown:
		return false
	}
	return true
}
