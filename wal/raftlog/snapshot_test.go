package raftlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"onsale/wal"
)

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordsFrom is what a rebuild of node n reads from its first record on:
// buyer names by index.
func recordsFrom(t *testing.T, n *Node, to uint64) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	if err := n.replay(n.firstSeq(), to, func(seq uint64, ev *wal.Event) error {
		out[seq] = ev.Buyer
		return nil
	}); err != nil {
		t.Fatalf("replay on %s: %v", n.ID(), err)
	}
	return out
}

// TestSnapshotCompactsAndInstalls: once the engine reports its floor, the
// leader takes a Raft snapshot of its files and the records from the floor
// on, and drops the log behind it. A follower that was down meanwhile gets
// the snapshot: its files (only where they are newer than its own), the
// metadata, and the same records from the floor on. A restart restores the
// newest snapshot; a follower's state built before an install is failed.
func TestSnapshotCompactsAndInstalls(t *testing.T) {
	for _, store := range []string{"bolt", "wal"} {
		t.Run(store, func(t *testing.T) { testSnapshotCompactsAndInstalls(t, store) })
	}
}

func testSnapshotCompactsAndInstalls(t *testing.T, store string) {
	c2 := newTestClusterWith(t, &testCluster{t: t, trailing: 5, store: store})
	li := c2.leader()
	ld := c2.nodes[li]
	if err := ld.SetMeta(ld.ID(), "127.0.0.1:1", []byte("key")); err != nil {
		t.Fatal(err)
	}
	lag := (li + 1) % 3
	// The lagging node's own copy of one file is newer than the leader's:
	// it must survive the install.
	if err := wal.WriteSnapshot(c2.stateDir(lag), "s00001", 1_000_000, []byte("newer here")); err != nil {
		t.Fatal(err)
	}
	c2.stop(lag)

	j := ld.Journal()
	j.Start()
	defer j.Close()
	var buyers []string
	for i := range 60 {
		buyers = append(buyers, fmt.Sprintf("b%02d", i))
	}
	seqs := appendAll(t, j, buyers...)
	floor := seqs[20]
	if err := wal.WriteSnapshot(c2.stateDir(li), "s00000", floor, []byte("sale state")); err != nil {
		t.Fatal(err)
	}
	if err := wal.WriteSnapshot(c2.stateDir(li), "s00001", floor+3, []byte("older there")); err != nil {
		t.Fatal(err)
	}
	if err := j.TruncateFront(floor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the leader took a snapshot and dropped the log behind it", func() bool {
		return ld.SnapshotIndex() >= seqs[len(seqs)-1] && ld.FirstIndex() > seqs[30]
	})
	if got := j.FirstSeq(); got != floor {
		t.Fatalf("after the snapshot the first record is %d, want the floor %d", got, floor)
	}
	last := seqs[len(seqs)-1]
	want := recordsFrom(t, ld, last)
	if len(want) != 60-20 || want[floor] != "b20" || want[last] != "b59" {
		t.Fatalf("the leader reads %d records from the floor (%v ... %v), want b20..b59", len(want), want[floor], want[last])
	}

	// The follower that was down gets the snapshot: the leader's log no
	// longer reaches back to its last entry.
	c2.start(lag)
	fl := c2.nodes[lag]
	waitFor(t, "the lagging follower installed the snapshot and caught up", func() bool {
		return fl.SnapshotsInstalled() > 0 && fl.AppliedIndex() >= last
	})
	if got := recordsFrom(t, fl, last); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the install the follower reads %v, want %v", got, want)
	}
	if seq, data, err := wal.ReadSnapshot(c2.stateDir(lag), "s00000"); err != nil || seq != floor || string(data) != "sale state" {
		t.Fatalf("the installed file: %d %q %v", seq, data, err)
	}
	if seq, data, err := wal.ReadSnapshot(c2.stateDir(lag), "s00001"); err != nil || seq != 1_000_000 || string(data) != "newer here" {
		t.Fatalf("the follower's newer file was replaced: %d %q %v", seq, data, err)
	}
	if fl.HTTPAddr(ld.ID()) != "127.0.0.1:1" || string(fl.SigningKey()) != "key" {
		t.Fatalf("the install lost the metadata: %q %q", fl.HTTPAddr(ld.ID()), fl.SigningKey())
	}

	// The next snapshot, handed to the follower while it keeps a state
	// (as Raft's InstallSnapshot does: copied into its store, then
	// restored), fails that state, which missed what the snapshot skips.
	failed := make(chan error, 1)
	if err := fl.Follow(func(*Replica) error { return nil }, func(uint64, *wal.Event) {},
		func(err error) { failed <- err }); err != nil {
		t.Fatal(err)
	}
	more := appendAll(t, j, "c00", "c01", "c02", "c03", "c04", "c05", "c06", "c07", "c08", "c09")
	// The follower's log goes on right after the installed snapshot (a
	// store that holds no gaps was emptied by the install first).
	waitFor(t, "the follower stored the entries after the snapshot", func() bool {
		last, err := fl.logs.LastIndex()
		return err == nil && last >= more[9]
	})
	if store == "wal" {
		if first, _ := fl.logs.FirstIndex(); fl.wal == nil || first <= seqs[len(seqs)-1] {
			t.Fatalf("the follower's wal log store begins at %d, before the installed snapshot's last record %d", first, seqs[len(seqs)-1])
		}
	}
	floor2 := more[5]
	wal.WriteSnapshot(c2.stateDir(li), "s00000", floor2, []byte("sale state 2"))
	wal.WriteSnapshot(c2.stateDir(li), "s00001", floor2, []byte("second"))
	j.TruncateFront(floor2)
	waitFor(t, "the second snapshot", func() bool { return ld.SnapshotIndex() >= more[9] && ld.FirstIndex() > more[3] })
	// Raft restores an install with its own loop waiting and then skips
	// what the snapshot holds; this direct restore must come after the
	// follower applied that far, or its Raft would look for the entries
	// the restore drops.
	waitFor(t, "the follower applied the snapshot's entries", func() bool { return fl.AppliedIndex() >= ld.SnapshotIndex() })
	installSnapshotOf(t, ld, fl)
	select {
	case err := <-failed:
		if !errors.Is(err, errInstalled) {
			t.Fatalf("the follower's state failed with %v", err)
		}
	default:
		t.Fatal("an install left the follower's state running")
	}
	if got, _ := wal.SnapshotSeq(c2.stateDir(lag), "s00000"); got != floor2 {
		t.Fatalf("the second install's file is at %d, want %d", got, floor2)
	}
	// A restarted node restores its newest snapshot: it reads the same.
	c2.stop(lag)
	c2.start(lag)
	fl = c2.nodes[lag]
	last2 := more[len(more)-1]
	waitFor(t, "the follower caught up again", func() bool { return fl.AppliedIndex() >= last2 })
	if got := recordsFrom(t, fl, last2); len(got) != 5 || got[floor2] != "c05" || got[last2] != "c09" {
		t.Fatalf("after the second install the follower reads %v, want c05..c09", got)
	}
	if got, _ := wal.SnapshotSeq(c2.stateDir(lag), "s00001"); got != 1_000_000 {
		t.Fatalf("the newer file went back to %d", got)
	}
	c2.stop(li)
	c2.start(li)
	if got := recordsFrom(t, c2.nodes[li], last2); len(got) != 5 || got[last2] != "c09" {
		t.Fatalf("the restarted leader reads %v from its snapshot and log, want c05..c09", got)
	}
}

