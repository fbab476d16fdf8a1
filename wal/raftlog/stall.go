package raftlog

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// timedLogStore is Raft's log store with its writes timed, so that a disk
// that stops answering shows (Node.WriteStalled). A leader blocked in a
// write of its log keeps sending heartbeats from other goroutines: the
// followers would never elect another, and the cluster would wait for the
// disk. Raft appends from one goroutine and compacts from another, so each
// has its own clock.
type timedLogStore struct {
	raft.LogStore
	appending atomic.Int64 // unix ns when the append in progress began; 0: none
	deleting  atomic.Int64 // the same for DeleteRange
}

func timed(clock *atomic.Int64, f func() error) error {
	clock.Store(time.Now().UnixNano())
	defer clock.Store(0)
	return f()
}

func (s *timedLogStore) StoreLog(l *raft.Log) error {
	return timed(&s.appending, func() error { return s.LogStore.StoreLog(l) })
}

func (s *timedLogStore) StoreLogs(logs []*raft.Log) error {
	return timed(&s.appending, func() error { return s.LogStore.StoreLogs(logs) })
}

func (s *timedLogStore) DeleteRange(min, max uint64) error {
	return timed(&s.deleting, func() error { return s.LogStore.DeleteRange(min, max) })
}

// IsMonotonic passes on the store's own answer (walstore.go).
func (s *timedLogStore) IsMonotonic() bool {
	m, ok := s.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// stalled is how long the oldest write in progress has run; 0 if none.
func (s *timedLogStore) stalled(now time.Time) time.Duration {
	var d time.Duration
	for _, c := range []*atomic.Int64{&s.appending, &s.deleting} {
		if at := c.Load(); at != 0 {
			d = max(d, now.Sub(time.Unix(0, at)))
		}
	}
	return d
}

// WriteStalled is how long the oldest write of Raft's log still in
// progress has run (0: none is): seconds mean the disk has stopped
// answering.
func (n *Node) WriteStalled() time.Duration { return n.timed.stalled(time.Now()) }
