package actors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"onsale/actors/seats"
	"onsale/wal"
)

// Snapshots bound recovery time. Each state owner (a sale actor, a zone
// actor, a room actor) serializes its whole state inside its Receive, then
// appends a marker record. Every record the owner appended before the marker
// is in the serialized state, and every later one has a higher sequence, so
// the snapshot file is written with the marker's sequence: replay skips the
// owner's records up to it. Once every owner has a snapshot, the log is
// truncated in front of the lowest of their sequences.

// snapshotWaitMax bounds how long a snapshot waits for the owners; a 1,000,000
// seat zone serializes in well under a second.
const snapshotWaitMax = 60 * time.Second

// snapPart is one owner's state and the sequence that it covers.
type snapPart struct {
	name string
	data []byte
	seq  uint64
	err  error
}

func saleSnapName(s *Sale) string                 { return fmt.Sprintf("s%05d", s.idx) }
func zoneSnapName(s *Sale, zh *zoneHandle) string { return fmt.Sprintf("s%05d-z%03d", s.idx, zh.idx) }
func roomSnapName(s *Sale) string                 { return fmt.Sprintf("s%05d-room", s.idx) }

// Snapshot writes every sale's state and truncates the log in front of it.
func (e *Engine) Snapshot() error {
	if err := e.Err(); err != nil {
		// A failed engine's state may lack records it was handed (a
		// follower's copy that timed out applying one): never written
		// where a rebuild, or a cluster's snapshot, would trust it.
		return fmt.Errorf("snapshot: the engine stopped: %w", err)
	}
	e.create.Lock() // a sale created meanwhile would have no snapshot yet
	defer e.create.Unlock()
	sales := e.Sales()
	owners := 0
	for _, s := range sales {
		owners += 2 + len(s.zones)
	}
	if owners == 0 {
		return nil
	}
	// Buffered for every owner, so that the log writer's callback never blocks.
	parts := make(chan snapPart, owners)
	for _, s := range sales {
		e.sys.Root.Send(s.pid, &snapCmd{reply: parts})
		e.sys.Root.Send(s.room.pid, &snapCmd{reply: parts})
		for _, zh := range s.zones {
			e.sys.Root.Send(zh.pid, &snapCmd{reply: parts})
		}
	}
	timeout := time.NewTimer(snapshotWaitMax)
	defer timeout.Stop()
	var minSeq uint64
	for i := 0; i < owners; i++ {
		var p snapPart
		select {
		case p = <-parts:
		case <-timeout.C:
			return fmt.Errorf("snapshot: %d of %d owners did not answer within %s", owners-i, owners, snapshotWaitMax)
		}
		if p.err != nil {
			return fmt.Errorf("snapshot %s: %w", p.name, p.err)
		}
		// A cluster node may have put a newer file there (a snapshot it
		// installed from the leader while this engine lagged): kept.
		if _, err := wal.WriteSnapshotIfNewer(e.snapDir, p.name, p.seq, p.data); err != nil {
			return fmt.Errorf("snapshot %s: %w", p.name, err)
		}
		if minSeq == 0 || p.seq < minSeq {
			minSeq = p.seq
		}
	}
	if minSeq > e.log.FirstSeq() {
		if err := e.log.TruncateFront(minSeq); err != nil {
			return fmt.Errorf("truncate log before %d: %w", minSeq, err)
		}
	}
	e.lastSnap.Store(minSeq)
	return nil
}

// sendSnapshot appends the marker for an owner's serialized state and sends
// the part once the marker is durable.
//
// A follower's engine writes no record: its part is at the last record of
// this owner it applied (see ownerLog.followed), which every later record
// of the owner comes after.
func sendSnapshot(e *Engine, o *ownerLog, sale, zone, name string, data []byte, reply chan snapPart) {
	if e.cfg.Follower {
		// Every record up to followDone is applied, and this owner's
		// records after its own last one are all later: an owner with no
		// records for long is still cut near the present.
		reply <- snapPart{name: name, data: data, seq: max(o.followed, e.followDone.Load())}
		return
	}
	ev := &wal.Event{Type: wal.TypeMarker, Sale: sale, Zone: zone, At: e.nowMs()}
	if err := e.log.Append(ev, func(seq uint64, err error) {
		reply <- snapPart{name: name, data: data, seq: seq, err: err}
	}); err != nil {
		reply <- snapPart{name: name, err: err}
	}
}

func (a *saleActor) snapshot(m *snapCmd) {
	s := a.s
	rec := saleRecord{Def: s.def, Idx: s.idx, Seed: fmt.Sprintf("%x", s.seed[:]), CreatedAt: s.createdAt, Paused: a.paused}
	data, err := json.Marshal(rec)
	if err != nil {
		m.reply <- snapPart{name: saleSnapName(s), err: err}
		return
	}
	sendSnapshot(s.e, &a.log, s.def.ID, "", saleSnapName(s), data, m.reply)
}

// zoneSnapshotVersion is the first byte of a zone snapshot file's data.
const zoneSnapshotVersion = 1

func (a *zoneActor) snapshot(m *snapCmd) {
	s := a.s
	now := s.e.nowMs()
	fails := make([]idemFail, 0, len(a.idemFails))
	for k, f := range a.idemFails {
		if now-f.At > idemRetention.Milliseconds() {
			delete(a.idemFails, k) // past retention: dropped here, the one place that rewrites them
			continue
		}
		fails = append(fails, f)
	}
	js, err := json.Marshal(fails)
	if err != nil {
		m.reply <- snapPart{name: zoneSnapName(s, a.zh), err: err}
		return
	}
	core := a.z.AppendSnapshot(nil)
	data := make([]byte, 0, 1+binary.MaxVarintLen64+len(core)+len(js))
	data = append(data, zoneSnapshotVersion)
	data = binary.AppendUvarint(data, uint64(len(core)))
	data = append(data, core...)
	data = append(data, js...)
	sendSnapshot(s.e, &a.log, s.def.ID, a.zh.def.ID, zoneSnapName(s, a.zh), data, m.reply)
}

// restore rebuilds a zone handle's core (of sale) and stored refusals from
// snapshot data.
func (zh *zoneHandle) restore(sale string, data []byte) error {
	if len(data) == 0 || data[0] != zoneSnapshotVersion {
		return fmt.Errorf("unknown zone snapshot version")
	}
	n, k := binary.Uvarint(data[1:])
	if k <= 0 || n > uint64(len(data)-1-k) {
		return fmt.Errorf("zone snapshot length is corrupt")
	}
	core := data[1+k : 1+k+int(n)]
	z, err := seats.RestoreZone(sale, *zh.def, core)
	if err != nil {
		return err
	}
	var fails []idemFail
	if err := json.Unmarshal(data[1+k+int(n):], &fails); err != nil {
		return fmt.Errorf("zone snapshot stored answers: %w", err)
	}
	zh.core = z
	zh.idemFails = make(map[idemKey]idemFail, len(fails))
	for _, f := range fails {
		zh.idemFails[idemKey{buyer: f.Buyer, scope: f.Scope, key: f.Key}] = f
	}
	return nil
}
