package line

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// roomQueueID makes an id shaped like the server's queue ids ("q_" and 22
// base64url characters, 24 bytes), so that memory figures are realistic.
func roomQueueID(i int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], uint64(i)*0x9e3779b97f4a7c15)
	return "q_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func roomBuyerID(i int) string { return fmt.Sprintf("buyer-%07d", i) }

// roomLineOf returns a room whose line holds n waiting tickets (one shops,
// the rest wait), joined after the opening.
func roomLineOf(tb testing.TB, n int) *Room {
	tb.Helper()
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	r := New(roomTestSale, cfg)
	for i := range n + 1 {
		if _, _, err := r.Join(roomBuyerID(i), roomQueueID(i), roomT0, roomPlenty); err != nil {
			tb.Fatalf("join %d: %v", i, err)
		}
	}
	return r
}

func roomHeapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// roomLineBytesMax is the memory budget of a line of 1,000,000 tickets,
// ids included: well under it leaves room for a second sale this size.
const roomLineBytesMax = 300 << 20

// TestRoomMemoryMillion measures a line of 1,000,000 buyers, ids included,
// joined after the opening and, separately, drawn from the pre-queue.
func TestRoomMemoryMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a line of 1,000,000 twice")
	}
	const n = 1_000_000
	measure := func(name string, build func() *Room) {
		before := roomHeapInUse()
		start := time.Now()
		r := build()
		took := time.Since(start)
		used := roomHeapInUse() - before
		t.Logf("%s: %d tickets in %.0f MB, %d B/ticket, built in %v", name, n, float64(used)/(1<<20), used/n, took)
		requireTrue(t, used < roomLineBytesMax, "%s: %d MB", name, used>>20)
		requireEqual(t, r.Waiting(), int64(n))
		runtime.KeepAlive(r)
	}
	measure("line", func() *Room {
		r := roomLineOf(t, n)
		requireEqual(t, r.Position(r.Ticket(roomQueueID(n))), int64(n))
		r.Leave(roomQueueID(0), roomT0+1)
		return r
	})
	measure("drawn pre-queue", func() *Room {
		cfg := testRoomConfig()
		cfg.OpensAt = roomT0 + 1
		r := New(roomTestSale, cfg)
		for i := range n {
			if _, _, err := r.Join(roomBuyerID(i), roomQueueID(i), roomT0, roomPlenty); err != nil {
				t.Fatalf("join %d: %v", i, err)
			}
		}
		start := time.Now()
		evs, err := r.Tick(cfg.OpensAt, roomPlenty)
		requireNoError(t, err)
		t.Logf("draw of %d: %v, order record %d bytes", n, time.Since(start), len(evs[0].Blob))
		return r
	})
}

// TestRoomAllocs holds the polling path (Position, View) to no allocation.
func TestRoomAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; the budget is checked without -race")
	}
	r := roomLineOf(t, 1000)
	tk := r.Ticket(roomQueueID(500))
	requireEqual(t, testing.AllocsPerRun(100, func() { r.Position(tk) }), 0.0)
	requireEqual(t, testing.AllocsPerRun(100, func() { r.TicketView(tk, roomT0, roomPlenty) }), 0.0)
	// The same from a published View, as a reader off the actor does it.
	v := r.Publish(roomT0, roomPlenty)
	requireEqual(t, testing.AllocsPerRun(100, func() { v.TicketView(tk, roomT0) }), 0.0)
	requireEqual(t, testing.AllocsPerRun(100, func() { v.Revoked(tk.QueueID) }), 0.0)
	buyer := roomBuyerID(7)
	requireEqual(t, testing.AllocsPerRun(100, func() { r.ByBuyer(buyer) }), 0.0)
	var buyers, ids []string
	for i := range 1001 {
		buyers, ids = append(buyers, roomBuyerID(2000+i)), append(ids, roomQueueID(2000+i))
	}
	i := 0
	joins := testing.AllocsPerRun(1000, func() {
		if _, _, err := r.Join(buyers[i], ids[i], roomT0, roomPlenty); err != nil {
			t.Fatal(err)
		}
		i++
	})
	// The returned event slice, plus the amortized growth of the ticket
	// chunks, indexes and line.
	t.Logf("%v allocations per join", joins)
	requireTrue(t, joins <= 2, "%v allocations per join", joins)
}

