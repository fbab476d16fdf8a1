package wal

import (
	"encoding/binary"
	"fmt"
	"time"

	twal "github.com/tidwall/wal"
)

// run is the writer goroutine. It sleeps until the queue is non-empty, then
// writes all of it: whatever piled up during one fsync becomes the next
// batch, so batches stay small at light load and grow under load.
func (l *Log) run() {
	defer close(l.stopped)
	for {
		select {
		case <-l.signal:
			l.flush()
		case r := <-l.ctl:
			l.flush()
			r.reply <- l.truncateFront(r.seq)
		case <-l.stop:
			// Close set closed under mu before it closed stop, so nothing
			// is queued after this flush.
			l.flush()
			return
		}
	}
}

// flush takes the whole queue at once and writes it in batches of at most
// BatchMax records and about batchBytesMax bytes, one write and one fsync
// each, then resolves every done callback of the batch. Runs on the owner.
func (l *Log) flush() {
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
		end, bytes, rotated := start, 0, false
		if l.tailBytes > int64(l.opts.SegmentSize) {
			rotated = true // tidwall cycles first: the tail was opened over size
			l.tailBytes = 0
		}
		for end < len(q) && end-start < l.opts.BatchMax && (end == start || bytes < batchBytesMax) {
			rec := arena[off:q[end].end]
			seq := first + uint64(end-start)
			sealRecord(rec, seq)
			l.batch.Write(seq, rec)
			bytes += len(rec)
			off = q[end].end
			end++
			// Mirror tidwall's rule: the segment is cycled right after the
			// entry (uvarint length + record) that takes it to SegmentSize.
			l.tailBytes += int64(uvarintLen(len(rec)) + len(rec))
			if l.tailBytes >= int64(l.opts.SegmentSize) {
				rotated = true
				l.tailBytes = 0
			}
		}
		if err := l.commit(first, end-start, bytes, rotated); err != nil {
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
}

// commit writes the batch built in l.batch with one write and one fsync,
// and publishes its last sequence. Any error is fatal.
func (l *Log) commit(first uint64, records, bytes int, rotated bool) error {
	last := first + uint64(records) - 1
	t0 := time.Now()
	err := l.tw.WriteBatch(&l.batch)
	if bytes > bufferKeepBytesMax {
		l.batch = twal.Batch{} // drop the buffer a large record grew
	}
	if err != nil {
		l.batch.Clear()
		return fmt.Errorf("wal: write records %d..%d to %q: %w", first, last, l.dir, err)
	}
	if rotated {
		// A new segment file was created: its directory entry must be
		// durable before its records are acknowledged.
		if !l.opts.NoSync {
			if err := syncDir(l.dir); err != nil {
				return fmt.Errorf("wal: records %d..%d: %w", first, last, err)
			}
		}
		// tidwall keeps the segment it just closed in its read cache; we
		// never read through it.
		if err := l.tw.ClearCache(); err != nil {
			return fmt.Errorf("wal: records %d..%d: %w", first, last, err)
		}
	}
	took := time.Since(t0)
	l.last.Store(last)
	if l.opts.OnBatch != nil {
		l.opts.OnBatch(records, bytes, took)
	}
	return nil
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
	err := l.tw.TruncateFront(seq)
	if err == nil {
		// tidwall removed and renamed files without syncing the directory.
		err = syncDir(l.dir)
	}
	if err == nil {
		// The tail segment may have been rewritten.
		l.tailBytes, err = tailSize(l.dir)
	}
	if err != nil {
		err = fmt.Errorf("wal: truncate front to %d in %q: %w", seq, l.dir, err)
		l.fail(err, nil)
		return err
	}
	l.first.Store(seq)
	return nil
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}
