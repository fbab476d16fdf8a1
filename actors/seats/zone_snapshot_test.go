package seats

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"onsale/wal"
)

// snapshotZone checks a snapshot round trip and returns the restored zone.
func snapshotZone(t testing.TB, z *Zone) *Zone {
	t.Helper()
	b := z.AppendSnapshot([]byte{0xAA}) // appends: the prefix stays
	requireEqual(t, b[0], byte(0xAA))
	r, err := RestoreZone(testSale, *z.Def(), b[1:])
	requireNoError(t, err)
	requireNoError(t, checkZone(r))
	requireEqual(t, r.AppendSnapshot(nil), b[1:], "restored zone snapshots differently")
	return r
}

func TestZoneSnapshotRoundTrip(t *testing.T) {
	z := zoneWithHistory(t)
	r := snapshotZone(t, z)
	requireEqual(t, r.seats, z.seats)
	requireEqual(t, r.segFree, z.segFree)
	requireEqual(t, r.segCursor, z.segCursor)
	f1, h1, s1 := z.Counts()
	f2, h2, s2 := r.Counts()
	requireEqual(t, []int{f2, h2, s2}, []int{f1, h1, s1})
	var a, b []Hold
	z.ForEachHold(func(h *Hold) { a = append(a, *h) })
	r.ForEachHold(func(h *Hold) { b = append(b, *h) })
	requireEqual(t, b, a)
	requireEqual(t, r.Order("o-paid").ID, "h-paid")
	requireTrue(t, r.Order("o-cancelled").OrderCancelled)

	// Same behaviour afterwards.
	for _, n := range []int{1, 2, 5, 30} {
		p1, ok1 := z.Pick(n)
		p2, ok2 := r.Pick(n)
		requireEqual(t, p2, p1)
		requireEqual(t, ok2, ok1)
		requireEqual(t, r.Alternatives(n, 3, p1), z.Alternatives(n, 3, p1))
	}
	n1, _ := z.NextExpiry()
	n2, _ := r.NextExpiry()
	requireEqual(t, n2, n1)
	requireEqual(t, n2, int64(31_000))
	requireEqual(t, r.TakeDue(100_000, 10), z.TakeDue(100_000, 10))
	for _, zz := range []*Zone{z, r} {
		mustApply(t, zz, &wal.Event{Type: wal.TypeHoldExpired, Hold: "h-active2", At: 100_000})
		mustApply(t, zz, &wal.Event{Type: wal.TypeOrderPaid, Hold: "h-active", Order: "o-2", At: 100_000})
		mustApply(t, zz, &wal.Event{Type: wal.TypeOrderCancelled, Order: "o-paid", At: 100_000})
	}
	requireEqual(t, r.AppendSnapshot(nil), z.AppendSnapshot(nil))

	// Empty zones, both kinds.
	snapshotZone(t, NewZone(testSale, gaDef(GACapacityMax)))
	snapshotZone(t, NewZone(testSale, reservedDef(1)))
	g := NewZone(testSale, gaDef(5000))
	for i := 0; i < 40; i++ {
		seats, _ := g.Pick(100)
		mustApply(t, g, placedEvent(g, fmt.Sprintf("g%d", i), seats, 0, int64(1000+i)))
	}
	mustApply(t, g, &wal.Event{Type: wal.TypeHoldReleased, Hold: "g3", At: 1})
	mustApply(t, g, &wal.Event{Type: wal.TypeOrderPaid, Hold: "g7", Order: "o7", At: 1})
	r = snapshotZone(t, g)
	requireEqual(t, r.segCursor, g.segCursor)
	p1, _ := g.Pick(100)
	p2, _ := r.Pick(100)
	requireEqual(t, p2, p1)
}

