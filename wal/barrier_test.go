package wal

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBarrier: a barrier resolves only after every record accepted before it
// is durable, at once when nothing is in flight, and with the fatal error
// after a failure.
func TestBarrier(t *testing.T) {
	l := openLog(t, Options{Dir: t.TempDir()})
	release := make(chan struct{})
	var once sync.Once
	l.beforeBatch = func() { once.Do(func() { <-release }) }
	l.Start()

	var acked atomic.Int64
	ev := Event{Type: TypeMarker}
	for range 3 {
		requireNoErr(t, l.Append(&ev, func(_ uint64, err error) {
			if err == nil {
				acked.Add(1)
			}
		}))
	}
	var barrierAcked atomic.Int64 // acked records seen when the barrier ran
	barrierAcked.Store(-1)
	l.Barrier(func(err error) {
		requireNoErr(t, err)
		barrierAcked.Store(acked.Load())
	})
	time.Sleep(20 * time.Millisecond) // the writer is stalled: nothing may resolve
	requireEqual(t, barrierAcked.Load(), -1, "barrier before its records are durable")
	close(release)
	waitFor(t, 10*time.Second, "barrier", func() bool { return barrierAcked.Load() >= 0 })
	requireEqual(t, barrierAcked.Load(), 3, "records durable when the barrier ran")

	ran := false
	l.Barrier(func(err error) { ran = err == nil })
	requireTrue(t, ran, "a barrier with nothing in flight runs at once")
	requireNoErr(t, l.Close())
}

func TestBarrierAfterFailure(t *testing.T) {
	l := openLog(t, Options{Dir: t.TempDir()})
	l.beforeBatch = func() { l.tail.Close() } // the next write fails
	l.Start()
	ev := Event{Type: TypeMarker}
	requireNoErr(t, l.Append(&ev, func(uint64, error) {}))
	got := make(chan error, 1)
	l.Barrier(func(err error) { got <- err })
	select {
	case err := <-got:
		requireTrue(t, err != nil, "barrier after a failed write resolved without the error")
	case <-time.After(10 * time.Second):
		t.Fatal("barrier never resolved after a failed write")
	}
	l.Close()
}
