package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// run is the writer goroutine. It sleeps until the queue is non-empty, then
// writes all of it: whatever piled up during one fsync becomes the next
// batch, so batches stay small at light load and grow under load.
func (l *Log) run() {
	defer close(l.stopped)
	for {
		select {
		case <-l.signal:
			l.flush(true)
		case r := <-l.ctl:
			l.flush(true)
			r.reply <- l.truncateFront(r.seq)
		case <-l.stop:
			// Close set closed under mu before it closed stop, so nothing
			// is queued after this flush.
			l.flush(true)
			return
		}
	}
}

// flush takes the whole queue at once and writes it in batches of at most
// BatchMax records and about batchBytesMax bytes, one write and one fsync
// each, then resolves every done callback of the batch. A batch that fails
// for want of space or an I/O error on write is cut back and, if wait, tried
// again every RetryEvery until it is written or the log closes; meanwhile
// Append refuses. Runs on the owner.
func (l *Log) flush(wait bool) {
	l.mu.Lock()
	q, arena := l.queue, l.arena
	l.queue, l.arena = l.spareQueue[:0], l.spareArena[:0]
	l.mu.Unlock()

	start, off := 0, 0 // next record to write, and its offset in arena
	for start < len(q) {
		if l.beforeBatch != nil {
			l.beforeBatch()
		}
		first := l.last.Load() + 1
		end, bytes := start, 0
		// A batch ends at the entry that takes the tail segment to
		// SegmentSize (tidwall's rule): the next one opens a new segment.
		size := l.tailBytes
		if size >= int64(l.opts.SegmentSize) {
			size = 0
		}
		l.buf = l.buf[:0]
		for end < len(q) && end-start < l.opts.BatchMax && (end == start || bytes < batchBytesMax) &&
			(end == start || size < int64(l.opts.SegmentSize)) {
			rec := arena[off:q[end].end]
			sealRecord(rec, first+uint64(end-start))
			l.buf = binary.AppendUvarint(l.buf, uint64(len(rec)))
			l.buf = append(l.buf, rec...)
			bytes += len(rec)
			size += int64(uvarintLen(len(rec)) + len(rec))
			off = q[end].end
			end++
		}
		if err := l.commitRetrying(first, end-start, bytes, wait); err != nil {
			l.fail(err, q[start:])
			break
		}
		for _, p := range q[start:end] {
			if p.done != nil {
				p.done(first, nil)
			}
			first++
		}
		l.mu.Lock()
		l.inflight -= end - start
		l.inBytes -= bytes
		l.resolved += uint64(end - start)
		ready := l.releaseBarriers()
		l.mu.Unlock()
		for _, b := range ready {
			b.done(nil)
		}
		start = end
	}

	// The queue never holds more than QueueMax entries, so it is always
	// worth keeping; drop the callbacks for the collector.
	clear(q)
	l.spareQueue = q[:0]
	if cap(arena) <= bufferKeepBytesMax {
		l.spareArena = arena[:0]
	} else {
		l.spareArena = nil
	}
	if cap(l.buf) > bufferKeepBytesMax {
		l.buf = nil
	}
}

// commitRetrying commits the batch in l.buf, and while it fails in a way
// that left the log as it was, marks the log down and tries again every
// RetryEvery. It returns nil once the batch is durable, and a fatal error
// otherwise (or when the log closes, or !wait, while it is down).
func (l *Log) commitRetrying(first uint64, records, bytes int, wait bool) error {
	for attempt := 0; ; attempt++ {
		retry, err := l.commit(first, records, bytes)
		if err == nil {
			l.mu.Lock()
			wasDown := l.down
			l.down = nil
			l.mu.Unlock()
			if wasDown != nil {
				l.opts.Logf("wal: %s: writes resumed after %d failed attempts (%v)", l.dir, attempt, wasDown)
			}
			return nil
		}
		if !retry {
			return err
		}
		down := fmt.Errorf("%w: %w", ErrUnavailable, err)
		l.mu.Lock()
		first := l.down == nil
		l.down = down
		l.mu.Unlock()
		if first {
			l.opts.Logf("wal: %s: cannot write, refusing new records and retrying every %v: %v", l.dir, l.opts.RetryEvery, err)
		}
		if !wait || !l.waitRetry() {
			return down
		}
	}
}