func TestRestoreZoneRejects(t *testing.T) {
	def := *zoneWithHistory(t).Def()
	good := zoneWithHistory(t).AppendSnapshot(nil)

	// One driver, fed small corrupting functions. A damaged snapshot must
	// give an error or a zone that passes every check; never a panic.
	corrupt := func(name string, mustFail bool, damage func(b []byte) []byte) {
		t.Run(name, func(t *testing.T) {
			z, err := RestoreZone(testSale, def, damage(bytes.Clone(good)))
			if mustFail {
				requireErrorIs(t, err, ErrZoneSnapshot)
				requireTrue(t, z == nil)
				return
			}
			if err == nil {
				requireNoError(t, checkZone(z))
			} else {
				requireErrorIs(t, err, ErrZoneSnapshot)
			}
		})
	}
	corrupt("empty", true, func(b []byte) []byte { return nil })
	corrupt("version", true, func(b []byte) []byte { b[0] = 9; return b })
	corrupt("trailing byte", true, func(b []byte) []byte { return append(b, 0) })
	for cut := 1; cut < len(good); cut++ {
		corrupt(fmt.Sprintf("truncated to %d", cut), true, func(b []byte) []byte { return b[:cut] })
	}
	for i := range good {
		corrupt(fmt.Sprintf("flip byte %d", i), false, func(b []byte) []byte { b[i] ^= 0xFF; return b })
		corrupt(fmt.Sprintf("bump byte %d", i), false, func(b []byte) []byte { b[i]++; return b })
		corrupt(fmt.Sprintf("zero from %d", i), false, func(b []byte) []byte { clear(b[i:min(i+8, len(b))]); return b })
	}

	// Another definition.
	other := def
	other.ID = "other"
	_, err := RestoreZone(testSale, other, good)
	requireErrorIs(t, err, ErrZoneSnapshot)
	bigger := reservedDef(10, 10, 11)
	_, err = RestoreZone(testSale, bigger, good)
	requireErrorIs(t, err, ErrZoneSnapshot)
	_, err = RestoreZone(testSale, gaDef(0), good)
	requireErrorIs(t, err, ErrZoneSnapshot)

	// Inconsistent states, written by the encoder from a tampered zone.
	tamper := func(name string, mut func(z *Zone)) {
		t.Run(name, func(t *testing.T) {
			z := zoneWithHistory(t)
			mut(z)
			_, err := RestoreZone(testSale, def, z.AppendSnapshot(nil))
			requireErrorIs(t, err, ErrZoneSnapshot)
			t.Logf("refused: %v", err)
		})
	}
	tamper("seat in two holds", func(z *Zone) { z.Hold("h-active2").Seats[0] = z.Hold("h-active").Seats[0] })
	tamper("seat held and sold", func(z *Zone) { z.Hold("h-paid").Seats[0] = z.Hold("h-active").Seats[1] })
	tamper("seat out of range", func(z *Zone) { z.Hold("h-released").Seats[0] = 30 })
	tamper("seat twice in a hold", func(z *Zone) { z.Hold("h-active2").Seats[2] = z.Hold("h-active2").Seats[0] })
	tamper("hold id twice", func(z *Zone) { z.Hold("h-released").ID = "h-expired" })
	tamper("empty hold id", func(z *Zone) { z.Hold("h-released").ID = "" })
	tamper("empty buyer", func(z *Zone) { z.Hold("h-released").Buyer = "" })
	tamper("order id twice", func(z *Zone) { z.Hold("h-cancelled").OrderID = "o-paid" })
	tamper("purchased without order", func(z *Zone) { z.Hold("h-paid").OrderID = "" })
	tamper("released with order", func(z *Zone) { z.Hold("h-released").OrderID = "o-x" })
	tamper("released but cancelled", func(z *Zone) { z.Hold("h-released").OrderCancelled = true })
	tamper("cancel time without cancel", func(z *Zone) { z.Hold("h-paid").CancelledAt = 5 })
	tamper("active with end time", func(z *Zone) { z.Hold("h-active").EndedAt = 5 })
	tamper("bad state", func(z *Zone) { z.Hold("h-released").State = 9 })
	tamper("zero state", func(z *Zone) { z.Hold("h-released").State = 0 })
	tamper("wrong amount", func(z *Zone) { z.Hold("h-released").Amount = 1 })
	tamper("expiry before creation", func(z *Zone) { z.Hold("h-released").ExpiresAt = 0 })
	tamper("no seats", func(z *Zone) { z.Hold("h-released").Seats = nil })
	tamper("free count", func(z *Zone) { z.free-- })
	tamper("held count", func(z *Zone) { z.held++ })
	tamper("long id", func(z *Zone) { z.Hold("h-released").ID = strings.Repeat("h", zoneKeyBytesMax+1) })
	tamper("hold state changed under the seats", func(z *Zone) { z.Hold("h-released").State = HoldActive; z.Hold("h-released").EndedAt = 0 })
}

// FuzzRestoreZone feeds RestoreZone arbitrary bytes: it must never panic,
// and whatever it accepts must be consistent and snapshot back stably.
func FuzzRestoreZone(f *testing.F) {
	hist := zoneWithHistory(f)
	resDef := *hist.Def()
	gaz := NewZone(testSale, gaDef(3000))
	for i := 0; i < 12; i++ {
		seats, _ := gaz.Pick(1 + i*9)
		requireNoError(f, gaz.Apply(placedEvent(gaz, fmt.Sprintf("g%d", i), seats, 10, 1000)))
	}
	requireNoError(f, gaz.Apply(&wal.Event{Type: wal.TypeHoldReleased, Hold: "g1", At: 11}))
	requireNoError(f, gaz.Apply(&wal.Event{Type: wal.TypeOrderPaid, Hold: "g2", Order: "o", At: 11}))
	f.Add(hist.AppendSnapshot(nil))
	f.Add(gaz.AppendSnapshot(nil))
	f.Add(NewZone(testSale, resDef).AppendSnapshot(nil))
	f.Add([]byte{})
	f.Add([]byte{zoneSnapVersion})
	f.Add([]byte{zoneSnapVersion, 2, 'g', 'a', 0xb8, 0x17, 0xb8, 0x17, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	defs := []ZoneDef{resDef, gaDef(3000)}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, def := range defs {
			z, err := RestoreZone(testSale, def, data)
			if err != nil {
				requireErrorIs(t, err, ErrZoneSnapshot)
				continue
			}
			requireNoError(t, checkZone(z))
			b := z.AppendSnapshot(nil)
			z2, err := RestoreZone(testSale, def, b)
			requireNoError(t, err)
			requireEqual(t, z2.AppendSnapshot(nil), b)
			z.Pick(3)
			z.Alternatives(2, 3, []uint32{0, 1})
			z.TakeDue(1<<62, 100)
			requireNoError(t, checkZone(z))
		}
	})
}
