package wal

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// appendersParallel is the number of concurrent appenders the system is
// sized for.
const appendersParallel = 1024

// BenchmarkAppendParallel measures group commit under load: many goroutines
// each append a record and wait for it to be durable, fsync on.
func BenchmarkAppendParallel(b *testing.B) {
	var batches, records, syncNanos atomic.Int64
	l := openLog(b, Options{Dir: b.TempDir(), OnBatch: func(n, _ int, took time.Duration) {
		batches.Add(1)
		records.Add(int64(n))
		syncNanos.Add(int64(took))
	}})
	l.Start()
	ev := holdEvent(1)
	b.SetParallelism(max(1, appendersParallel/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		e := ev
		acked := make(chan error, 1)
		done := func(_ uint64, err error) { acked <- err }
		for pb.Next() {
			for {
				err := l.Append(&e, done)
				if errors.Is(err, ErrFull) {
					runtime.Gosched()
					continue
				}
				if err != nil {
					b.Error(err)
					return
				}
				break
			}
			if err := <-acked; err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	requireNoErr(b, l.Close())
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	if n := batches.Load(); n > 0 {
		b.ReportMetric(float64(records.Load())/float64(n), "records/batch")
		b.ReportMetric(float64(syncNanos.Load())/float64(n)/1e3, "fsync-us/batch")
	}
}

// BenchmarkAppendOne measures the latency of one durable append with no
// other load: one write and one fsync.
func BenchmarkAppendOne(b *testing.B) {
	l := openLog(b, Options{Dir: b.TempDir()})
	l.Start()
	ev := holdEvent(1)
	acked := make(chan error, 1)
	done := func(_ uint64, err error) { acked <- err }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		requireNoErr(b, l.Append(&ev, done))
		requireNoErr(b, <-acked)
	}
	b.StopTimer()
	requireNoErr(b, l.Close())
}

const replayRecords = 1_000_000

var (
	benchDir     string // removed by TestMain
	benchDirOnce sync.Once
	benchDirErr  error
)

// replayLog builds, once per test binary, a log of replayRecords typical
// records without fsync.
func replayLog(b *testing.B) string {
	benchDirOnce.Do(func() {
		benchDir, benchDirErr = os.MkdirTemp("", "wal-replay-")
		if benchDirErr != nil {
			return
		}
		l, err := Open(Options{Dir: benchDir, NoSync: true, QueueMax: replayRecords})
		if err != nil {
			benchDirErr = err
			return
		}
		l.Start()
		for i := range replayRecords {
			ev := holdEvent(i)
			if err := l.Append(&ev, nil); err != nil {
				benchDirErr = errors.Join(err, l.Close())
				return
			}
		}
		benchDirErr = l.Close()
	})
	requireNoErr(b, benchDirErr)
	return benchDir
}

// BenchmarkReplay1M measures recovery: Open then Replay of 1,000,000 records.
func BenchmarkReplay1M(b *testing.B) {
	dir := replayLog(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		l := openLog(b, Options{Dir: dir})
		var n int
		var amount int64
		requireNoErr(b, l.Replay(0, func(_ uint64, ev *Event) error {
			n++
			amount += ev.Amount
			return nil
		}))
		requireNoErr(b, l.Close())
		requireEqual(b, n, replayRecords, "records replayed")
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*replayRecords), "ns/record")
	b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/replay")
}