// waitRetry waits RetryEvery, refusing front truncations meanwhile. It
// returns false if the log closes first.
func (l *Log) waitRetry() bool {
	t := time.NewTimer(l.opts.RetryEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return true
		case r := <-l.ctl:
			r.reply <- l.Unavailable()
		case <-l.stop:
			return false
		}
	}
}

// commit writes the batch in l.buf with one write and one fsync, opening a
// new segment first if the tail is full, and publishes its last sequence.
// If the write fails for want of space or an I/O error (retry true), what
// it wrote is cut off again and the log is as before. Any other error is
// fatal: a failed fsync above all, after which the page cache may claim
// data that the disk lost.
func (l *Log) commit(first uint64, records, bytes int) (retry bool, err error) {
	last := first + uint64(records) - 1
	l.watchStart()
	defer l.watchStop()
	t0 := time.Now()
	if l.tailBytes >= int64(l.opts.SegmentSize) {
		if retry, err := l.rotate(); err != nil {
			return retry, fmt.Errorf("wal: records %d..%d: %w", first, last, err)
		}
	}
	before := l.tailBytes
	if _, err := l.tail.Write(l.buf); err != nil {
		err = fmt.Errorf("wal: write records %d..%d to %s: %w", first, last, l.tailPath, err)
		if !writeRetryable(err) {
			return false, err
		}
		if cerr := l.cutBack(before); cerr != nil {
			return false, fmt.Errorf("%w; then %w", err, cerr)
		}
		return true, err
	}
	l.tailBytes += int64(len(l.buf))
	if !l.opts.NoSync {
		if err := l.tail.Sync(); err != nil {
			return false, fmt.Errorf("wal: fsync records %d..%d in %s: %w (not retried: the disk may have lost what the page cache holds; restart to recover from the disk)",
				first, last, l.tailPath, err)
		}
	}
	took := time.Since(t0)
	l.last.Store(last)
	if l.opts.OnBatch != nil {
		l.opts.OnBatch(records, bytes, took)
	}
	return false, nil
}

// cutBack truncates the tail segment to size after a failed write, so that
// no part of the batch stays, and makes that durable.
func (l *Log) cutBack(size int64) error {
	err := l.tail.Truncate(size)
	if err == nil && !l.opts.NoSync {
		err = l.tail.Sync()
	}
	if err != nil {
		return fmt.Errorf("wal: cut %s back to %d bytes after a failed write: %w", l.tailPath, size, err)
	}
	return nil
}

// rotate opens a new tail segment named by the next sequence, makes its
// directory entry durable and closes the old one (fsynced with its last
// batch). A failed create leaves the old tail in place (retry true).
func (l *Log) rotate() (retry bool, err error) {
	path := filepath.Join(l.dir, segmentName(l.last.Load()+1))
	f, err := l.fs.Create(path) // truncates what a failed attempt left
	if err != nil {
		return writeRetryable(err), fmt.Errorf("wal: create segment %s: %w", path, err)
	}
	if !l.opts.NoSync {
		// The directory entry must be durable before records in the file
		// are acknowledged.
		if err := l.fs.SyncDir(l.dir); err != nil {
			return false, errors.Join(err, f.Close())
		}
	}
	old := l.tail
	l.tail, l.tailPath, l.tailBytes = f, path, 0
	if err := old.Close(); err != nil {
		return false, fmt.Errorf("wal: close segment: %w", err)
	}
	return false, nil
}

// watchStart arms the stall watch for one commit; watchStop disarms it and,
// if the commit had been counted as stuck, lets Append take records again.
func (l *Log) watchStart() {
	l.mu.Lock()
	l.inCommit = true
	l.mu.Unlock()
	l.watch.Reset(l.opts.StallAfter)
}

func (l *Log) watchStop() {
	l.watch.Stop()
	l.mu.Lock()
	l.inCommit = false
	stuck := l.stuck
	l.stuck = nil
	l.mu.Unlock()
	if stuck != nil {
		l.opts.Logf("wal: %s: the stuck write or fsync returned; taking records again", l.dir)
	}
}

// stalled runs on the timer's goroutine when a commit took StallAfter.
// The records of the batch stay where they are: their owners applied them
// already, so they can only wait for the write to finish (or the process to
// end). Records that come later are refused until it does.
func (l *Log) stalled() {
	l.mu.Lock()
	if !l.inCommit || l.stuck != nil {
		l.mu.Unlock()
		return
	}
	l.stuck = fmt.Errorf("%w: a write or fsync of %s has not returned in %v", ErrUnavailable, l.dir, l.opts.StallAfter)
	l.mu.Unlock()
	l.opts.Logf("wal: %s: a write or fsync has not returned in %v; refusing new records until it does", l.dir, l.opts.StallAfter)
}