// installSnapshotOf does what Raft does when a follower lags: it copies the
// leader's newest snapshot into the follower's store and restores it.
func installSnapshotOf(t *testing.T, from, to *Node) {
	t.Helper()
	metas, err := from.snaps.List()
	if err != nil || len(metas) == 0 {
		t.Fatalf("the leader's snapshots: %v %v", metas, err)
	}
	m, rc, err := from.snaps.Open(metas[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := to.snaps.Create(m.Version, m.Index, m.Term, m.Configuration, m.ConfigurationIndex, to.trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(sink, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	_, rc, err = to.snaps.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := to.fsm.Restore(rc); err != nil {
		t.Fatalf("restore: %v", err)
	}
}

// TestInstallDropsUncommittedEntries: a leader stores entries that never
// commit (both followers are down), stops, and comes back after the others
// moved on and compacted: it installs their snapshot. The entries it kept
// below the snapshot must go, or, once it leads, Raft would send them as
// committed to a node that needs entries that far back.
func TestInstallDropsUncommittedEntries(t *testing.T) {
	c := newTestClusterWith(t, &testCluster{t: t, trailing: 1000})
	ai := c.leader()
	a := c.nodes[ai]
	j := a.Journal()
	j.Start()
	appendAll(t, j, "a0", "a1", "a2", "a3", "a4")
	j.Close()
	bi, mi := (ai+1)%3, (ai+2)%3
	c.stop(bi)
	c.stop(mi)
	term := a.r.CurrentTerm()
	for i := range 300 {
		a.r.Apply(recordData(term, &wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: fmt.Sprintf("X%03d", i), At: 1}), 0)
	}
	waitFor(t, "the lone leader stored its uncommitted entries", func() bool {
		last, _ := a.logs.LastIndex()
		return last >= a.CommitIndex()+300
	})
	stale, _ := a.logs.LastIndex()
	c.stop(ai)

	c.start(bi)
	c.start(mi)
	ni := c.leader()
	n := c.nodes[ni]
	nj := n.Journal()
	nj.Start()
	var buyers []string
	for i := range 1500 {
		buyers = append(buyers, fmt.Sprintf("c%04d", i))
	}
	seqs := appendAll(t, nj, buyers...)
	last := seqs[len(seqs)-1]
	nj.TruncateFront(seqs[0])
	waitFor(t, "the new leader compacted past the old one's entries", func() bool { return n.FirstIndex() > stale+1 })
	nj.Close()

	c.start(ai)
	a = c.nodes[ai]
	waitFor(t, "the old leader installed the snapshot and caught up", func() bool {
		return a.SnapshotsInstalled() > 0 && a.AppliedIndex() >= last
	})
	var l raft.Log
	if err := a.logs.GetLog(stale, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry %d the old leader stored and never committed is still in its log (term %d, err %v)", stale, l.Term, err)
	}
	got := recordsFrom(t, a, last)
	for seq, b := range got {
		if b[0] == 'X' {
			t.Fatalf("record %d %s was never committed, and the old leader reads it", seq, b)
		}
	}
	if got[last] != "c1499" {
		t.Fatalf("the old leader reads %q at %d, want c1499", got[last], last)
	}

	// It leads, with a node whose data was lost: that node gets the
	// snapshot, never the dropped entries.
	other := 3 - ai - ni
	c.stop(ni)
	c.stop(other)
	os.RemoveAll(c.dirs[other])
	c.start(other)
	fresh := c.nodes[other]
	waitFor(t, "the wiped node caught up", func() bool { return fresh.AppliedIndex() >= last })
	for seq, b := range recordsFrom(t, fresh, last) {
		if b[0] == 'X' {
			t.Fatalf("the wiped node reads record %d %s, which never committed", seq, b)
		}
	}
}
