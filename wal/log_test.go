package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAppendReplayRoundTrip(t *testing.T) {
	r := testRand(t)
	opts := Options{Dir: filepath.Join(t.TempDir(), "log"), SegmentSize: 4 << 10}
	l := openLog(t, opts)
	requireEqual(t, l.FirstSeq(), 1, "first sequence of a new log")
	requireEqual(t, l.LastSeq(), 0, "last sequence of a new log")
	l.Start()

	var want []Event
	for i := range 300 {
		ev := randEvent(r)
		if i == 150 {
			// A large record spans many segment sizes on its own.
			ev.Blob = make([]byte, 3<<20)
			for j := range ev.Blob {
				ev.Blob[j] = byte(j * 7)
			}
		}
		want = append(want, ev)
		requireEqual(t, appendWait(t, l, &ev), uint64(i+1), "sequence")
		ev.Sale = "reused after Append" // the record is already encoded
	}
	requireEqual(t, l.LastSeq(), 300, "last sequence")
	requireNoErr(t, l.Close())

	segs, err := listSegments(opts.Dir)
	requireNoErr(t, err)
	requireTrue(t, len(segs) > 10, "want many segments, got %d", len(segs))

	first, got := replayAll(t, opts)
	requireEqual(t, first, 1, "first sequence")
	requireEqual(t, len(got), len(want), "records replayed")
	for i := range want {
		requireEvent(t, &got[i], &want[i], fmt.Sprintf("record %d", i+1))
	}

	// Replay from the middle, and past the end.
	l = openLog(t, opts)
	var seqs []uint64
	requireNoErr(t, l.Replay(290, func(seq uint64, ev *Event) error {
		seqs = append(seqs, seq)
		requireEvent(t, ev, &want[seq-1], "replay from 290")
		return nil
	}))
	requireEqual(t, len(seqs), 11, "records from 290")
	requireNoErr(t, l.Replay(301, func(uint64, *Event) error { return errors.New("called past the end") }))

	// An error from fn stops the replay and names the record.
	stop := errors.New("stop here")
	err = l.Replay(1, func(seq uint64, _ *Event) error {
		if seq == 42 {
			return stop
		}
		return nil
	})
	requireErrIs(t, err, stop)
	requireContains(t, err.Error(), "record 42")

	// The reopened log goes on from where it stopped.
	l.Start()
	ev := Event{Type: TypeMarker}
	requireEqual(t, appendWait(t, l, &ev), 301, "sequence after reopen")
	requireNoErr(t, l.Close())
}

func TestGroupCommit(t *testing.T) {
	const (
		appenders = 32
		each      = 100
		total     = appenders * each
	)
	var (
		mu         sync.Mutex
		batchSizes []int
		doneOrder  []uint64      // sequences in the order done ran
		acks       [total]uint64 // record id -> sequence
		calls      [total]int    // record id -> done calls
		failures   []error
	)
	release := make(chan struct{})
	var batches atomic.Int64
	opts := Options{
		Dir: t.TempDir(),
		OnBatch: func(n, bytes int, _ time.Duration) {
			mu.Lock()
			batchSizes = append(batchSizes, n)
			mu.Unlock()
		},
	}
	l := openLog(t, opts)
	// Stall the first batch until most records are queued, so that the
	// writer then sees a backlog whatever the disk's speed.
	l.beforeBatch = func() {
		if batches.Add(1) == 1 {
			<-release
		}
	}
	l.Start()

	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for i := range each {
				id := g*each + i
				ev := Event{Type: TypeHoldPlaced, Num: uint64(id), Hold: fmt.Sprint("h", id)}
				err := l.Append(&ev, func(seq uint64, err error) {
					mu.Lock()
					defer mu.Unlock()
					calls[id]++
					if err != nil {
						failures = append(failures, err)
						return
					}
					acks[id] = seq
					doneOrder = append(doneOrder, seq)
				})
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
		})
	}
	waitFor(t, 10*time.Second, "a backlog", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.inflight >= total/2
	})
	close(release)
	wg.Wait()
	waitFor(t, 30*time.Second, "every record durable", func() bool { return l.LastSeq() == total })
	requireNoErr(t, l.Close())

	mu.Lock()
	defer mu.Unlock()
	requireEqual(t, len(failures), 0, fmt.Sprint("failures ", failures))
	for id, n := range calls {
		requireEqual(t, n, 1, fmt.Sprintf("done calls of record %d", id))
	}
	requireTrue(t, slices.IsSorted(doneOrder), "done ran out of sequence order")
	requireEqual(t, len(doneOrder), total, "acknowledged records")
	for i, seq := range doneOrder {
		requireEqual(t, seq, uint64(i+1), "acknowledged sequence")
	}
	// Each appender's records got increasing sequences, in its own order.
	for g := range appenders {
		for i := 1; i < each; i++ {
			requireTrue(t, acks[g*each+i] > acks[g*each+i-1], "appender %d: record %d before record %d", g, i, i-1)
		}
	}
	sum, biggest := 0, 0
	for _, n := range batchSizes {
		sum += n
		biggest = max(biggest, n)
	}
	requireEqual(t, sum, total, "records in batches")
	requireTrue(t, biggest > 1, "no batch held more than one record: %v", batchSizes)
	t.Logf("%d batches, largest %d", len(batchSizes), biggest)

	// After reopen every record is there, in sequence order, with the
	// sequence its done reported.
	_, evs := replayAll(t, opts)
	requireEqual(t, len(evs), total, "records replayed")
	for i, ev := range evs {
		requireEqual(t, acks[ev.Num], uint64(i+1), fmt.Sprintf("sequence of record %d", ev.Num))
	}
}

