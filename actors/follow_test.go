package actors

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/wal"
)

// followJournal is a follower's journal with nothing to replay: the engine
// is built from the snapshot files alone.
type followJournal struct{}

func (followJournal) Append(*wal.Event, func(uint64, error)) error        { return wal.ErrNotLeader }
func (followJournal) Barrier(done func(error))                            { done(nil) }
func (followJournal) Err() error                                          { return nil }
func (followJournal) Unavailable() error                                  { return wal.ErrNotLeader }
func (followJournal) FirstSeq() uint64                                    { return 1 }
func (followJournal) LastSeq() uint64                                     { return 0 }
func (followJournal) TruncateFront(uint64) error                          { return nil }
func (followJournal) Replay(uint64, func(uint64, *wal.Event) error) error { return nil }
func (followJournal) Start()                                              {}
func (followJournal) Close() error                                        { return nil }

// loggedRecord is a record of the log, copied out of the replay's buffers.
type loggedRecord struct {
	seq uint64
	ev  wal.Event
}

// loggedRecords reads every record of the log in dir, as Raft would hand
// them to a follower.
func loggedRecords(t testing.TB, dir string) []loggedRecord {
	var recs []loggedRecord
	replayLog(t, dir, func(seq uint64, ev *wal.Event) {
		c := *ev
		c.Seats = append([]uint32(nil), ev.Seats...)
		c.Blob = append([]byte(nil), ev.Blob...)
		recs = append(recs, loggedRecord{seq, c})
	})
	return recs
}

// TestFollowSkipsWhatTheSnapshotHolds: a node that led and wrote snapshots
// restarts as a follower, and Raft hands it the log again from its first
// record. The records its snapshots hold must be skipped, as recovery
// skips them, not applied twice (a second draw, a second hold of the same
// seats: a fatal error at every restart).
func TestFollowSkipsWhatTheSnapshotHolds(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	h.close()
	recs := loggedRecords(t, h.dir)
	h.open()
	want := h.e.Sales()[0].Counts()
	requireNoError(t, h.e.Snapshot(), "snapshot")
	h.close()

	var mu sync.Mutex
	var fatal error
	e, err := Open(Config{Dir: h.dir, NoSync: true, Now: h.clock.Now, Journal: followJournal{}, Follower: true,
		Fatal: func(err error) { mu.Lock(); fatal = err; mu.Unlock() }})
	requireNoError(t, err, "open the follower")
	defer e.Close()
	for _, r := range recs {
		ev := r.ev
		e.Follow(r.seq, &ev)
	}
	mu.Lock()
	defer mu.Unlock()
	if fatal != nil {
		t.Fatalf("following records the snapshot holds: %v", fatal)
	}
	if got := e.Sales()[0].Counts(); len(got) != len(want) || got[0] != want[0] {
		t.Fatalf("counts after following the log again: %+v, want %+v", got, want)
	}
}

// TestFollowerSnapshot: a follower's engine cuts its own snapshots at the
// last record of each owner it applied; one rebuilt from them, with the
// log handed over again from its start, ends where the leader is, pause
// included.
func TestFollowerSnapshot(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 1})
	if r := s.SetPaused(true); r.Err != nil {
		t.Fatal(r.Err)
	}
	want := s.Counts()
	h.close()
	recs := loggedRecords(t, h.dir)
	follower := func(dir string, n int) (*Engine, func() error) {
		var mu sync.Mutex
		var fatal error
		e, err := Open(Config{Dir: dir, NoSync: true, Now: h.clock.Now, Journal: followJournal{}, Follower: true,
			Fatal: func(err error) { mu.Lock(); fatal = err; mu.Unlock() }})
		requireNoError(t, err, "open a follower")
		for _, r := range recs[:n] {
			ev := r.ev
			e.Follow(r.seq, &ev)
		}
		return e, func() error { mu.Lock(); defer mu.Unlock(); return fatal }
	}
	for _, r := range recs[len(recs)-2:] {
		t.Logf("after the first snapshot: %d %s", r.seq, r.ev.Type)
	}
	// The first follower stops after the first hold, short of the second
	// and of the pause: a snapshot cut too late would lose them, one cut
	// too early would apply the first hold twice.
	dir := t.TempDir()
	e, fatal := follower(dir, len(recs)-2)
	requireNoError(t, e.Snapshot(), "the follower's snapshot")
	if err := fatal(); err != nil {
		t.Fatalf("first follower: %v", err)
	}
	requireNoError(t, e.Close(), "close")

	e, fatal = follower(dir, len(recs)) // from its snapshots, then the whole log again
	defer e.Close()
	if err := fatal(); err != nil {
		t.Fatalf("follower rebuilt from its snapshots: %v", err)
	}
	got := e.Sales()[0]
	if c := got.Counts(); len(c) != len(want) || c[0] != want[0] {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	if !got.Paused() {
		t.Fatal("the pause was lost in the follower's snapshot")
	}
}

// countingJournal is a followJournal whose last sequence moves as records
// are followed, as a Replica's does.
type countingJournal struct {
	followJournal
	last atomic.Uint64
}

func (j *countingJournal) LastSeq() uint64 { return j.last.Load() }

// TestFollowerSnapshotsSettle: a follower's owners that get no records of
// their own (the sale and the room here, while holds arrive) are cut near
// the present too, so one snapshot covers the records and the next tick
// finds nothing to do, instead of rewriting every file every tick.
func TestFollowerSnapshotsSettle(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	for i := range 15 {
		mustHold(t, s, HoldRequest{Buyer: fmt.Sprintf("b%d", i), Zone: "ga", Quantity: 1})
	}
	h.close()
	recs := loggedRecords(t, h.dir)
	dir := t.TempDir()
	j := &countingJournal{}
	e, err := Open(Config{Dir: dir, NoSync: true, Now: h.clock.Now, Journal: j, Follower: true, SnapshotRecords: 5})
	requireNoError(t, err, "open the follower")
	defer e.Close()
	for _, r := range recs {
		ev := r.ev
		j.last.Store(r.seq)
		e.Follow(r.seq, &ev)
	}
	last := recs[len(recs)-1].seq
	deadline := time.Now().Add(10 * time.Second)
	for e.lastSnap.Load() < last {
		if time.Now().After(deadline) {
			t.Fatalf("the follower's snapshots stay at %d, the records reach %d", e.lastSnap.Load(), last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stamps := func() map[string]time.Time {
		out := map[string]time.Time{}
		ents, err := os.ReadDir(filepath.Join(dir, "snap"))
		requireNoError(t, err, "read the snapshots")
		for _, en := range ents {
			fi, err := en.Info()
			requireNoError(t, err, "stat")
			out[en.Name()] = fi.ModTime()
		}
		return out
	}
	before := stamps()
	time.Sleep(5 * tickInterval)
	if after := stamps(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the snapshots were written again with no new record:\n%v\n%v", before, after)
	}
}

// TestFailedEngineWritesNoSnapshot: an engine whose state may lack records
// (it failed) writes no snapshot file that a rebuild, or a cluster's Raft
// snapshot, would trust.
func TestFailedEngineWritesNoSnapshot(t *testing.T) {
	h := &harness{t: t, dir: t.TempDir(), clock: &fakeClock{}}
	h.open()
	defer h.close()
	h.createSale(stdSaleDef())
	h.e.Fail(errors.New("a record could not be applied"))
	requireTrue(t, h.e.Snapshot() != nil, "a failed engine's snapshot is refused")
	files, _ := filepath.Glob(filepath.Join(h.dir, "snap", "*.snap"))
	requireEqual(t, len(files), 0, "no snapshot file written")
}
