package raftlog

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// timedLogStore is Raft's log store with its writes timed, so that a disk
// that stops answering shows (Node.WriteStalled). A leader blocked in a
// write of its log keeps sending heartbeats from other goroutines: the
// followers would never elect another, and the cluster would wait for the
// disk. Raft appends from one goroutine and compacts from another: each
// write in progress is timed on its own.
type timedLogStore struct {
	raft.LogStore
	// base is the clock's origin: times are read as durations since it,
	// on the monotonic clock, so a step of the wall clock is no stall.
	base     time.Time
	mu       sync.Mutex
	next     uint64
	inflight map[uint64]time.Duration // each write in progress: when it began, since base
}

func newTimedLogStore(s raft.LogStore) *timedLogStore {
	return &timedLogStore{LogStore: s, base: time.Now(), inflight: map[uint64]time.Duration{}}
}

func (s *timedLogStore) timed(f func() error) error {
	s.mu.Lock()
	s.next++
	id := s.next
	s.inflight[id] = time.Since(s.base)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, id)
		s.mu.Unlock()
	}()
	return f()
}

func (s *timedLogStore) StoreLog(l *raft.Log) error {
	return s.timed(func() error { return s.LogStore.StoreLog(l) })
}

func (s *timedLogStore) StoreLogs(logs []*raft.Log) error {
	return s.timed(func() error { return s.LogStore.StoreLogs(logs) })
}

func (s *timedLogStore) DeleteRange(min, max uint64) error {
	return s.timed(func() error { return s.LogStore.DeleteRange(min, max) })
}

// IsMonotonic passes on the store's own answer (walstore.go).
func (s *timedLogStore) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// stalled is how long the oldest write in progress has run; 0 if none.
func (s *timedLogStore) stalled() time.Duration {
	now := time.Since(s.base)
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	for _, at := range s.inflight {
		d = max(d, now-at)
	}
	return d
}

// WriteStalled is how long the oldest write of Raft's log still in
// progress has run (0: none is): seconds mean the disk has stopped
// answering.
func (n *Node) WriteStalled() time.Duration { return n.timed.stalled() }
