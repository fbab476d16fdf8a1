package seats

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"onsale/wal"
)

// sellSeats sells seats in holds of at most HoldSeatsMax, for setting up
// big zones.
func sellSeats(tb testing.TB, z *Zone, seats []uint32, tag string) {
	tb.Helper()
	for i := 0; len(seats) > 0; i++ {
		n := min(len(seats), HoldSeatsMax)
		id := fmt.Sprintf("%s-%d", tag, i)
		requireNoError(tb, z.Apply(placedEvent(z, id, seats[:n], 1, 1_000_000)))
		requireNoError(tb, z.Apply(&wal.Event{Type: wal.TypeOrderPaid, Hold: id, Order: "o-" + id, At: 2}))
		seats = seats[n:]
	}
}

// sellWhere sells every seat of z for which sold says so.
func sellWhere(tb testing.TB, z *Zone, sold func(i uint32) bool) {
	tb.Helper()
	var seats []uint32
	for i := range uint32(z.Size()) {
		if sold(i) {
			seats = append(seats, i)
		}
	}
	sellSeats(tb, z, seats, "setup")
}

func benchPick(b *testing.B, z *Zone, n int) {
	b.Helper()
	free, held, sold := z.Counts()
	b.Logf("zone %d seats: %d free, %d held, %d sold", z.Size(), free, held, sold)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok := z.Pick(n); !ok {
			b.Fatal("Pick failed")
		}
	}
}

func BenchmarkPickGA(b *testing.B) {
	b.Run("empty", func(b *testing.B) {
		benchPick(b, NewZone(testSale, gaDef(GACapacityMax)), 4)
	})
	b.Run("90pct_sold_with_holes", func(b *testing.B) {
		// The front 90% sold, then one seat in a thousand there freed:
		// the picks come from holes behind the sold block.
		z := NewZone(testSale, gaDef(GACapacityMax))
		rng := rand.New(rand.NewPCG(1, 2))
		sellWhere(b, z, func(i uint32) bool { return i < 900_000 && rng.IntN(1000) != 0 })
		benchPick(b, z, 4)
	})
}

func BenchmarkPickReserved(b *testing.B) {
	rows := make([]int, RowsMax)
	for i := range rows {
		rows[i] = RowSeatsMax
	}
	b.Run("empty", func(b *testing.B) {
		benchPick(b, NewZone(testSale, reservedDef(rows...)), 4)
	})
	b.Run("front_900_rows_sold", func(b *testing.B) {
		z := NewZone(testSale, reservedDef(rows...))
		sellWhere(b, z, func(i uint32) bool { return i < 900*RowSeatsMax })
		benchPick(b, z, 4)
	})
	b.Run("random_90pct_sold", func(b *testing.B) {
		// Runs of 4 free seats are rare: many rows are scanned per Pick.
		z := NewZone(testSale, reservedDef(rows...))
		rng := rand.New(rand.NewPCG(3, 4))
		sellWhere(b, z, func(uint32) bool { return rng.IntN(10) != 0 })
		benchPick(b, z, 4)
	})
	b.Run("checkerboard_worst_case", func(b *testing.B) {
		// Every other seat sold: no row has 2 adjacent seats, so Pick(2)
		// scans every row before falling back to the lowest free seats.
		z := NewZone(testSale, reservedDef(rows...))
		sellWhere(b, z, func(i uint32) bool { return i%2 == 1 })
		benchPick(b, z, 2)
	})
}

