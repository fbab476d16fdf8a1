package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faultOpts is a log on a FaultFS that retries and counts a stall fast.
func faultOpts(t *testing.T, fs *FaultFS) Options {
	return Options{Dir: t.TempDir(), FS: fs, SegmentSize: 2 << 10, RetryEvery: 20 * time.Millisecond, StallAfter: 100 * time.Millisecond}
}

// appendAsync appends ev and returns where its outcome will arrive.
// startFaulty opens a started log on a FaultFS with faultOpts and appends
// n hold records (0..n-1), durable before it returns.
func startFaulty(t *testing.T, n int) (*FaultFS, Options, *Log) {
	t.Helper()
	fs := NewFaultFS(nil)
	opts := faultOpts(t, fs)
	l := openLog(t, opts)
	l.Start()
	for i := range n {
		ev := holdEvent(i)
		appendWait(t, l, &ev)
	}
	return fs, opts, l
}

func appendAsync(t *testing.T, l *Log, ev *Event) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	requireNoErr(t, l.Append(ev, func(_ uint64, err error) { ch <- err }))
	return ch
}

func requireOutcome(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no outcome within 10s", what)
	}
	return nil
}

func requirePending(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: resolved (%v) while the disk fails", what, err)
	default:
	}
}

// TestWriteFailsThenClears fills the disk (every write fails with half its
// bytes written) and then frees it, for ENOSPC and EIO: the log refuses new
// records with ErrUnavailable and the cause, keeps the one it was writing,
// leaves no byte of it in the file, and writes it (and then new records)
// once the condition clears. The log replays every acknowledged record once.
func TestWriteFailsThenClears(t *testing.T) {
	for _, cause := range []error{syscall.ENOSPC, syscall.EIO} {
		t.Run(cause.Error(), func(t *testing.T) {
			fs := NewFaultFS(nil)
			opts := faultOpts(t, fs)
			var notes []string
			var notesMu sync.Mutex
			opts.Logf = func(f string, a ...any) {
				notesMu.Lock()
				notes = append(notes, fmt.Sprintf(f, a...))
				notesMu.Unlock()
			}
			l := openLog(t, opts)
			l.Start()
			for i := range 3 {
				ev := holdEvent(i)
				appendWait(t, l, &ev)
			}
			size, err := tailSize(opts.Dir)
			requireNoErr(t, err)

			fs.FailWrites(-1, cause)
			held := holdEvent(3)
			heldDone := appendAsync(t, l, &held)
			waitFor(t, 5*time.Second, "the log to report the failure", func() bool { return l.Unavailable() != nil })
			waitFor(t, 5*time.Second, "a retry", func() bool { return fs.WritesFailed() >= 3 })
			down := l.Unavailable()
			requireErrIs(t, down, ErrUnavailable)
			requireErrIs(t, down, cause)
			requireEqual(t, l.Err(), error(nil), "fatal error")

			// Refused records change nothing; the held one waits.
			refused := holdEvent(4)
			err = l.Append(&refused, func(uint64, error) { t.Error("done called for a refused append") })
			requireErrIs(t, err, ErrUnavailable)
			requirePending(t, heldDone, "the record being written")
			requireEqual(t, l.LastSeq(), 3, "last durable sequence")
			// The writer retries once a second, and each try writes half a
			// batch before it fails and is cut back: between tries the file
			// is as it was before the failure.
			waitFor(t, 5*time.Second, "the tail cut back after a failed write", func() bool {
				got, err := tailSize(opts.Dir)
				return err == nil && got == size
			})

			fs.Heal()
			requireNoErr(t, requireOutcome(t, heldDone, "the held record"))
			waitFor(t, 5*time.Second, "the log to take records again", func() bool { return l.Unavailable() == nil })
			after := holdEvent(5)
			requireEqual(t, appendWait(t, l, &after), 5, "sequence after the failure")
			requireNoErr(t, l.Close())

			_, evs := replayAll(t, opts)
			requireEqual(t, len(evs), 5, "records")
			requireEqual(t, evs[3].Hold, held.Hold, "record 4")
			requireEqual(t, evs[4].Hold, after.Hold, "record 5")
			notesMu.Lock()
			joined := strings.Join(notes, "\n")
			notesMu.Unlock()
			requireContains(t, joined, "cannot write")
			requireContains(t, joined, "writes resumed")
		})
	}
}

