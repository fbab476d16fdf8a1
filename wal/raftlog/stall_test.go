package raftlog

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"onsale/wal"
)

// hangingStore is a disk that stops answering: after hang, every append
// waits until release.
type hangingStore struct {
	raft.LogStore
	mu      sync.Mutex
	hanging chan struct{} // non-nil: appends wait until it closes
}

func (s *hangingStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	h := s.hanging
	s.mu.Unlock()
	if h != nil {
		<-h
	}
	return s.LogStore.StoreLogs(logs)
}

func (s *hangingStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *hangingStore) hang() {
	s.mu.Lock()
	s.hanging = make(chan struct{})
	s.mu.Unlock()
}

func (s *hangingStore) release() {
	s.mu.Lock()
	if s.hanging != nil {
		close(s.hanging)
		s.hanging = nil
	}
	s.mu.Unlock()
}

// TestWriteStalledShowsAHungDisk: while the leader's log store does not
// return from an append, WriteStalled grows on the leader, and stays 0 on
// the followers; once the disk answers it is 0 again.
func TestWriteStalledShowsAHungDisk(t *testing.T) {
	stores := make([]*hangingStore, 3)
	c := newTestClusterWith(t, &testCluster{t: t, wrap: func(i int) func(raft.LogStore) raft.LogStore {
		return func(s raft.LogStore) raft.LogStore {
			stores[i] = &hangingStore{LogStore: s}
			return stores[i]
		}
	}})
	li := c.leader()
	t.Cleanup(func() {
		for _, s := range stores {
			s.release()
		}
	})
	j := c.nodes[li].Journal()
	j.Start()
	appendAll(t, j, "before")
	if d := c.nodes[li].WriteStalled(); d != 0 {
		t.Fatalf("stalled %s with no write in progress", d)
	}

	stores[li].hang()
	done := make(chan error, 1)
	if err := j.Append(&wal.Event{Type: wal.TypeQueueJoined, Sale: "s", Buyer: "stuck", At: 1}, func(_ uint64, err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.nodes[li].WriteStalled() < 500*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("the leader's hung append shows as stalled %s", c.nodes[li].WriteStalled())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, n := range c.nodes {
		if i != li && n.WriteStalled() != 0 {
			t.Fatalf("follower %d shows a stall of %s; its disk answers", i, n.WriteStalled())
		}
	}
	stores[li].release()
	if err := <-done; err != nil {
		t.Fatalf("the append after the disk came back: %v", err)
	}
	if d := c.nodes[li].WriteStalled(); d != 0 {
		t.Fatalf("stalled %s after the disk came back", d)
	}
}
