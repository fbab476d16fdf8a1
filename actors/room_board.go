package actors

import (
	"hash/maphash"
	"sync"
	"time"

	"onsale/actors/line"
)

// The waiting room's read side: what buyers' polls and event streams read
// without a message to the room actor.
//
// The room actor applies its decisions once the log accepts them, but a
// buyer must never be told what a crash could undo (an admission, a place).
// So the actor prepares what to publish after each change (the room's View
// and a copy of each ticket the change touched) and the publisher makes it
// visible once every record before it is durable. Prepared publications are
// applied in the order they were made, whichever barrier fires first.

// roomBoardShards spreads the tickets over locks: polls read in parallel
// with the publisher writing.
const roomBoardShards = 64

// roomBoard maps queue ids to the latest durable copy of each ticket. A copy
// is never changed once stored, only replaced, so a reader needs the shard's
// lock only for the map lookup. About 130 bytes a ticket with its map entry.
type roomBoard struct {
	seed   maphash.Seed
	shards [roomBoardShards]roomBoardShard
}

type roomBoardShard struct {
	mu sync.RWMutex
	m  map[string]*line.Ticket
}

func newRoomBoard() *roomBoard {
	b := &roomBoard{seed: maphash.MakeSeed()}
	for i := range b.shards {
		b.shards[i].m = make(map[string]*line.Ticket)
	}
	return b
}

func (b *roomBoard) shard(id string) *roomBoardShard {
	return &b.shards[maphash.String(b.seed, id)%roomBoardShards]
}

// get is the latest durable copy of the ticket, or nil.
func (b *roomBoard) get(queueID string) *line.Ticket {
	sh := b.shard(queueID)
	sh.mu.RLock()
	t := sh.m[queueID]
	sh.mu.RUnlock()
	return t
}

func (b *roomBoard) put(t *line.Ticket) {
	sh := b.shard(t.QueueID)
	sh.mu.Lock()
	sh.m[t.QueueID] = t
	sh.mu.Unlock()
}

// roomPublication is one change made visible: the View and the tickets.
type roomPublication struct {
	gen     uint64
	view    *line.View
	tickets []*line.Ticket
}

// roomPublisher applies prepared publications in order. The room actor
// queues them (prepare) and registers a log barrier for each; the barrier's
// callback applies every publication up to its own, so that one whose
// barrier fires late never overwrites a newer one.
type roomPublisher struct {
	rh *roomHandle

	mu      sync.Mutex
	queue   []*roomPublication // prepared, not yet applied, in gen order
	nextGen uint64
}

// prepare queues a publication; the caller makes it visible with apply(gen)
// once its records are durable.
func (p *roomPublisher) prepare(v *line.View, tickets []*line.Ticket) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextGen++
	p.queue = append(p.queue, &roomPublication{gen: p.nextGen, view: v, tickets: tickets})
	return p.nextGen
}

// replaceLast puts v in the place of the newest queued publication's View,
// when one is queued: for a change that appended no record and changed no
// ticket, its barrier covers v just as well, and an outage (when every
// barrier waits) does not queue a publication a tick.
func (p *roomPublisher) replaceLast(v *line.View) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return false
	}
	p.queue[len(p.queue)-1].view = v
	return true
}

// apply makes every queued publication up to gen visible, oldest first,
// then wakes the streams they concern.
func (p *roomPublisher) apply(gen uint64) {
	p.mu.Lock()
	n := 0
	for n < len(p.queue) && p.queue[n].gen <= gen {
		n++
	}
	if n == 0 {
		p.mu.Unlock()
		return
	}
	done := p.queue[:n:n]
	p.queue = p.queue[n:]
	if len(p.queue) == 0 {
		p.queue = nil // let the backing array go
	}
	for _, pub := range done {
		for _, t := range pub.tickets {
			p.rh.board.put(t)
		}
	}
	last := done[len(done)-1].view
	p.rh.published.Store(last)
	p.mu.Unlock()
	// Streams are woken outside the lock: the hub has its own.
	for _, pub := range done {
		for _, t := range pub.tickets {
			p.rh.hub.ticket(t.QueueID)
		}
	}
	p.rh.hub.view(last)
}

// Line moves reach the streams at most this often: a position read once a
// second is as fresh as a person reads, and a tick every 100 ms would
// otherwise wake every waiting stream ten times a second. A change of state
// (admitted, sold out, paused, the draw) is pushed at once.
const roomHubMoveEvery = time.Second

// roomHub wakes event streams: one that watches a ticket when that ticket
// changes, all of them when the line's state changes, and all of them at
// most once per roomHubMoveEvery when the line moves.
type roomHub struct {
	mu      sync.Mutex
	watches map[string][]*Watch // by queue id; bounded by open connections
	bcast   chan struct{}       // closed and replaced on each broadcast
	// What the last broadcast showed.
	state    string
	soldOut  bool
	paused   bool
	drawn    bool
	serving  uint64
	movedAt  time.Time
	watching int
}

func newRoomHub() *roomHub {
	return &roomHub{watches: make(map[string][]*Watch), bcast: make(chan struct{})}
}

// Watch is one event stream's subscription to its ticket.
type Watch struct {
	h  *roomHub
	id string
	// C receives (without blocking the sender) when the ticket changed.
	C chan struct{}
}

// Watch subscribes to changes of a place in line: Changed fires when the
// ticket changes, Broadcast's channel closes when the whole line changes.
// Close it when the stream ends.
func (s *Sale) Watch(queueID string) *Watch {
	h := s.room.hub
	w := &Watch{h: h, id: queueID, C: make(chan struct{}, 1)}
	h.mu.Lock()
	h.watches[queueID] = append(h.watches[queueID], w)
	h.watching++
	h.mu.Unlock()
	return w
}

// Broadcast is closed at the next change of the whole line. Take it before
// reading the state, so that no change between the read and the wait is
// missed.
func (w *Watch) Broadcast() <-chan struct{} {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	return w.h.bcast
}

// Close ends the subscription.
func (w *Watch) Close() {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.watches[w.id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			h.watching--
			break
		}
	}
	if len(ws) == 0 {
		delete(h.watches, w.id)
	} else {
		h.watches[w.id] = ws
	}
}

// ticket wakes the streams of one queue id.
func (h *roomHub) ticket(queueID string) {
	h.mu.Lock()
	for _, w := range h.watches[queueID] {
		select {
		case w.C <- struct{}{}:
		default:
		}
	}
	h.mu.Unlock()
}

// view broadcasts a new View if its state changed, or if the line moved and
// the last broadcast is roomHubMoveEvery old.
func (h *roomHub) view(v *line.View) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	changed := v.State != h.state || v.SoldOut != h.soldOut || v.Paused != h.paused || v.Drawn != h.drawn
	moved := v.Serving != h.serving && now.Sub(h.movedAt) >= roomHubMoveEvery
	if !changed && !moved {
		return
	}
	h.state, h.soldOut, h.paused, h.drawn, h.serving, h.movedAt = v.State, v.SoldOut, v.Paused, v.Drawn, v.Serving, now
	close(h.bcast)
	h.bcast = make(chan struct{})
}

// Watching is how many event streams are subscribed.
func (s *Sale) Watching() int {
	h := s.room.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.watching
}