// BenchmarkApplyHold measures what a hold request costs the zone actor:
// Pick plus Apply of the hold_placed event.
func BenchmarkApplyHold(b *testing.B) {
	rows := make([]int, RowsMax)
	for i := range rows {
		rows[i] = RowSeatsMax
	}
	for _, c := range []struct {
		name string
		def  ZoneDef
	}{{"ga", gaDef(GACapacityMax)}, {"reserved", reservedDef(rows...)}} {
		b.Run(c.name, func(b *testing.B) {
			ids := make([]string, 0, 1<<16)
			z := NewZone(testSale, c.def)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%cap(ids) == 0 {
					b.StopTimer()
					ids = ids[:0]
					for j := range cap(ids) {
						ids = append(ids, fmt.Sprintf("h_%022d", i+j))
					}
					b.StartTimer()
				}
				seats, ok := z.Pick(4)
				if !ok {
					b.StopTimer()
					z = NewZone(testSale, c.def)
					b.StartTimer()
					seats, _ = z.Pick(4)
				}
				ev := wal.Event{Type: wal.TypeHoldPlaced, Hold: ids[i%cap(ids)], Buyer: "buyer", Seats: seats,
					At: 1, Expires: 600_001, Amount: 4 * testPrice}
				if err := z.Apply(&ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSnapshot250k measures snapshot and restore of a 1,000,000-seat
// zone with 250,000 active holds: what a checkpoint and a recovery cost.
func BenchmarkSnapshot250k(b *testing.B) {
	z := bigGAZone(b)
	data := z.AppendSnapshot(nil)
	b.Logf("snapshot of %d holds: %.1f MB", len(z.list), float64(len(data))/1e6)
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, len(data))
		for b.Loop() {
			buf = z.AppendSnapshot(buf[:0])
		}
	})
	b.Run("restore", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := RestoreZone(testSale, *z.Def(), data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// bigGAZone is a 1,000,000-seat general-admission zone with 250,000 active
// holds of 4 seats, with ids, buyers and keys as long as the server's.
func bigGAZone(tb testing.TB) *Zone {
	tb.Helper()
	const holds = 250_000
	z := NewZone(testSale, gaDef(GACapacityMax))
	for i := range holds {
		seats, ok := z.Pick(4)
		requireTrue(tb, ok)
		ev := wal.Event{Type: wal.TypeHoldPlaced, Hold: fmt.Sprintf("h_%022d", i), Buyer: fmt.Sprintf("buyer-%06d", i),
			Seats: seats, At: 1_000, Expires: 601_000 + int64(i), Amount: 4 * testPrice,
			IdemKey: fmt.Sprintf("%036d", i), IdemHash: uint64(i)}
		requireNoError(tb, z.Apply(&ev))
	}
	return z
}

// TestZoneMemory1M checks the back-of-the-envelope sum: a 1,000,000-seat
// zone with 250,000 active holds of 4 seats is 1 MB of seat states plus a
// few hundred bytes per hold.
func TestZoneMemory1M(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 250,000 holds")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	z := bigGAZone(t)
	runtime.GC()
	runtime.ReadMemStats(&after)
	mb := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / 1e6
	free, held, _ := z.Counts()
	t.Logf("1,000,000-seat zone, %d active holds (%d seats held, %d free): heap %.1f MB, %.0f bytes per hold",
		z.ActiveHolds(), held, free, mb, mb*1e6/float64(z.ActiveHolds()))
	requireTrue(t, mb < 200, "zone heap %.1f MB, budget 200 MB", mb)
	runtime.KeepAlive(z)
}

// TestZoneApplyAllocs holds the hot path to an allocation budget: Pick
// (the seat list), Apply (the hold and its copy of the seats), release
// (nothing), with map and heap growth amortized.
func TestZoneApplyAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; the budget is checked without -race")
	}
	const runs = 2000
	for _, def := range []ZoneDef{gaDef(100_000), reservedDef(100, 100, 100)} {
		z := NewZone(testSale, def)
		ids := make([]string, runs+1)
		for i := range ids {
			ids[i] = fmt.Sprintf("h_%022d", i)
		}
		i := 0
		allocs := testing.AllocsPerRun(runs, func() {
			seats, ok := z.Pick(4)
			if !ok {
				t.Fatal("Pick failed")
			}
			ev := wal.Event{Type: wal.TypeHoldPlaced, Hold: ids[i], Buyer: "buyer", Seats: seats, At: 1, Expires: 2, Amount: 4 * testPrice}
			if err := z.Apply(&ev); err != nil {
				t.Fatal(err)
			}
			ev = wal.Event{Type: wal.TypeHoldReleased, Hold: ids[i], At: 1}
			if err := z.Apply(&ev); err != nil {
				t.Fatal(err)
			}
			i++
		})
		t.Logf("%s: %.2f allocations per hold and release", def.ID, allocs)
		requireTrue(t, allocs <= 4, "%.2f allocations per hold and release, budget 4", allocs)
	}
}

// BenchmarkZoneChurn runs hold/release cycles through one zone for the
// whole life of a long sale: churnActive holds are active at any time,
// each cycle places one and releases the oldest, the clock moves 1 ms a
// cycle, and ended holds are dropped after churnRetentionMs, on a tick
// every 100 cycles. Memory must follow the holds kept, not the holds made:
// it reports the heap in use per hold kept and the process's RSS after the
// first 100,000 cycles and at the end. Run it long:
//
//	go test -run '^$' -bench ZoneChurn -benchtime 10000000x ./actors/seats/
func BenchmarkZoneChurn(b *testing.B) {
	const (
		churnActive      = 50_000
		churnRetentionMs = 10_000 // 10,000 ended holds kept at 1 ms a cycle
		churnTick        = 100
		churnWarm        = 100_000
		churnLogEvery    = 2_000_000
	)
	z := NewZone(testSale, gaDef(GACapacityMax))
	ring := make([]string, churnActive) // the active holds, oldest at i%churnActive
	id := make([]byte, 0, 32)
	var seats [2]uint32
	// measure returns freed pages to the system first: otherwise RSS says
	// when the scavenger last ran more than what the zone keeps.
	measure := func() (bytesPerHold, rssMB float64) {
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapInuse) / float64(z.KeptHolds()), float64(vmRSS(b)) / (1 << 20)
	}
	var startB, startRSS float64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now := int64(i)
		if old := ring[i%churnActive]; old != "" {
			ev := wal.Event{Type: wal.TypeHoldReleased, Hold: old, At: now}
			if err := z.Apply(&ev); err != nil {
				b.Fatal(err)
			}
		}
		picked, ok := z.Pick(2)
		if !ok {
			b.Fatal("Pick failed")
		}
		copy(seats[:], picked)
		id = strconv.AppendInt(append(id[:0], "h_"...), int64(i), 10)
		ev := wal.Event{Type: wal.TypeHoldPlaced, Hold: string(id), Buyer: "buyer", Seats: seats[:],
			At: now, Expires: now + 1<<40, Amount: 2 * testPrice}
		if err := z.Apply(&ev); err != nil {
			b.Fatal(err)
		}
		ring[i%churnActive] = ev.Hold
		if i%churnTick == 0 {
			z.DropEnded(now-churnRetentionMs, 1<<30)
		}
		i++
		if i == churnWarm || i%churnLogEvery == 0 {
			b.StopTimer()
			perHold, rss := measure()
			if i == churnWarm {
				startB, startRSS = perHold, rss
			}
			b.Logf("after %9d cycles: %d holds kept, heap in use %.0f B per hold kept, RSS %.1f MB", i, z.KeptHolds(), perHold, rss)
			b.StartTimer()
		}
	}
	if i < churnWarm {
		return // a short run: nothing to compare
	}
	b.StopTimer()
	endB, endRSS := measure()
	b.Logf("%d cycles, %d holds kept (%d active): heap in use %.0f B per hold kept after %d cycles, %.0f at the end; RSS %.1f MB then, %.1f MB at the end",
		i, z.KeptHolds(), z.ActiveHolds(), startB, churnWarm, endB, startRSS, endRSS)
	b.ReportMetric(startB, "B/kept-start")
	b.ReportMetric(endB, "B/kept-end")
	b.ReportMetric(startRSS, "RSS-MB-start")
	b.ReportMetric(endRSS, "RSS-MB-end")
}

// vmRSS is the process's resident set in bytes, from /proc/self/status; 0
// where there is none.
func vmRSS(tb testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Logf("no RSS: %v", err)
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	return 0
}
