package wal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	twal "github.com/tidwall/wal"
)

// Limits and defaults of the log.
const (
	// segmentSizeDefault: tidwall keeps the whole tail segment in memory, and
	// 64 MiB is about 500,000 records, a few seconds of writes at full load.
	segmentSizeDefault = 64 << 20
	// segmentSizeMax bounds the memory of the tail segment and what Replay
	// reads at once.
	segmentSizeMax = 512 << 20
	// segmentFileBytesMax bounds what Open and Replay read from one file: a
	// segment is cut after the first record that reaches SegmentSize, so it
	// is at most SegmentSize plus one record.
	segmentFileBytesMax = segmentSizeMax + recordBodyBytesMax + 1<<20
	// queueMaxDefault is about 0.3 s of appends at 200,000 per second.
	queueMaxDefault = 1 << 16
	// queueMaxMax bounds the memory of the append queue's bookkeeping.
	queueMaxMax = 1 << 24
	// queueBytesMax bounds the memory held by records accepted and not yet
	// durable; one record alone is always accepted.
	queueBytesMax = 256 << 20
	// batchMaxDefault: at 4,096 records a batch the fsync costs under a
	// microsecond per record; larger batches only delay the acks.
	batchMaxDefault = 4096
	// batchMaxMax bounds the writer's per-batch work between two looks at
	// the queue.
	batchMaxMax = 1 << 16
	// batchBytesMax: one write(2) of 8 MiB already runs at disk speed;
	// beyond it a batch only delays its acks.
	batchBytesMax = 8 << 20
	// stallAfterDefault bounds a write and fsync of one batch before the log
	// counts as stuck and refuses new records: a healthy fsync takes
	// milliseconds, and the callers' own 5 s timeout must not come first.
	stallAfterDefault = 2 * time.Second
	// retryEveryDefault spaces the attempts to write a batch that failed for
	// want of space: each one costs a write and a truncation.
	retryEveryDefault = time.Second
	// bufferKeepBytesMax: a queue or batch buffer that a large record grew
	// past this is dropped after use instead of being kept for reuse.
	bufferKeepBytesMax = 16 << 20
	// scratchKeepBytesMax: encode buffers larger than this are not pooled.
	scratchKeepBytesMax = 64 << 10

	dirPerms  = 0o750 // the log holds buyers' data: no access for others
	filePerms = 0o640 // as dirPerms
)

// Options configure Open. Zero fields take their defaults.
type Options struct {
	Dir         string
	NoSync      bool // benchmarks and tests only: skip every fsync of a batch
	SegmentSize int  // bytes per segment file; default 64 MiB
	QueueMax    int  // records accepted and not yet durable; Append returns ErrFull past it; default 65,536
	BatchMax    int  // records per write and fsync; default 4,096
	// OnBatch, if set, is called on the writer goroutine after each durable
	// batch with its record count, its bytes and the time of its write and
	// fsync. It must not block.
	OnBatch func(records, bytes int, fsync time.Duration)
	// Logf, if set, receives notices of repairs made by Open, and of the
	// log stopping and resuming writes.
	Logf func(format string, args ...any)
	// FS is the file layer of every write; default OS. Tests pass a FaultFS.
	FS FS
	// StallAfter: a batch whose write and fsync take longer makes the log
	// unavailable until they return; default 2 s.
	StallAfter time.Duration
	// RetryEvery spaces the attempts to write a batch that failed for want
	// of space or an I/O error on write; default 1 s.
	RetryEvery time.Duration
}

