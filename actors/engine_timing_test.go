package actors

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/wal"
)

// Benchmarks of the engine as a whole: durable holds through the actor tree
// and the log, recovery time, and the memory of a big sale. The figures are
// for the machine they run on; nothing here asserts a time.

// batchStats counts the log's batches through Config.OnBatch.
type batchStats struct {
	batches, records atomic.Int64
}

func (s *batchStats) onBatch(records, _ int, _ time.Duration) {
	s.batches.Add(1)
	s.records.Add(int64(records))
}

func (s *batchStats) reset() {
	s.batches.Store(0)
	s.records.Store(0)
}

// openBench opens an engine on a fresh directory with fsync as asked, and
// closes it when the benchmark ends.
func openBench(b *testing.B, noSync bool, stats *batchStats) *Engine {
	b.Helper()
	cfg := Config{Dir: b.TempDir(), NoSync: noSync, CallTimeout: time.Minute}
	if stats != nil {
		cfg.OnBatch = stats.onBatch
	}
	e, err := Open(cfg)
	requireNoError(b, err)
	b.Cleanup(func() { requireNoError(b, e.Close()) })
	return e
}

// bigSaleDef is a sale of two general-admission zones of 1,000,000 seats.
func bigSaleDef(id string, maxPerBuyer int) SaleDef {
	return SaleDef{ID: id, MaxPerBuyer: maxPerBuyer, Zones: []ZoneDef{
		{ID: "ga1", PriceCents: 4500, Capacity: 1_000_000},
		{ID: "ga2", PriceCents: 4500, Capacity: 1_000_000},
	}}
}

// holdsPerBuyer is max_per_buyer in the hold benchmarks: buyers rotate after
// that many single-seat holds.
const holdsPerBuyer = 100

// benchHolds makes b.N single-seat holds from callers goroutines, in both
// zones by turns, and reports holds per second and the log's batch size.
func benchHolds(b *testing.B, callers int) {
	b.ReportAllocs()
	stats := &batchStats{}
	e := openBench(b, false, stats)
	s, cerr := e.CreateSale(bigSaleDef("bench", holdsPerBuyer))
	if cerr != nil {
		b.Fatal(cerr)
	}
	if b.N > 2_000_000 {
		b.Fatalf("%d holds do not fit 2,000,000 seats; lower -benchtime", b.N)
	}
	buyers := make([]string, b.N/holdsPerBuyer+1)
	for i := range buyers {
		buyers[i] = fmt.Sprintf("buyer-%d", i)
	}
	var next atomic.Int64
	var failed atomic.Pointer[Error]
	var wg sync.WaitGroup
	stats.reset()
	b.ResetTimer()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= b.N {
					return
				}
				zone := "ga1"
				if i%2 == 1 {
					zone = "ga2"
				}
				r := s.Hold(HoldRequest{Buyer: buyers[i/holdsPerBuyer], Zone: zone, Quantity: 1})
				if r.Err != nil {
					failed.CompareAndSwap(nil, r.Err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatalf("hold refused: %v", err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "holds/s")
	if n := stats.batches.Load(); n > 0 {
		b.ReportMetric(float64(stats.records.Load())/float64(n), "records/batch")
	}
	free, held, _ := s.Stock()
	requireEqual(b, [2]int64{free, held}, [2]int64{2_000_000 - int64(b.N), int64(b.N)})
}

// BenchmarkDurableHolds1024: holds per second with 1,024 callers at once,
// every hold fsynced before its answer (group commit).
func BenchmarkDurableHolds1024(b *testing.B) { benchHolds(b, 1024) }

// BenchmarkDurableHoldOne: the latency of one durable hold (ns/op) when
// nobody else writes: one fsync per hold.
func BenchmarkDurableHoldOne(b *testing.B) { benchHolds(b, 1) }

// Shape of the recovery log: one sale with a 1,000,000-seat zone; every
// round places two holds of 2 seats, releases one and buys the other, as a
// busy on-sale writes them.
const (
	recoveryPrice      = 4500
	recoveryRoundRecs  = 4
	recoveryBuyerSeats = 100 // max_per_buyer; a buyer buys 2 seats a round
	recoveryWaitEvery  = 8192
)

// writeRecoveryLog writes a log of about records records straight through
// the wal package and returns how many rounds it wrote.
func writeRecoveryLog(tb testing.TB, dir string, records int) int {
	tb.Helper()
	lg, err := wal.Open(wal.Options{Dir: filepath.Join(dir, "wal"), NoSync: true})
	requireNoError(tb, err)
	lg.Start()
	def := SaleDef{ID: "rec", HoldTTLS: 600, MaxPerBuyer: recoveryBuyerSeats,
		Zones: []ZoneDef{{ID: "ga", PriceCents: recoveryPrice, Capacity: 1_000_000}}}
	if err := def.Normalize(testBase); err != nil {
		tb.Fatal(err)
	}
	at := testBase.UnixMilli()
	blob, err := json.Marshal(saleRecord{Def: def, Idx: 1, Seed: strings.Repeat("5a", 32), CreatedAt: at})
	requireNoError(tb, err)

	written := 0
	appendEv := func(ev *wal.Event) {
		written++
		if written%recoveryWaitEvery != 0 {
			requireNoError(tb, lg.Append(ev, nil))
			return
		}
		// Wait for the writer now and then, so the bounded queue never fills.
		done := make(chan error, 1)
		requireNoError(tb, lg.Append(ev, func(_ uint64, err error) { done <- err }))
		requireNoError(tb, <-done)
	}
	appendEv(&wal.Event{Type: wal.TypeSaleCreated, Sale: "rec", Num: 1, At: at, Blob: blob})
	rounds := (records - 1) / recoveryRoundRecs
	for r := range rounds {
		buyer := fmt.Sprintf("buyer-%d", r*2/recoveryBuyerSeats)
		seat := uint32(2 * r)
		for _, kind := range []wal.Type{wal.TypeHoldReleased, wal.TypeOrderPaid} {
			// The released hold takes the seats the bought one takes next.
			id := newID('h', 1, 0)
			appendEv(&wal.Event{Type: wal.TypeHoldPlaced, Sale: "rec", Zone: "ga", Hold: id, Buyer: buyer,
				Seats: []uint32{seat, seat + 1}, At: at, Expires: at + 600_000, Amount: 2 * recoveryPrice})
			end := &wal.Event{Type: kind, Sale: "rec", Zone: "ga", Hold: id, At: at}
			if kind == wal.TypeOrderPaid {
				end.Order, end.Amount = newID('o', 1, 0), 2*recoveryPrice
			}
			appendEv(end)
		}
	}
	requireNoError(tb, lg.Close())
	return rounds
}

// openRecovered opens an engine on dir at the log's time and returns how
// long Open took.
func openRecovered(tb testing.TB, dir string) (*Engine, time.Duration) {
	tb.Helper()
	clock := &fakeClock{}
	start := time.Now()
	e, err := Open(Config{Dir: dir, NoSync: true, Now: clock.Now, SnapshotRecords: 1 << 40})
	requireNoError(tb, err)
	return e, time.Since(start)
}

// TestEngineRecovery100k recovers a log of 100,000 records and checks the
// state it rebuilt; it logs the time, and asserts none.
func TestEngineRecovery100k(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and replays 100,000 records")
	}
	dir := t.TempDir()
	rounds := writeRecoveryLog(t, dir, 100_000)
	e, took := openRecovered(t, dir)
	defer func() { requireNoError(t, e.Close()) }()
	t.Logf("recovered %d records in %s", e.LogSeq(), took)
	// The sale's room may have written its first tick's record already.
	requireTrue(t, e.LogSeq() >= uint64(1+rounds*recoveryRoundRecs), "log ends at %d, before the %d records written", e.LogSeq(), 1+rounds*recoveryRoundRecs)
	s, ok := e.Sale("rec")
	requireTrue(t, ok, "sale recovered")
	requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 1_000_000 - 2*rounds, Sold: 2 * rounds}})
	requireEqual(t, s.ledger.count("buyer-0"), recoveryBuyerSeats)
	// The recovered zone goes on where the log stopped.
	v := mustHold(t, s, HoldRequest{Buyer: "new", Zone: "ga", Quantity: 2})
	requireEqual(t, v.Seats, []string{fmt.Sprint(2*rounds + 1), fmt.Sprint(2*rounds + 2)})
}