// TestWriteFailsAcrossSegments runs a load through a disk that fails now and
// then, with small segments so that failures hit new segments too: every
// acknowledged record replays, in order, once.
func TestWriteFailsAcrossSegments(t *testing.T) {
	fs := NewFaultFS(nil)
	opts := faultOpts(t, fs)
	opts.SegmentSize = 300
	opts.BatchMax = 3
	opts.RetryEvery = time.Millisecond
	l := openLog(t, opts)
	l.Start()
	var want []string
	for i := range 120 {
		if i%7 == 3 {
			fs.FailWrites(2, syscall.ENOSPC)
		}
		ev := holdEvent(i)
		for {
			err := l.Append(&ev, nil)
			if err == nil {
				break
			}
			requireErrIs(t, err, ErrUnavailable)
			time.Sleep(time.Millisecond) // the retry is what is tested; a poll would be the same loop
		}
		want = append(want, ev.Hold)
	}
	waitFor(t, 5*time.Second, "every record to be written", func() bool { return l.LastSeq() == uint64(len(want)) })
	requireNoErr(t, l.Close())
	requireTrue(t, fs.WritesFailed() > 0, "no write failed")
	_, evs := replayAll(t, opts)
	requireEqual(t, len(evs), len(want), "records")
	for i := range evs {
		requireEqual(t, evs[i].Hold, want[i], fmt.Sprintf("record %d", i+1))
	}
}

// TestStuckFsync freezes the disk under a batch: once StallAfter passes the
// log refuses new records with ErrUnavailable, the stuck record waits, and
// all goes on once the fsync returns.
func TestStuckFsync(t *testing.T) {
	fs, opts, l := startFaulty(t, 1)

	fs.BlockSyncs()
	stuck := holdEvent(1)
	stuckDone := appendAsync(t, l, &stuck)
	waitFor(t, 5*time.Second, "the fsync to block", func() bool { return fs.SyncsBlocked() == 1 })
	requireEqual(t, l.Unavailable(), error(nil), "unavailable before StallAfter")
	waitFor(t, 5*time.Second, "the stall to be noticed", func() bool { return l.Unavailable() != nil })
	requireErrIs(t, l.Unavailable(), ErrUnavailable)
	refused := holdEvent(2)
	requireErrIs(t, l.Append(&refused, nil), ErrUnavailable)
	requirePending(t, stuckDone, "the stuck record")

	fs.Heal()
	requireNoErr(t, requireOutcome(t, stuckDone, "the stuck record"))
	waitFor(t, 5*time.Second, "the log to take records again", func() bool { return l.Unavailable() == nil })
	after := holdEvent(3)
	requireEqual(t, appendWait(t, l, &after), 3, "sequence after the stall")
	requireNoErr(t, l.Close())
	_, evs := replayAll(t, opts)
	requireEqual(t, len(evs), 3, "records")
}

// TestFsyncErrorIsFatal: an fsync that fails is never retried, the log stops
// for good with an error that says why, and a reopen recovers.
func TestFsyncErrorIsFatal(t *testing.T) {
	fs, opts, l := startFaulty(t, 1)
	fs.FailSyncs(1, syscall.EIO)
	bad := holdEvent(1)
	err := requireOutcome(t, appendAsync(t, l, &bad), "the record whose fsync failed")
	requireErrIs(t, err, syscall.EIO)
	requireContains(t, err.Error(), "not retried")
	requireErrIs(t, l.Err(), syscall.EIO)
	requireErrIs(t, l.Unavailable(), syscall.EIO)
	later := holdEvent(2)
	requireErrIs(t, l.Append(&later, nil), syscall.EIO)
	requireErrIs(t, l.Close(), syscall.EIO)

	_, evs := replayAll(t, Options{Dir: opts.Dir})
	requireTrue(t, len(evs) >= 1 && evs[0].Hold == holdEvent(0).Hold, "the acknowledged record is gone: %d records", len(evs))
}

// TestTornTailRepairWithoutSpace opens a log with a torn tail on a full
// disk: the repair cuts the tail in place, keeps no .broken copy (and no
// part of one), and says in its notice what it cut.
func TestTornTailRepairWithoutSpace(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	l.Start()
	for i := range 5 {
		ev := holdEvent(i)
		appendWait(t, l, &ev)
	}
	requireNoErr(t, l.Close())
	segs, err := listSegments(dir)
	requireNoErr(t, err)
	tail := segs[len(segs)-1].path
	fi, err := os.Stat(tail)
	requireNoErr(t, err)
	appendFile(t, tail, []byte{40, 1, 2, 3, 4, 5}) // an entry of 40 bytes cut after 5

	fs := NewFaultFS(nil)
	fs.FailWrites(-1, syscall.ENOSPC)
	var notes []string
	opts := Options{Dir: dir, FS: fs, Logf: func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }}
	l = openLog(t, opts)
	requireEqual(t, l.LastSeq(), 5, "last sequence after the repair")
	requireNoErr(t, l.Close())
	requireEqual(t, len(notes), 1, "repair notices")
	requireContains(t, notes[0], "cut a torn tail of 6 bytes")
	requireContains(t, notes[0], "begin 280102030405")
	broken, err := filepath.Glob(filepath.Join(dir, "*.broken*"))
	requireNoErr(t, err)
	requireEqual(t, len(broken), 0, ".broken files")
	got, err := os.Stat(tail)
	requireNoErr(t, err)
	requireEqual(t, got.Size(), fi.Size(), "tail size after the repair")
	_, evs := replayAll(t, Options{Dir: dir})
	requireEqual(t, len(evs), 5, "records")
}