// Log is the write-ahead log. Until Start the goroutine that opened it owns
// it (Replay, TruncateFront); from Start on a single writer goroutine does.
// Append, Err, FirstSeq and LastSeq may be called from any goroutine.
type Log struct {
	dir  string
	opts Options // defaults filled in; read-only after Open

	fs FS // opts.FS

	// first and last are the first kept and last durable sequences. The owner
	// writes them; anyone may read them.
	first, last atomic.Uint64

	// mu guards the append queue and the state that Append reads.
	mu       sync.Mutex
	queue    []pending // accepted, not yet taken by the writer, in order
	arena    []byte    // the unsealed records of queue, back to back
	inflight int       // records accepted and not yet resolved (queued or being written)
	inBytes  int       // bytes of those records
	accepted uint64    // records ever accepted
	resolved uint64    // records ever resolved (written, or failed)
	barriers []barrier // waiting for resolved to reach their mark, in order
	started  bool
	closed   bool
	err      error // the fatal error; once set, never cleared
	// down is set while a batch cannot be written (no space, an I/O error
	// on write) and the writer retries it; stuck while a write or fsync has
	// taken longer than StallAfter. Either makes Append refuse with it.
	down, stuck error
	inCommit    bool // the writer is inside a write and fsync

	signal  chan struct{} // capacity 1: the queue became non-empty
	ctl     chan truncateReq
	stop    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer goroutine returns

	// watch fires when a batch's write and fsync take over StallAfter.
	watch *time.Timer

	// Owned by the writer (the caller before Start).
	spareQueue []pending
	spareArena []byte
	buf        []byte // the entries of the batch being written
	tail       File   // the tail segment, open for appending
	tailPath   string
	tailBytes  int64 // bytes in the tail segment file

	// beforeBatch, if set by a test, runs on the writer before each write.
	beforeBatch func()
}

// barrier is a Barrier waiting for the records accepted before it.
type barrier struct {
	mark uint64 // accepted when Barrier was called
	done func(err error)
}

// pending is one accepted record waiting for the writer.
type pending struct {
	end  int // end of the record in the arena; it starts where the previous one ends
	done func(seq uint64, err error)
}

// truncateReq hands a TruncateFront to the writer goroutine.
type truncateReq struct {
	seq   uint64
	reply chan error // capacity 1
}

// scratch holds encode buffers, so that Append encodes outside the queue
// lock without an allocation per call.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// Open opens or creates the log in opts.Dir. It cuts a torn tail off the last
// segment first (keeping a <segment>.broken copy) and fails on any other
// damage it sees there; see doc.go.
func Open(opts Options) (*Log, error) {
	if err := fillOptions(&opts); err != nil {
		return nil, err
	}
	dir := opts.Dir
	if err := ensureDir(dir); err != nil {
		return nil, fmt.Errorf("wal: open %q: %w", dir, err)
	}
	tail, err := repairTail(dir, opts.FS, opts.Logf)
	if err != nil {
		return nil, err
	}
	// tidwall finishes an interrupted front truncation and creates the first
	// segment of a new log; from then on the log writes the files itself,
	// through opts.FS, in tidwall's format.
	tw, err := twal.Open(dir, &twal.Options{
		NoSync:           opts.NoSync,
		SegmentSize:      opts.SegmentSize,
		LogFormat:        twal.Binary,
		SegmentCacheSize: 1,
		NoCopy:           true,
		AllowEmpty:       true, // TruncateFront may drop every record, and a repair may empty the log
		DirPerms:         dirPerms,
		FilePerms:        filePerms,
	})
	if err != nil {
		return nil, fmt.Errorf("wal: open %q: %w", dir, err)
	}
	first, ferr := tw.FirstIndex()
	last, lerr := tw.LastIndex()
	if err := errors.Join(ferr, lerr, tw.Close()); err != nil {
		return nil, fmt.Errorf("wal: open %q: %w", dir, err)
	}
	l := &Log{
		dir:     dir,
		opts:    opts,
		fs:      opts.FS,
		signal:  make(chan struct{}, 1),
		ctl:     make(chan truncateReq),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	l.watch = time.AfterFunc(time.Hour, l.stalled)
	l.watch.Stop()
	if err := l.load(tail, first, last); err != nil {
		if l.tail != nil {
			err = errors.Join(err, l.tail.Close())
		}
		return nil, err
	}
	return l, nil
}

// load checks the sequences tidwall found against what the tail repair
// found, opens the tail segment for appending and makes the directory
// durable.
func (l *Log) load(tail tailInfo, first, last uint64) error {
	if tail.path != "" && last != tail.first+uint64(tail.records)-1 {
		return fmt.Errorf("%w: %s holds records %d..%d but the log ends at %d", ErrCorrupt,
			tail.path, tail.first, tail.first+uint64(tail.records)-1, last)
	}
	l.first.Store(first)
	l.last.Store(last)
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return fmt.Errorf("wal: open %q: no segment file after tidwall opened it", l.dir)
	}
	seg := segs[len(segs)-1]
	if l.tailBytes, err = tailSize(l.dir); err != nil {
		return err
	}
	if l.tail, err = l.fs.OpenAppend(seg.path); err != nil {
		return fmt.Errorf("wal: open %q: %w", l.dir, err)
	}
	l.tailPath = seg.path
	// tidwall creates files and finishes interrupted truncations by renames
	// without syncing the directory.
	return l.fs.SyncDir(l.dir)
}

