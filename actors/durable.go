package actors

import (
	"sync/atomic"

	"onsale/wal"
)

// Journal is the log the engine writes its records to and recovers from:
// the local write-ahead log (*wal.Log) on a single node, or the cluster's
// replicated log. Append's done runs once the record is durable (on a
// cluster: committed by a majority), in the order the records were
// accepted; an error returned by Append means the record was refused and
// nothing may be applied.
type Journal interface {
	Append(ev *wal.Event, done func(seq uint64, err error)) error
	Barrier(done func(err error))
	Err() error         // the fatal error, once one happened
	Unavailable() error // why writes are refused for now, or nil
	FirstSeq() uint64
	LastSeq() uint64
	TruncateFront(seq uint64) error
	Replay(from uint64, fn func(seq uint64, ev *wal.Event) error) error
	Start()
	Close() error
}

var _ Journal = (*wal.Log)(nil)

// ownerLog is a state owner's (a zone, room or sale actor's) view of its
// records in the log: how many it appended and how many the log has
// resolved. An owner applies a change in memory before its record is
// durable, so an answer read from that state, with no record of its own (a
// read, a duplicate release, a second join), could report what a crash would
// undo. Such answers go through whenDurable.
type ownerLog struct {
	log      Journal
	appended uint64 // owner goroutine only
	// followed is, on a follower's engine, the last record of this owner
	// its state holds: where its snapshot is cut. Owner goroutine only.
	followed uint64
	resolved atomic.Uint64 // incremented by the log writer
}

// followedFrom is a new owner's ownerLog.followed; snapSeq is where its
// snapshot file was cut, if it was restored from one.
func (e *Engine) followedFrom(snapSeq uint64) uint64 {
	if !e.cfg.Follower {
		return 0
	}
	// Its state holds every record of it up to where the engine was built,
	// or further if its snapshot is newer.
	return max(e.log.LastSeq(), snapSeq)
}

// append queues ev like wal.Log.Append and counts it.
func (o *ownerLog) append(ev *wal.Event, done func(seq uint64, err error)) error {
	err := o.log.Append(ev, func(seq uint64, err error) {
		o.resolved.Add(1)
		if done != nil {
			done(seq, err)
		}
	})
	if err == nil {
		o.appended++
	}
	return err
}

// whenDurable runs f once every record the owner appended so far is durable
// (err nil) or never will be (the log's fatal error): at once when nothing
// is in flight, else from the log writer. Called on the owner goroutine.
func (o *ownerLog) whenDurable(f func(err error)) {
	// After the log's fatal error every record counts as resolved, written
	// or not: answer with the error, not with state that may be lost.
	if err := o.log.Err(); err != nil {
		f(err)
		return
	}
	if o.resolved.Load() == o.appended {
		// Err again: a log sets its error before it resolves the record
		// that failed, so a failure that resolved the owner's last record
		// after the first look shows now.
		f(o.log.Err())
		return
	}
	o.log.Barrier(f)
}

// answerDurable finishes c with r once the state r was read from is durable.
func (s *Sale) answerDurable(o *ownerLog, c *call, r Result) {
	o.whenDurable(func(err error) {
		if err != nil {
			s.finish(c, Result{Err: unavailable(err)})
			return
		}
		s.finish(c, r)
	})
}