// BenchmarkRecovery1M: Open on a log of 1,000,000 records; seconds per
// recovery.
func BenchmarkRecovery1M(b *testing.B) {
	b.ReportAllocs()
	dir := b.TempDir()
	writeRecoveryLog(b, dir, 1_000_000)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		e, took := openRecovered(b, dir)
		total += took
		b.StopTimer()
		requireNoError(b, e.Close())
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/recovery")
}

// Shape of the memory benchmark: one 1,000,000-seat zone with 250,000 holds
// of 4 seats, made through the engine by memoryCallers at once.
const (
	memorySeats   = 1_000_000
	memoryHolds   = 250_000
	memoryCallers = 64
	memoryBudget  = 200 << 20 // bytes: heap in use by the sale and its holds
)

// BenchmarkMemory1M measures the heap that a sale of 1,000,000 seats with
// 250,000 active holds adds, after a garbage collection, and holds it to a
// budget. The work of one op is building that sale.
func BenchmarkMemory1M(b *testing.B) {
	b.ReportAllocs()
	var mb float64
	for range b.N {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()

		e, err := Open(Config{Dir: b.TempDir(), NoSync: true, CallTimeout: time.Minute})
		requireNoError(b, err)
		s, cerr := e.CreateSale(SaleDef{ID: "mem", MaxPerBuyer: 100,
			Zones: []ZoneDef{{ID: "ga", PriceCents: 4500, Capacity: memorySeats}}})
		if cerr != nil {
			b.Fatal(cerr)
		}
		var next atomic.Int64
		var failed atomic.Pointer[Error]
		var wg sync.WaitGroup
		for range memoryCallers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= memoryHolds {
						return
					}
					r := s.Hold(HoldRequest{Buyer: fmt.Sprintf("buyer-%d", i/25), Zone: "ga", Quantity: 4})
					if r.Err != nil {
						failed.CompareAndSwap(nil, r.Err)
						return
					}
				}
			}()
		}
		wg.Wait()

		b.StopTimer()
		if err := failed.Load(); err != nil {
			b.Fatalf("hold refused: %v", err)
		}
		requireEqual(b, s.Counts(), []ZoneCounts{{ID: "ga", Free: memorySeats - 4*memoryHolds, Held: 4 * memoryHolds}})
		runtime.GC()
		runtime.ReadMemStats(&after)
		used := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		mb = float64(used) / (1 << 20)
		if used > memoryBudget {
			b.Fatalf("a 1,000,000-seat sale with %d holds uses %.1f MB of heap, budget %d MB", memoryHolds, mb, memoryBudget>>20)
		}
		runtime.KeepAlive(s)
		requireNoError(b, e.Close())
		b.StartTimer()
	}
	b.ReportMetric(mb, "MB")
	b.ReportMetric(mb*(1<<20)/memoryHolds, "B/hold")
}