func TestAppendFullAndClosed(t *testing.T) {
	l := openLog(t, Options{Dir: t.TempDir(), QueueMax: 4})
	release := make(chan struct{})
	var once sync.Once
	l.beforeBatch = func() { once.Do(func() { <-release }) }
	l.Start()

	var acked atomic.Int64
	done := func(_ uint64, err error) {
		if err == nil {
			acked.Add(1)
		}
	}
	ev := Event{Type: TypeMarker}
	for range 4 {
		requireNoErr(t, l.Append(&ev, done))
	}
	// The writer is stalled with at most all four: the fifth is refused.
	requireErrIs(t, l.Append(&ev, done), ErrFull)
	close(release)
	waitFor(t, 10*time.Second, "four acks", func() bool { return acked.Load() == 4 })
	requireNoErr(t, l.Append(&ev, done)) // room again

	requireNoErr(t, l.Close())
	requireEqual(t, acked.Load(), 5, "records acknowledged by Close")
	requireErrIs(t, l.Append(&ev, done), ErrClosed)
	requireErrIs(t, l.TruncateFront(2), ErrClosed)
	requireErrIs(t, l.Close(), ErrClosed)
}

func TestAppendRefusesBadEvents(t *testing.T) {
	l := openLog(t, Options{Dir: t.TempDir()})
	l.Start()
	called := false
	done := func(uint64, error) { called = true }
	requireErrIs(t, l.Append(&Event{}, done), ErrEventType)
	requireErrIs(t, l.Append(&Event{Type: TypeHoldPlaced, Seats: make([]uint32, eventSeatsMax+1)}, done), ErrEventBounds)
	requireNoErr(t, l.Close())
	requireTrue(t, !called, "done called for a refused event")
	requireEqual(t, l.LastSeq(), 0, "last sequence")
}