func BenchmarkRoomJoin(b *testing.B) {
	b.ReportAllocs()
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	var r *Room
	ids := make([]string, 0, 1<<16)
	buyers := make([]string, 0, 1<<16)
	for i := range 1 << 16 {
		ids = append(ids, roomQueueID(i))
		buyers = append(buyers, roomBuyerID(i))
	}
	for i := 0; b.Loop(); i++ {
		if i%len(ids) == 0 {
			r = New(roomTestSale, cfg) // a fresh line every 65,536 joins
		}
		if _, _, err := r.Join(buyers[i%len(ids)], ids[i%len(ids)], roomT0, roomPlenty); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRoomPosition(b *testing.B) {
	b.ReportAllocs()
	const n = 100_000
	r := roomLineOf(b, n)
	tickets := make([]*Ticket, 0, 1024)
	for i := range 1024 {
		tickets = append(tickets, r.Ticket(roomQueueID(1+i*(n/1024))))
	}
	var sum int64
	for i := 0; b.Loop(); i++ {
		sum += r.Position(tickets[i%len(tickets)])
	}
	if sum <= 0 {
		b.Fatal("no positions")
	}
}

func BenchmarkRoomView(b *testing.B) {
	b.ReportAllocs()
	const n = 100_000
	r := roomLineOf(b, n)
	tk := r.Ticket(roomQueueID(n / 2))
	for b.Loop() {
		r.TicketView(tk, roomT0, roomPlenty)
	}
}

// BenchmarkRoomViewTicket reads a place in line from a published View, as a
// reader off the actor would, in a line of 100,000 with every tenth buyer
// gone from it.
func BenchmarkRoomViewTicket(b *testing.B) {
	b.ReportAllocs()
	const n = 100_000
	r := roomLineOf(b, n)
	for i := 2; i < n; i += 10 {
		if _, err := r.Leave(roomQueueID(i), roomT0); err != nil {
			b.Fatal(err)
		}
	}
	v := r.Publish(roomT0, roomPlenty)
	tk := r.Ticket(roomQueueID(n - 1))
	for b.Loop() {
		if _, ok := v.TicketView(tk, roomT0); !ok {
			b.Fatal("out of date")
		}
	}
}

// BenchmarkRoomPublish builds the View after one departure from a line of
// 1,000,000, the worst case: the departure's block and the block list are
// copied.
func BenchmarkRoomPublish(b *testing.B) {
	b.ReportAllocs()
	const n = 1_000_000
	r := roomLineOf(b, n)
	i := 1
	for b.Loop() {
		if _, err := r.Leave(roomQueueID(i%n+1), roomT0); err != nil {
			b.Fatal(err)
		}
		i++
		r.Publish(roomT0, roomPlenty)
	}
}

// BenchmarkRoomTick admits 100 buyers a tick from a line of 100,000.
func BenchmarkRoomTick(b *testing.B) {
	b.ReportAllocs()
	cfg := testRoomConfig()
	cfg.ActiveLimit = ActiveLimitMax
	cfg.AdmitPerS = 1000
	cfg.OpensAt = roomT0 + 1
	var r *Room
	now := roomT0
	for i := 0; b.Loop(); i++ {
		if r == nil || r.lineWaiting < 100 {
			b.StopTimer()
			r = New(roomTestSale, cfg)
			for j := range 100_000 {
				if _, _, err := r.Join(roomBuyerID(j), roomQueueID(j), roomT0, roomPlenty); err != nil {
					b.Fatal(err)
				}
			}
			now = cfg.OpensAt
			r.Tick(now, roomPlenty)
			b.StartTimer()
		}
		now += 100
		r.Tick(now, roomPlenty)
	}
}

func BenchmarkRoomDrawOrder100k(b *testing.B) {
	b.ReportAllocs()
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = roomQueueID(i)
	}
	seed := testRoomConfig().Seed
	for b.Loop() {
		DrawOrder(seed, ids)
	}
}
