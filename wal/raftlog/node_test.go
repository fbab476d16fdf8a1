package raftlog

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"onsale/wal"
)

// addrsGiven are the ports freeAddr handed out: a probed port, once closed,
// may come back from the next probe, and two nodes of a cluster given one
// address never start.
var addrsGiven = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// freeAddr is a free loopback address not handed out before.
func freeAddr(t testing.TB) string {
	t.Helper()
	addrsGiven.Lock()
	defer addrsGiven.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !addrsGiven.m[addr] {
			addrsGiven.m[addr] = true
			return addr
		}
	}
	t.Fatal("100 probes gave ports handed out already")
	return ""
}

type testCluster struct {
	t        testing.TB
	trailing uint64 // Config.TrailingLogs
	store    string // Config.LogStore; "" takes RAFTLOG_STORE (unset: the default)
	// wrap, if set, gives node i's Config.wrapLogs.
	wrap  func(i int) func(raft.LogStore) raft.LogStore
	peers []Peer
	dirs  []string
	nodes []*Node // nil when stopped
}

func newTestCluster(t testing.TB) *testCluster {
	return newTestClusterWith(t, &testCluster{t: t})
}

// newTestClusterWith starts three nodes configured as c says.
func newTestClusterWith(t testing.TB, c *testCluster) *testCluster {
	if c.store == "" {
		c.store = os.Getenv("RAFTLOG_STORE")
	}
	base := t.TempDir()
	for i := range 3 {
		c.peers = append(c.peers, Peer{ID: fmt.Sprintf("n%d", i+1), Addr: freeAddr(t)})
		c.dirs = append(c.dirs, filepath.Join(base, fmt.Sprintf("n%d", i+1)))
	}
	c.nodes = make([]*Node, 3)
	for i := range 3 {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.stop(i)
		}
	})
	return c
}

func (c *testCluster) start(i int) { c.startWith(i, false) }

// startWith starts node i, as a member that lost its data directory if
// rejoin is set.
func (c *testCluster) startWith(i int, rejoin bool) {
	cfg := Config{ID: c.peers[i].ID, Peers: c.peers, Dir: c.dirs[i], StateDir: c.stateDir(i), TrailingLogs: c.trailing, LogStore: c.store, Rejoin: rejoin}
	if c.wrap != nil {
		cfg.wrapLogs = c.wrap(i)
	}
	n, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = n
}

func (c *testCluster) stateDir(i int) string { return filepath.Join(c.dirs[i], "snap") }

func (c *testCluster) stop(i int) {
	if c.nodes[i] != nil {
		c.nodes[i].Close()
		c.nodes[i] = nil
	}
}

// leader waits for one running node to lead and returns its index.
func (c *testCluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range c.nodes {
			if n != nil && n.IsLeader() {
				if err := n.CatchUp(5 * time.Second); err == nil {
					return i
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatal("no leader within 20 s")
	return -1
}

func appendAll(t *testing.T, j *Journal, buyers ...string) []uint64 {
	t.Helper()
	seqs := make([]uint64, len(buyers))
	errs := make(chan error, len(buyers))
	for i, b := range buyers {
		ev := &wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: b, At: int64(i + 1)}
		if err := j.Append(ev, func(seq uint64, err error) { seqs[i] = seq; errs <- err }); err != nil {
			t.Fatalf("append %s: %v", b, err)
		}
	}
	for range buyers {
		if err := <-errs; err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	return seqs
}

func replayed(t *testing.T, j *Journal) []string {
	t.Helper()
	var out []string
	if err := j.Replay(1, func(_ uint64, ev *wal.Event) error {
		out = append(out, ev.Buyer)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplicatedRecordsSurviveTheLeader commits records through the
// leader's journal, stops the leader, and finds every record, in order, in
// the log of the node that takes over; the old term's journal refuses.
func TestReplicatedRecordsSurviveTheLeader(t *testing.T) {
	c := newTestCluster(t)
	li := c.leader()
	j := c.nodes[li].Journal()
	j.Start()
	want := []string{"a", "b", "c", "d", "e"}
	seqs := appendAll(t, j, want...)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("indexes not increasing in order of acceptance: %v", seqs)
		}
	}
	done := make(chan error, 1)
	j.Barrier(func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatalf("barrier: %v", err)
	}
	c.stop(li)
	if err := j.Append(&wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: "late", At: 9}, nil); err == nil {
		t.Fatal("a journal of a stopped leader accepted a record")
	}
	j.Close()

	ni := c.leader()
	if ni == li {
		t.Fatal("the stopped node leads")
	}
	j2 := c.nodes[ni].Journal()
	if j2.Term() <= j.Term() {
		t.Fatalf("new term %d not after %d", j2.Term(), j.Term())
	}
	if got := replayed(t, j2); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the new leader's log holds %v, want %v", got, want)
	}
	j2.Start()
	appendAll(t, j2, "f")
	j2.Close()

	// The old leader comes back as a follower and catches up.
	c.start(li)
	deadline := time.Now().Add(10 * time.Second)
	for c.nodes[li].AppliedIndex() < c.nodes[ni].AppliedIndex() {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node applied %d, the leader %d", c.nodes[li].AppliedIndex(), c.nodes[ni].AppliedIndex())
		}
		time.Sleep(20 * time.Millisecond)
	}
	jr := c.nodes[li].Journal()
	if got := replayed(t, jr); fmt.Sprint(got) != fmt.Sprint(append(want, "f")) {
		t.Fatalf("the restarted node's log holds %v", got)
	}
}

// TestStaleTermRecordIsSkipped: a record stored with a term other than its
// journal's (appended by an engine of an earlier leadership) is refused to
// its writer and skipped by every replay.
func TestStaleTermRecordIsSkipped(t *testing.T) {
	c := newTestCluster(t)
	li := c.leader()
	n := c.nodes[li]
	j := n.Journal()
	j.Start()
	appendAll(t, j, "a")
	// A journal that believes in an older term: what a deposed leader's
	// engine would hold if it won the next election.
	stale := n.Journal()
	stale.term--
	stale.Start()
	if err := stale.Append(&wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: "stale", At: 1}, nil); !errors.Is(err, wal.ErrNotLeader) {
		t.Fatalf("a stale journal's append: %v, want ErrNotLeader", err)
	}
	// Force one through, as if the term changed between the check and Raft.
	got := make(chan error, 1)
	stale.mu.Lock()
	stale.accepted++
	stale.queue = append(stale.queue, pending{data: recordData(stale.term, &wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: "stale", At: 1}),
		done: func(_ uint64, err error) { got <- err }})
	stale.mu.Unlock()
	stale.signal <- struct{}{}
	if err := <-got; !errors.Is(err, wal.ErrNotLeader) {
		t.Fatalf("a stale record's commit: %v, want ErrNotLeader", err)
	}
	if stale.Err() == nil {
		t.Fatal("the stale journal did not fail")
	}
	appendAll(t, j, "b")
	if got := replayed(t, j); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("replay gives %v, want [a b]", got)
	}
	stale.Close()
	j.Close()
}

