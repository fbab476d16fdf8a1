package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"onsale/wal"
)

var (
	errNotLeader = wal.ErrNotLeader
	// errStale is the FSM's answer to a record appended by a journal of an
	// earlier term: skipped everywhere, never applied.
	errStale = fmt.Errorf("%w: the record was appended in an earlier term", wal.ErrNotLeader)
)

// queueMax bounds the records accepted and not yet committed, as the local
// log's queue does.
const queueMax = 1 << 16

// Journal is the engine's log for one leadership term of this node
// (actors.Journal). Records are committed in the order Append accepted
// them; done runs in that order on the journal's goroutine.
type Journal struct {
	n    *Node
	term uint64

	mu       sync.Mutex
	queue    []pending // accepted, not yet handed to Raft
	accepted uint64
	resolved uint64
	barriers []barrier
	err      error // the first failure; the journal refuses everything after it
	closed   bool
	started  bool

	signal  chan struct{} // capacity 1: the queue became non-empty
	futures chan pending  // handed to Raft, in order
	last    atomic.Uint64 // last committed index
	pumped  chan struct{} // closed when the pump returns
	waited  chan struct{} // closed when the waiter returns
}

type pending struct {
	data []byte
	f    raft.ApplyFuture
	done func(seq uint64, err error)
}

type barrier struct {
	mark uint64
	done func(error)
}

// Journal returns a journal bound to the current term. Call it on the
// leader after CatchUp; a journal whose term has passed refuses appends.
func (n *Node) Journal() *Journal {
	j := &Journal{n: n, term: n.r.CurrentTerm(),
		signal: make(chan struct{}, 1), futures: make(chan pending, maxAppendEntries),
		pumped: make(chan struct{}), waited: make(chan struct{})}
	j.last.Store(n.lastIndex())
	return j
}

// Term is the term the journal appends in.
func (j *Journal) Term() uint64 { return j.term }

// current reports why the journal may not append now, or nil.
func (j *Journal) current() error {
	if j.n.r.State() != raft.Leader || j.n.r.CurrentTerm() != j.term {
		return fmt.Errorf("%w: term %d has passed", errNotLeader, j.term)
	}
	return nil
}

// Append queues ev for replication; done gets its Raft index once a
// majority has it, or the error.
func (j *Journal) Append(ev *wal.Event, done func(seq uint64, err error)) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	data := recordData(j.term, ev)
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed:
		return wal.ErrClosed
	case j.err != nil:
		return j.err
	case j.accepted-j.resolved >= queueMax:
		return wal.ErrFull
	}
	if err := j.current(); err != nil {
		return err
	}
	j.accepted++
	j.queue = append(j.queue, pending{data: data, done: done})
	select {
	case j.signal <- struct{}{}:
	default:
	}
	return nil
}

// recordData is a record's Raft command: its kind, the journal's term, the
// event body.
func recordData(term uint64, ev *wal.Event) []byte {
	data := make([]byte, 0, 64)
	data = append(data, kindRecord)
	data = binary.AppendUvarint(data, term)
	return ev.AppendBinary(data)
}

// Start starts handing records to Raft.
func (j *Journal) Start() {
	j.mu.Lock()
	j.started = true
	j.mu.Unlock()
	go j.pump()
	go j.wait()
}

// pump hands the queue to Raft in order. Apply only enqueues; with the
// buffered apply channel, records queued while a batch is written go out
// together in the next one.
func (j *Journal) pump() {
	defer close(j.pumped)
	defer close(j.futures)
	var batch []pending
	for range j.signal {
		j.mu.Lock()
		batch, j.queue = j.queue, batch[:0]
		closed := j.closed
		j.mu.Unlock()
		for _, p := range batch {
			p.f = j.n.r.Apply(p.data, 0)
			p.data = nil
			j.futures <- p
		}
		clear(batch)
		if closed {
			return
		}
	}
}

// wait resolves the records in order as Raft commits them.
func (j *Journal) wait() {
	defer close(j.waited)
	for p := range j.futures {
		var err error
		switch ferr := p.f.Error(); {
		case ferr == nil:
			if rerr, ok := p.f.Response().(error); ok && rerr != nil {
				err = rerr // errStale: skipped by every node, never done
			}
		case errors.Is(ferr, raft.ErrNotLeader):
			// Refused before it reached the log: not done.
			err = fmt.Errorf("%w (%v)", errNotLeader, ferr)
		default:
			// In the log, maybe on others too: the next leader may
			// commit it.
			err = fmt.Errorf("%w (%v)", wal.ErrLeadershipLost, ferr)
		}
		var seq uint64
		if err == nil {
			seq = p.f.Index()
			j.last.Store(seq)
		}
		j.mu.Lock()
		if err != nil && j.err == nil {
			// Applied in the engine's memory, maybe never committed: the
			// engine must be rebuilt from the log.
			j.err = err
		}
		j.resolved++
		var ready []barrier
		if j.err != nil {
			ready, j.barriers = j.barriers, nil
		} else {
			k := 0
			for k < len(j.barriers) && j.barriers[k].mark <= j.resolved {
				k++
			}
			ready = j.barriers[:k:k]
			j.barriers = j.barriers[k:]
		}
		fail := j.err
		j.mu.Unlock()
		if p.done != nil {
			p.done(seq, err)
		}
		for _, b := range ready {
			b.done(fail)
		}
	}
}