func fillOptions(o *Options) error {
	if o.Dir == "" {
		return errors.New("wal: open: Options.Dir is empty")
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = segmentSizeDefault
	}
	if o.QueueMax == 0 {
		o.QueueMax = queueMaxDefault
	}
	if o.BatchMax == 0 {
		o.BatchMax = batchMaxDefault
	}
	if o.FS == nil {
		o.FS = OS
	}
	if o.StallAfter <= 0 {
		o.StallAfter = stallAfterDefault
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = retryEveryDefault
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	switch {
	case o.SegmentSize < 0 || o.SegmentSize > segmentSizeMax:
		return fmt.Errorf("wal: open %q: SegmentSize %d out of 1..%d", o.Dir, o.SegmentSize, segmentSizeMax)
	case o.QueueMax < 0 || o.QueueMax > queueMaxMax:
		return fmt.Errorf("wal: open %q: QueueMax %d out of 1..%d", o.Dir, o.QueueMax, queueMaxMax)
	case o.BatchMax < 0 || o.BatchMax > batchMaxMax:
		return fmt.Errorf("wal: open %q: BatchMax %d out of 1..%d", o.Dir, o.BatchMax, batchMaxMax)
	}
	return nil
}

// FirstSeq is the sequence of the first kept record; LastSeq+1 when the log
// is empty (1 for a new log).
func (l *Log) FirstSeq() uint64 { return l.first.Load() }

// LastSeq is the sequence of the last durable record; 0 for a new log.
func (l *Log) LastSeq() uint64 { return l.last.Load() }

// Err returns the fatal error after a failed fsync, a write that cannot be
// undone or a failed truncation, and nil before.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Unavailable returns, while the log cannot write (its disk is full, a
// write failed, a write or fsync is stuck), an error wrapping ErrUnavailable
// and its cause; the fatal error after one; nil when the log writes.
func (l *Log) Unavailable() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.err != nil:
		return l.err
	case l.stuck != nil:
		return l.stuck
	}
	return l.down
}

// Start starts the writer goroutine, which owns the log from then on.
func (l *Log) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.closed {
		panic("wal: Start called twice or after Close")
	}
	l.started = true
	go l.run()
}

// Append queues ev and returns at once; ev is encoded before it returns, so
// the caller may reuse it. It returns an error wrapping ErrEventType,
// ErrEventBounds or ErrRecordTooLarge for an event that cannot be written,
// ErrFull when QueueMax records (or queueBytesMax bytes) are waiting,
// ErrClosed after Close, an error wrapping ErrUnavailable while the log
// cannot write, and the fatal error after one. When it
// returns nil, done (if not nil) is called exactly once, on the goroutine
// that owns the log (the writer after Start; before Start, the one that
// calls TruncateFront or Close): with the record's sequence and a nil error
// once the record is durable, or with a non-nil error if it never will be.
// done must not block.
func (l *Log) Append(ev *Event, done func(seq uint64, err error)) error {
	if err := ev.Validate(); err != nil {
		return fmt.Errorf("wal: append: %w", err)
	}
	bp := scratch.Get().(*[]byte)
	rec := appendUnsealed((*bp)[:0], ev)
	err := l.enqueue(rec, done)
	if cap(rec) <= scratchKeepBytesMax {
		*bp = rec[:0]
		scratch.Put(bp)
	}
	return err
}

