package actors

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"onsale/wal"
)

// A follower's engine (Config.Follower) keeps a cluster leader's state for
// reads. It is built like any engine, from its snapshot files and its
// journal, then Follow hands it each record the leader commits, in log
// order, and the owning actor applies it with the functions recovery and
// the leader use. As in recovery, a record an owner's snapshot already
// holds is skipped: after a restart Raft applies the log from its newest
// snapshot on, behind the snapshot files this node wrote since.

// followMsg is one committed record for a zone or room actor to apply;
// done is signalled once it is applied and published.
type followMsg struct {
	seq  uint64
	ev   *wal.Event
	done chan struct{}
}

// Follow applies one committed record and returns once readers see it; call
// it from one goroutine, in log order, only on a follower's engine. ev must
// not be reused. Waiting per record keeps "applied up to index N" true of
// what this engine answers, so that a follower can wait for a write it
// forwarded before it answers, and the buyer's next read here sees it.
func (e *Engine) Follow(seq uint64, ev *wal.Event) {
	if !e.cfg.Follower {
		panic("Follow on an engine that decides")
	}
	defer e.followDone.Store(seq)
	switch ev.Type {
	case wal.TypeMarker:
		return
	case wal.TypeSaleCreated:
		e.followSale(seq, ev)
		return
	}
	s, ok := e.Sale(ev.Sale)
	if !ok {
		e.fatal(fmt.Errorf("follow record %d: %s for unknown sale %q", seq, ev.Type, ev.Sale))
		return
	}
	switch ev.Type {
	case wal.TypeSalePaused, wal.TypeSaleResumed:
		if seq <= s.snapSeq {
			return // in the snapshot this engine was built from
		}
		c := newCall()
		e.sys.Root.Send(s.pid, followPauseMsg{seq: seq, paused: ev.Type == wal.TypeSalePaused, c: c})
		if r := c.wait(e.cfg.CallTimeout); r.Err != nil {
			e.fatal(fmt.Errorf("follow record %d (%s): %s", seq, ev.Type, r.Err.Message))
		}
		return
	case wal.TypeQueueJoined, wal.TypeQueueAdmitted, wal.TypeQueueLeft, wal.TypeQueueDrawn, wal.TypeQueueDone:
		if seq > s.room.snapSeq {
			e.followAt(s.room.pid, seq, ev)
		}
		return
	}
	zh, ok := s.zoneByID[ev.Zone]
	if !ok {
		e.fatal(fmt.Errorf("follow record %d: %s for unknown zone %q of sale %q", seq, ev.Type, ev.Zone, ev.Sale))
		return
	}
	if seq > zh.snapSeq {
		e.followAt(zh.pid, seq, ev)
	}
}

// followAt has the actor at pid apply the record and waits until it has,
// or until the engine stops.
func (e *Engine) followAt(pid *actor.PID, seq uint64, ev *wal.Event) {
	// A channel per record: the signal of one that timed out and was
	// applied late can never stand for the next.
	done := make(chan struct{}, 1)
	e.sys.Root.Send(pid, followMsg{seq: seq, ev: ev, done: done})
	t := time.NewTimer(e.cfg.CallTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-e.stop:
	case <-t.C:
		// A lost message (the actor failed) would hold Raft's apply loop
		// for good: this copy stops instead, and the node builds another.
		e.fatal(fmt.Errorf("follow record %d (%s): its actor did not apply it within %s", seq, ev.Type, e.cfg.CallTimeout))
	}
}

// followSale creates a sale the leader created, and starts its actors.
func (e *Engine) followSale(seq uint64, ev *wal.Event) {
	if _, ok := e.Sale(ev.Sale); ok {
		return
	}
	var rec saleRecord
	if err := json.Unmarshal(ev.Blob, &rec); err != nil {
		e.fatal(fmt.Errorf("follow record %d: sale_created %q: %w", seq, ev.Sale, err))
		return
	}
	e.create.Lock()
	defer e.create.Unlock()
	s, err := e.newSale(rec)
	if err != nil {
		e.fatal(fmt.Errorf("follow record %d: %w", seq, err))
		return
	}
	e.spawn(s)
	e.register(s)
}

// follow applies a record of this zone that the leader committed, as
// recovery does: the stored refusals, the core, the ended holds past their
// retention; then publishes and counts it.
func (a *zoneActor) follow(m followMsg) {
	defer m.followed()
	seq, ev := m.seq, m.ev
	if ev.Type == wal.TypeIdemResult {
		var f idemFail
		if err := json.Unmarshal(ev.Blob, &f); err != nil {
			a.s.e.fatal(fmt.Errorf("zone %s/%s: follow record %d: %w", a.s.def.ID, a.zh.def.ID, seq, err))
			return
		}
		a.idemFails[idemKey{buyer: f.Buyer, scope: f.Scope, key: f.Key}] = f
		a.log.followed = seq
		return
	}
	a.zh.replayClock = max(a.zh.replayClock, ev.At)
	a.z.DropEnded(a.zh.replayClock-a.s.e.cfg.HoldRetention.Milliseconds(), math.MaxInt)
	if err := a.z.Apply(ev); err != nil {
		a.s.e.fatal(fmt.Errorf("zone %s/%s: follow record %d (%s): %w", a.s.def.ID, a.zh.def.ID, seq, ev.Type, err))
		return
	}
	a.stampRows(ev)
	a.publish()
	a.log.followed = seq
	switch ev.Type {
	case wal.TypeHoldPlaced:
		a.s.holdsPlaced.Add(1)
		a.s.seatsHeld.Add(int64(len(ev.Seats)))
	case wal.TypeHoldExpired:
		a.s.holdsExpired.Add(1)
	}
}

// followPauseMsg is a committed pause or resume for the sale actor, which
// keeps it for its snapshot and passes it to the room; c is finished once
// the room has published it.
type followPauseMsg struct {
	seq    uint64
	paused bool
	c      *call
}

func (a *saleActor) followPause(m followPauseMsg) {
	a.paused = m.paused
	a.log.followed = m.seq
	a.s.e.sys.Root.Send(a.s.room.pid, roomPauseMsg{paused: m.paused, c: m.c})
}

// followed tells Follow that its record is applied.
func (m followMsg) followed() {
	if m.done != nil {
		m.done <- struct{}{}
	}
}