// Barrier calls done once every record accepted before it is resolved.
func (j *Journal) Barrier(done func(err error)) {
	j.mu.Lock()
	if j.err != nil {
		err := j.err
		j.mu.Unlock()
		done(err)
		return
	}
	if j.resolved == j.accepted {
		j.mu.Unlock()
		done(nil)
		return
	}
	j.barriers = append(j.barriers, barrier{mark: j.accepted, done: done})
	j.mu.Unlock()
}

// Err is the first failure: a record that may not have committed.
func (j *Journal) Err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// Unavailable says why appends are refused now (the node no longer leads).
func (j *Journal) Unavailable() error { return j.current() }

// FirstSeq is the first record a rebuild can read (see snapshot.go).
func (j *Journal) FirstSeq() uint64 { return j.n.firstSeq() }

// LastSeq is the last index this journal saw committed (at first, the log's
// last index).
func (j *Journal) LastSeq() uint64 { return j.last.Load() }

// TruncateFront says that the engine's snapshot files need no record
// before seq: a Raft snapshot follows, and the log is dropped behind it.
func (j *Journal) TruncateFront(seq uint64) error {
	j.n.noteFloor(seq)
	return nil
}

// Replay calls fn for every record in the Raft log from index from on,
// skipping the entries that are not records and the records that a journal
// of an earlier term appended (see the package notes). Call it after
// CatchUp, before Start.
func (j *Journal) Replay(from uint64, fn func(seq uint64, ev *wal.Event) error) error {
	last := j.n.lastIndex()
	if err := j.n.replay(from, last, fn); err != nil {
		return err
	}
	j.last.Store(last)
	return nil
}

// replay reads the records of entries from..to: those of the base's tail,
// then those of the Raft log after the base.
func (n *Node) replay(from, to uint64, fn func(seq uint64, ev *wal.Event) error) error {
	var ev wal.Event
	return n.replayRaw(from, to, func(seq uint64, body []byte) error {
		if err := ev.UnmarshalBinary(body); err != nil {
			return fmt.Errorf("raft log entry %d: %w", seq, err)
		}
		return fn(seq, &ev)
	})
}

// replayRaw is replay before the records are decoded; body is valid during
// the call only.
func (n *Node) replayRaw(from, to uint64, fn func(seq uint64, body []byte) error) error {
	first, err := n.logs.FirstIndex()
	if err != nil {
		return err
	}
	start := max(from, first)
	if b := n.base.Load(); b != nil && from <= b.index {
		if from < b.hdr.First {
			// Read before a newer snapshot dropped them: the reader
			// starts again from FirstSeq.
			return fmt.Errorf("records before %d are no longer kept (asked from %d): read again", b.hdr.First, from)
		}
		if lo, hi := from, min(to, b.hdr.Records); lo <= hi {
			if err := n.replayBase(b, lo, hi, fn); err != nil {
				return err
			}
		}
		// Between the records and the snapshot's index are entries that
		// are no records (barriers, the configuration).
		start = b.index + 1
		if start <= to && (first == 0 || first > start) {
			return fmt.Errorf("raft log entries from %d are missing (first kept: %d): dropped while this node read them; it reads again", start, first)
		}
	}
	var l raft.Log
	for i := start; i <= to && i > 0; i++ {
		if err := n.logs.GetLog(i, &l); err != nil {
			return fmt.Errorf("raft log entry %d: %w", i, err)
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0] != kindRecord {
			continue
		}
		term, k := binary.Uvarint(l.Data[1:])
		if k <= 0 {
			return fmt.Errorf("raft log entry %d: bad record header", i)
		}
		if term != l.Term {
			continue
		}
		if err := fn(i, l.Data[1+k:]); err != nil {
			return err
		}
	}
	return nil
}

// Close stops taking records and waits until those accepted are resolved
// (committed, or failed when the node lost its leadership).
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	started := j.started
	j.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case j.signal <- struct{}{}:
	default:
	}
	<-j.pumped
	<-j.waited
	return nil
}

// Replica is a follower's journal (actors.Journal): it replays the log up
// to the entry its state was built at and refuses every append; later
// records reach the state through Node.Follow.
type Replica struct {
	n    *Node
	upTo uint64
	last atomic.Uint64 // the last record followed
}

func (r *Replica) Append(*wal.Event, func(uint64, error)) error {
	return fmt.Errorf("%w: a follower does not write", errNotLeader)
}

func (r *Replica) Barrier(done func(error)) { done(nil) }
func (r *Replica) Err() error               { return nil }
func (r *Replica) Unavailable() error {
	return fmt.Errorf("%w: a follower does not write", errNotLeader)
}
func (r *Replica) FirstSeq() uint64 { return r.n.firstSeq() }
func (r *Replica) LastSeq() uint64  { return r.last.Load() }
func (r *Replica) TruncateFront(seq uint64) error {
	r.n.noteFloor(seq)
	return nil
}
func (r *Replica) Start()       {}
func (r *Replica) Close() error { return nil }

// Replay reads the records up to the entry the state is built at.
func (r *Replica) Replay(from uint64, fn func(seq uint64, ev *wal.Event) error) error {
	return r.n.replay(from, r.upTo, fn)
}