// fail makes err the log's fatal error and resolves with it every record
// that was not written: rest (taken from the queue already) and whatever is
// still queued. Append refuses everything after. Never retried: after a
// failed write or fsync, neither tidwall's memory nor the page cache can be
// trusted to match the disk.
func (l *Log) fail(err error, rest []pending) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	err = l.err
	queued := l.queue
	l.queue, l.arena = nil, nil
	l.inflight, l.inBytes = 0, 0
	l.resolved = l.accepted
	waiting := l.barriers
	l.barriers = nil
	l.mu.Unlock()
	for _, b := range waiting {
		b.done(err)
	}
	for _, p := range rest {
		if p.done != nil {
			p.done(0, err)
		}
	}
	for _, p := range queued {
		if p.done != nil {
			p.done(0, err)
		}
	}
}

// truncateFront runs on the owner; see TruncateFront.
func (l *Log) truncateFront(seq uint64) error {
	if err := l.Err(); err != nil {
		return err
	}
	first, last := l.first.Load(), l.last.Load()
	if seq <= first {
		return nil
	}
	if seq > last+1 {
		return fmt.Errorf("%w: truncate front to %d, but the last record is %d", ErrOutOfRange, seq, last)
	}
	// Its fsyncs can hang like a batch's, and the writer is as blocked.
	l.watchStart()
	fatal, err := l.dropFront(seq)
	l.watchStop()
	if err != nil {
		err = fmt.Errorf("wal: truncate front to %d in %q: %w", seq, l.dir, err)
		if fatal {
			l.fail(err, nil)
		}
		return err
	}
	l.first.Store(seq)
	return nil
}

// dropFront removes the records before seq as tidwall does: the segment
// holding seq is copied from seq on into <seq>.START, the segments before
// it are removed, and the copy renamed to <seq>. Open finishes a truncation
// a crash interrupted. Until the copy is in place nothing is changed, and a
// failure is not fatal (a full disk, say).
func (l *Log) dropFront(seq uint64) (fatal bool, err error) {
	segs, err := listSegments(l.dir)
	if err != nil {
		return false, err
	}
	i := -1 // the segment holding seq
	for k, s := range segs {
		if s.first <= seq {
			i = k
		}
	}
	if i < 0 {
		return false, nil
	}
	if segs[i].first == seq {
		for _, s := range segs[:i] {
			if err := l.fs.Remove(s.path); err != nil {
				return true, err
			}
		}
		return true, l.fs.SyncDir(l.dir)
	}
	data, err := readSegment(nil, segs[i].path)
	if err != nil {
		return false, err
	}
	off := 0
	for n := segs[i].first; n < seq; n++ {
		_, k := nextFrame(data[off:])
		if k == 0 {
			return true, fmt.Errorf("%w: record %d missing from %s", ErrCorrupt, n, segs[i].path)
		}
		off += k
	}
	rest := data[off:]
	final := filepath.Join(l.dir, segmentName(seq))
	start := final + ".START"
	if err := l.writeFile(start, rest); err != nil {
		return false, err
	}
	isTail := i == len(segs)-1
	if isTail {
		if err := l.tail.Close(); err != nil {
			return true, err
		}
	}
	for _, s := range segs[:i+1] {
		if err := l.fs.Remove(s.path); err != nil {
			return true, err
		}
	}
	if err := l.fs.Rename(start, final); err != nil {
		return true, err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return true, err
	}
	if isTail {
		if l.tail, err = l.fs.OpenAppend(final); err != nil {
			return true, err
		}
		l.tailPath, l.tailBytes = final, int64(len(rest))
	}
	return false, nil
}

// writeFile makes name hold data durably, through name.TEMP, fsync, rename
// and an fsync of the directory. On failure it removes what it wrote.
func (l *Log) writeFile(name string, data []byte) error {
	tmp := name + ".TEMP"
	f, err := l.fs.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && !l.opts.NoSync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, name)
	}
	if err == nil {
		return l.fs.SyncDir(l.dir)
	}
	if rerr := l.fs.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// segmentName is tidwall's name of the segment whose first record is seq.
func segmentName(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}