// BenchmarkReplicatedAppend commits records through a three-node cluster on
// loopback from 64 writers at once: the replicated log alone, without HTTP
// or the engine. It reports records/s and the mean commit latency.
//
// RAFTLOG_BENCH_STORE chooses the log store (bolt or wal; default bolt) and
// RAFTLOG_BENCH_WRITERS the number of writers.
func BenchmarkReplicatedAppend(b *testing.B) {
	c := newTestClusterWith(b, &testCluster{t: b, store: os.Getenv("RAFTLOG_BENCH_STORE")})
	li := c.leader()
	j := c.nodes[li].Journal()
	j.Start()
	defer j.Close()
	writers := 64
	if v, err := strconv.Atoi(os.Getenv("RAFTLOG_BENCH_WRITERS")); err == nil && v > 0 {
		writers = v
	}
	b.ResetTimer()
	start := time.Now()
	var total time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	per := b.N/writers + 1
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine time.Duration
			done := make(chan error, 1)
			for i := range per {
				ev := &wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: fmt.Sprintf("w%d-%d", w, i), At: 1}
				sent := time.Now()
				if err := j.Append(ev, func(_ uint64, err error) { done <- err }); err != nil {
					b.Error(err)
					return
				}
				if err := <-done; err != nil {
					b.Error(err)
					return
				}
				mine += time.Since(sent)
			}
			mu.Lock()
			total += mine
			mu.Unlock()
		}()
	}
	wg.Wait()
	n := per * writers
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(total.Microseconds())/float64(n)/1000, "ms/commit")
}

// TestFollowStopsAtADamagedRecord: a record the follower's copy cannot
// decode fails the copy once, and no later record reaches it: the node
// builds another from the log.
func TestFollowStopsAtADamagedRecord(t *testing.T) {
	f := newFSM(nil)
	var got []uint64
	var fails []error
	f.follow = func(seq uint64, ev *wal.Event) { got = append(got, seq) }
	f.followFail = func(err error) { fails = append(fails, err) }
	good := recordData(1, &wal.Event{Type: wal.TypeHoldReleased, Sale: "s", Zone: "z", Hold: "h"})
	damaged := append(recordData(1, &wal.Event{Type: wal.TypeHoldReleased})[:2:2], 0xff, 0xff, 0xff)
	for i, data := range [][]byte{good, damaged, good} {
		f.Apply(&raft.Log{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: data})
	}
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("the copy was given records %v; want [1], nothing after the damaged one", got)
	}
	if len(fails) != 1 {
		t.Fatalf("the copy was failed %d times; want once", len(fails))
	}
	if f.last.Load() != 3 {
		t.Fatalf("applied index %d; want 3", f.last.Load())
	}
}