// TestTruncateFrontWithoutSpace: a front truncation that cannot write its
// copy of the segment leaves the log as it was and does not stop it.
func TestTruncateFrontWithoutSpace(t *testing.T) {
	fs := NewFaultFS(nil)
	opts := faultOpts(t, fs)
	opts.SegmentSize = 64 << 10
	l := openLog(t, opts)
	l.Start()
	for i := range 5 {
		ev := holdEvent(i)
		appendWait(t, l, &ev)
	}
	fs.FailWrites(1, syscall.ENOSPC)
	err := l.TruncateFront(3)
	requireErrIs(t, err, syscall.ENOSPC)
	requireEqual(t, l.Err(), error(nil), "fatal error")
	requireEqual(t, l.FirstSeq(), 1, "first sequence")
	requireNoErr(t, l.TruncateFront(3))
	ev := holdEvent(5)
	appendWait(t, l, &ev)
	requireNoErr(t, l.Close())
	first, evs := replayAll(t, opts)
	requireEqual(t, first, 3, "first sequence after reopening")
	requireEqual(t, len(evs), 4, "records")
	tmp, err := filepath.Glob(filepath.Join(opts.Dir, "*.TEMP"))
	requireNoErr(t, err)
	requireEqual(t, len(tmp), 0, "temporary files left")
}

// TestCloseWhileDown: Close gives up on a batch the disk keeps refusing,
// failing its records with ErrUnavailable, and leaves none of it in the log.
func TestCloseWhileDown(t *testing.T) {
	fs, opts, l := startFaulty(t, 1)
	fs.FailWrites(-1, syscall.ENOSPC)
	held := holdEvent(1)
	heldDone := appendAsync(t, l, &held)
	waitFor(t, 5*time.Second, "the log to report the failure", func() bool { return l.Unavailable() != nil })
	requireErrIs(t, l.Close(), ErrUnavailable)
	requireErrIs(t, requireOutcome(t, heldDone, "the held record"), ErrUnavailable)
	fs.Heal()
	_, evs := replayAll(t, Options{Dir: opts.Dir})
	requireEqual(t, len(evs), 1, "records")
}

// TestStuckTruncateFront: a front truncation whose fsync hangs makes the log
// unavailable like a stuck batch, and finishes once the fsync returns.
func TestStuckTruncateFront(t *testing.T) {
	fs, opts, l := startFaulty(t, 5)
	fs.BlockSyncs()
	done := make(chan error, 1)
	go func() { done <- l.TruncateFront(3) }()
	waitFor(t, 5*time.Second, "the stall to be noticed", func() bool { return l.Unavailable() != nil })
	requireErrIs(t, l.Unavailable(), ErrUnavailable)
	fs.Heal()
	requireNoErr(t, requireOutcome(t, done, "the truncation"))
	requireEqual(t, l.Unavailable(), error(nil), "unavailable after the fsync returned")
	ev := holdEvent(5)
	appendWait(t, l, &ev)
	requireNoErr(t, l.Close())
	first, evs := replayAll(t, opts)
	requireEqual(t, first, 3, "first sequence")
	requireEqual(t, len(evs), 4, "records")
}

// TestBarrierDuringOutage: while a batch cannot be written, a barrier that
// would wait for it answers at once with the log's unavailability instead
// of waiting for the outage to end (readers would pile up behind it); with
// nothing in flight it still answers nil; after the outage it waits again.
func TestBarrierDuringOutage(t *testing.T) {
	fs, _, l := startFaulty(t, 1)
	barrier := func() error {
		got := make(chan error, 1)
		l.Barrier(func(err error) { got <- err })
		select {
		case err := <-got:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("the barrier did not answer")
			return nil
		}
	}
	requireEqual(t, barrier(), error(nil), "nothing in flight")

	fs.FailWrites(-1, syscall.ENOSPC)
	held := holdEvent(1)
	heldDone := appendAsync(t, l, &held)
	waitFor(t, 5*time.Second, "the log to report the failure", func() bool { return l.Unavailable() != nil })
	requireErrIs(t, barrier(), ErrUnavailable)

	fs.Heal()
	requireNoErr(t, requireOutcome(t, heldDone, "the held record"))
	waitFor(t, 5*time.Second, "the log to take records again", func() bool { return l.Unavailable() == nil })
	requireEqual(t, barrier(), error(nil), "after the outage, nothing in flight")
	requireNoErr(t, l.Close())
}