// TestFatalWriteError closes the tail segment under the writer, so that a
// write fails like a dying disk would: the failed and later records are
// refused, and exactly the acknowledged ones are in the log.
func TestFatalWriteError(t *testing.T) {
	const (
		appenders = 8
		each      = 200
		failAt    = 5 // the batch that fails
	)
	opts := Options{Dir: t.TempDir(), SegmentSize: 2 << 10, BatchMax: 50}
	l := openLog(t, opts)
	var batches int // writer goroutine only
	l.beforeBatch = func() {
		if batches++; batches == failAt {
			if err := l.tail.Close(); err != nil {
				t.Error(err)
			}
		}
	}
	l.Start()

	var (
		mu       sync.Mutex
		acked    = map[uint64]uint64{} // sequence -> record id
		failed   int
		calls    = map[uint64]int{} // record id -> done calls
		accepted int
		refused  []error
	)
	var wg sync.WaitGroup
	for g := range appenders {
		wg.Go(func() {
			for i := range each {
				id := uint64(g*each + i)
				ev := Event{Type: TypeOrderPaid, Num: id}
				err := l.Append(&ev, func(seq uint64, err error) {
					mu.Lock()
					defer mu.Unlock()
					calls[id]++
					if err != nil {
						failed++
						return
					}
					acked[seq] = id
				})
				mu.Lock()
				if err != nil {
					refused = append(refused, err)
				} else {
					accepted++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "the fatal error", func() bool { return l.Err() != nil })
	fatal := l.Err()
	t.Logf("fatal error: %v", fatal)
	requireErrIs(t, fatal, os.ErrClosed)

	// Later appends get the fatal error; Close reports it.
	requireErrIs(t, l.Append(&Event{Type: TypeMarker}, func(uint64, error) { t.Error("done called for a refused append") }), fatal)
	requireErrIs(t, l.TruncateFront(1), fatal)
	requireErrIs(t, l.Close(), fatal)

	mu.Lock()
	defer mu.Unlock()
	requireEqual(t, len(calls), accepted, "records with a done call")
	for id, n := range calls {
		requireEqual(t, n, 1, fmt.Sprintf("done calls of record %d", id))
	}
	requireTrue(t, failed > 0, "no pending record failed")
	requireEqual(t, len(acked)+failed, accepted, "acknowledged + failed")
	requireEqual(t, len(refused)+accepted, appenders*each, "refused + accepted")
	for _, err := range refused {
		requireTrue(t, errors.Is(err, fatal), "append refused with %v, want the fatal error", err)
	}

	// The log holds exactly the acknowledged records.
	_, evs := replayAll(t, opts)
	requireEqual(t, len(evs), len(acked), "records in the log")
	for i, ev := range evs {
		id, ok := acked[uint64(i+1)]
		requireTrue(t, ok, "record %d in the log was never acknowledged", i+1)
		requireEqual(t, ev.Num, id, fmt.Sprintf("record %d", i+1))
	}
}

func TestTruncateFront(t *testing.T) {
	opts := Options{Dir: t.TempDir(), SegmentSize: 1 << 10}
	l := openLog(t, opts)
	// Before Start the caller owns the log and TruncateFront runs inline.
	for i := range 50 {
		ev := holdEvent(i)
		requireNoErr(t, l.Append(&ev, nil))
	}
	requireNoErr(t, l.TruncateFront(10)) // writes the queued records first
	requireEqual(t, l.FirstSeq(), 10, "first after truncate before Start")
	requireEqual(t, l.LastSeq(), 50, "last")
	l.Start()

	for i := 50; i < 100; i++ {
		ev := holdEvent(i)
		requireNoErr(t, l.Append(&ev, nil))
	}
	requireNoErr(t, l.TruncateFront(60))
	requireEqual(t, l.FirstSeq(), 60, "first")
	requireEqual(t, l.LastSeq(), 100, "last: the queued records were written first")
	requireNoErr(t, l.TruncateFront(30)) // already gone: nothing to do
	requireEqual(t, l.FirstSeq(), 60, "first after a no-op")
	requireErrIs(t, l.TruncateFront(102), ErrOutOfRange)
	requireNoErr(t, l.Err())
	requireNoErr(t, l.Close())

	first, evs := replayAll(t, opts)
	requireEqual(t, first, 60, "first after reopen")
	requireEqual(t, len(evs), 41, "records kept")
	for i, ev := range evs {
		want := holdEvent(59 + i)
		requireEvent(t, &ev, &want, fmt.Sprintf("record %d", 60+i))
	}

	// Dropping every record leaves an empty log that goes on from there.
	l = openLog(t, opts)
	l.Start()
	requireNoErr(t, l.TruncateFront(101))
	requireEqual(t, l.FirstSeq(), 101, "first of an emptied log")
	requireEqual(t, l.LastSeq(), 100, "last of an emptied log")
	requireNoErr(t, l.Close())
	l = openLog(t, opts)
	requireEqual(t, l.FirstSeq(), 101, "first after reopen")
	requireEqual(t, l.LastSeq(), 100, "last after reopen")
	requireNoErr(t, l.Replay(0, func(uint64, *Event) error { return errors.New("called on an empty log") }))
	l.Start()
	ev := Event{Type: TypeMarker}
	requireEqual(t, appendWait(t, l, &ev), 101, "sequence after emptying")
	requireNoErr(t, l.Close())
}

// TestCloseBeforeStart checks that records appended before Start are
// written by Close.
func TestCloseBeforeStart(t *testing.T) {
	opts := Options{Dir: t.TempDir()}
	l := openLog(t, opts)
	var seqs []uint64
	for i := range 3 {
		ev := holdEvent(i)
		requireNoErr(t, l.Append(&ev, func(seq uint64, err error) {
			requireNoErr(t, err)
			seqs = append(seqs, seq)
		}))
	}
	requireNoErr(t, l.Close())
	requireEqual(t, fmt.Sprint(seqs), "[1 2 3]", "acknowledged sequences")
	_, evs := replayAll(t, opts)
	requireEqual(t, len(evs), 3, "records")
}

// TestSegmentRotationTracking checks the writer's model of tidwall's tail
// segment, which decides when the directory is fsynced, against the files.
func TestSegmentRotationTracking(t *testing.T) {
	r := testRand(t)
	opts := Options{Dir: t.TempDir(), SegmentSize: 700, BatchMax: 5}
	for round := range 3 { // reopen: the model restarts from the file size
		l := openLog(t, opts)
		var mismatch error
		l.beforeBatch = func() {
			size, err := tailSize(opts.Dir)
			if err == nil && size != l.tailBytes {
				err = fmt.Errorf("tail segment has %d bytes, writer thinks %d", size, l.tailBytes)
			}
			if err != nil && mismatch == nil {
				mismatch = err
			}
		}
		l.Start()
		for range 100 {
			ev := randEvent(r)
			requireNoErr(t, l.Append(&ev, nil))
		}
		if round == 1 {
			requireNoErr(t, l.TruncateFront(l.LastSeq()-3))
		}
		requireNoErr(t, l.Close())
		requireNoErr(t, mismatch)
	}
}

// TestAppendAllocs holds Append to its allocation budget: none per record
// once the buffers have grown.
func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	l := openLog(t, Options{Dir: t.TempDir(), NoSync: true})
	l.Start()
	ev := holdEvent(1)
	done := func(uint64, error) {}
	for range 10000 {
		requireNoErr(t, l.Append(&ev, done))
	}
	allocs := testing.AllocsPerRun(20000, func() {
		if err := l.Append(&ev, done); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	})
	requireNoErr(t, l.Close())
	t.Logf("%.3f allocations per Append (writer included)", allocs)
	requireTrue(t, allocs < 0.5, "%.2f allocations per Append, want none", allocs)
}

// TestOpenRefusesBadOptions covers the limits on Options.
func TestOpenRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []Options{
		{},
		{Dir: dir, SegmentSize: -1},
		{Dir: dir, SegmentSize: segmentSizeMax + 1},
		{Dir: dir, QueueMax: queueMaxMax + 1},
		{Dir: dir, BatchMax: -5},
	} {
		_, err := Open(o)
		requireTrue(t, err != nil, "Open(%+v) succeeded", o)
	}
	entries, err := os.ReadDir(dir)
	requireNoErr(t, err)
	requireEqual(t, len(entries), 0, "files created by refused opens")
}

// TestReplayAllocs holds Replay to the allocations of the event decoder:
// nothing more per record.
func TestReplayAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	const records = 2000
	opts := Options{Dir: t.TempDir(), NoSync: true, SegmentSize: 64 << 10}
	l := openLog(t, opts)
	l.Start()
	for i := range records {
		ev := holdEvent(i)
		requireNoErr(t, l.Append(&ev, nil))
	}
	requireNoErr(t, l.Close())

	ev := holdEvent(1)
	body := ev.AppendBinary(nil)
	perEvent := testing.AllocsPerRun(100, func() {
		if err := ev.UnmarshalBinary(body); err != nil {
			t.Fatal(err)
		}
	})
	l = openLog(t, opts)
	perReplay := testing.AllocsPerRun(3, func() {
		requireNoErr(t, l.Replay(0, func(uint64, *Event) error { return nil }))
	})
	requireNoErr(t, l.Close())
	perRecord := (perReplay - 100) / records // a fixed 100 for the segment list and buffers
	t.Logf("%.0f allocations per event decode, %.0f per replay of %d records", perEvent, perReplay, records)
	requireTrue(t, perRecord <= perEvent, "%.2f allocations per replayed record, want at most the decoder's %.0f", perRecord, perEvent)
}