// enqueue copies an unsealed record into the queue, or refuses it.
func (l *Log) enqueue(rec []byte, done func(seq uint64, err error)) error {
	l.mu.Lock()
	var err error
	switch {
	case l.closed:
		err = ErrClosed
	case l.err != nil:
		err = l.err
	case l.stuck != nil:
		err = l.stuck
	case l.down != nil:
		err = l.down
	case l.inflight >= l.opts.QueueMax:
		err = ErrFull
	case l.inflight > 0 && l.inBytes+len(rec) > queueBytesMax:
		err = ErrFull
	}
	if err != nil {
		l.mu.Unlock()
		return err
	}
	wake := len(l.queue) == 0
	l.arena = append(l.arena, rec...)
	l.queue = append(l.queue, pending{end: len(l.arena), done: done})
	l.inflight++
	l.accepted++
	l.inBytes += len(rec)
	l.mu.Unlock()

	if wake {
		select {
		case l.signal <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
	return nil
}

// Barrier calls done once every record accepted before the call is durable
// (err nil), or will never be (the fatal error). It writes nothing. An owner
// uses it to answer from state that its own not-yet-durable records changed:
// the answer then never reports what a crash could undo. When nothing is in
// flight, done runs at once on the calling goroutine; otherwise on the
// writer's. done must not block.
//
// While the log cannot write (down or stuck), done is called at once with
// that error: the records it would wait for are not durable now, and
// barriers registered for the length of an outage would pile up without a
// bound (every read of an owner with records in flight adds one).
func (l *Log) Barrier(done func(err error)) {
	l.mu.Lock()
	// With nothing in flight there is nothing to wait for, outage or not.
	if err := cmp.Or(l.err, l.stuck, l.down); l.err != nil || (err != nil && l.resolved != l.accepted) {
		l.mu.Unlock()
		done(err)
		return
	}
	if l.resolved == l.accepted {
		l.mu.Unlock()
		done(nil)
		return
	}
	l.barriers = append(l.barriers, barrier{mark: l.accepted, done: done})
	l.mu.Unlock()
}

// releaseBarriers takes the barriers whose records are all resolved; the
// caller runs them outside mu. Called with mu held.
func (l *Log) releaseBarriers() []barrier {
	n := 0
	for n < len(l.barriers) && l.barriers[n].mark <= l.resolved {
		n++
	}
	if n == 0 {
		return nil
	}
	out := append([]barrier(nil), l.barriers[:n]...)
	l.barriers = append(l.barriers[:0], l.barriers[n:]...)
	return out
}

// TruncateFront drops every record before seq, so that seq becomes the first
// kept one; seq = LastSeq()+1 drops them all. Records appended before the
// call are written first. After Start it runs on the writer goroutine and
// returns when done. It wraps ErrOutOfRange when seq is past LastSeq()+1. A
// failure of the truncation itself is fatal, like a failed write.
func (l *Log) TruncateFront(seq uint64) error {
	l.mu.Lock()
	closed, started, fatal := l.closed, l.started, l.err
	l.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case fatal != nil:
		return fatal
	case !started:
		l.flush(false)
		return l.truncateFront(seq)
	}
	r := truncateReq{seq: seq, reply: make(chan error, 1)}
	select {
	case l.ctl <- r:
		return <-r.reply
	case <-l.stopped:
		return ErrClosed
	}
}

// Close writes and fsyncs every queued record (their done callbacks run),
// stops the writer and closes the files. After a fatal error it returns that
// error.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	started := l.started
	l.mu.Unlock()

	if started {
		close(l.stop)
		<-l.stopped
	} else {
		l.flush(false) // the caller owns the log
		close(l.stopped)
	}
	l.watch.Stop()
	// Every batch was fsynced when it was written.
	var cerr error
	if err := l.tail.Close(); err != nil {
		cerr = fmt.Errorf("wal: close %q: %w", l.dir, err)
	}
	return errors.Join(l.Err(), cerr)
}

// ensureDir creates dir if it does not exist and makes its entry durable.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, dirPerms); err != nil {
		return err
	}
	return syncDir(filepath.Dir(filepath.Clean(dir)))
}
