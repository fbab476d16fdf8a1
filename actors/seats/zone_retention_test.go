package seats

import (
	"fmt"
	"testing"

	"onsale/wal"
)

// zoneWithEnded has one hold of each end: released and expired at 2000, a
// paid order, a cancelled one, an active hold, and a hold that expired at
// 2000 with its payment still open.
func zoneWithEnded(t testing.TB) *Zone {
	t.Helper()
	z := NewZone(testSale, gaDef(100))
	for i, id := range []string{"h-rel", "h-exp", "h-paid", "h-cancel", "h-act", "h-pay"} {
		mustApply(t, z, placedEvent(z, id, []uint32{uint32(2 * i), uint32(2*i + 1)}, 1000, 1000))
	}
	for _, ev := range []*wal.Event{
		{Type: wal.TypeOrderPaid, Hold: "h-paid", Order: "o-paid", At: 1500},
		{Type: wal.TypeOrderPaid, Hold: "h-cancel", Order: "o-cancel", At: 1500},
		{Type: wal.TypeOrderCancelled, Order: "o-cancel", At: 1600},
		{Type: wal.TypePaymentStarted, Hold: "h-pay", Order: "o-pay", Buyer: "buyer-h-pay", Amount: 2 * testPrice, At: 1700},
		{Type: wal.TypeHoldReleased, Hold: "h-rel", At: 2000},
		{Type: wal.TypeHoldExpired, Hold: "h-exp", At: 2000},
		{Type: wal.TypeHoldExpired, Hold: "h-pay", At: 2000},
	} {
		mustApply(t, z, ev)
	}
	mustApply(t, z, placedEvent(z, "h-act2", []uint32{50}, 1900, 1_000_000))
	return z
}

func TestZoneDropEnded(t *testing.T) {
	z := zoneWithEnded(t)
	requireEqual(t, z.DropEnded(1999, 100), 0, "nothing ended by 1999")
	requireEqual(t, z.DropEnded(2000, 1), 1, "max is kept")
	requireEqual(t, z.DropEnded(2000, 100), 1)
	requireNoError(t, checkZone(z))
	requireEqual(t, z.KeptHolds(), 5, "the orders, the active holds and the one with an open payment")

	// A dropped hold is not found, to its buyer and to an operator, and a
	// late release or checkout of it writes nothing.
	for _, id := range []string{"h-rel", "h-exp"} {
		requireTrue(t, z.Hold(id) == nil, id)
		for _, admin := range []bool{false, true} {
			r := Access{HoldID: id, Buyer: "buyer-" + id, Admin: admin}
			requireEqual(t, z.LookupHold(r).Refusal.Code, CodeNotFound, id)
			d := z.DecideRelease(r, 3000)
			requireFalse(t, d.Writes(), id)
			requireEqual(t, d.Refusal.Code, CodeNotFound, id)
			requireEqual(t, z.DecideCheckoutBegin(CheckoutBegin{Access: r, OrderID: "o-new"}, 3000).Refusal.Code, CodeNotFound, id)
		}
		_, ok := z.DecideExpiry(id, 3000)
		requireFalse(t, ok)
	}
	// No record names a dropped hold; one that did would not belong to
	// this zone's log, and is refused like any unknown hold.
	before := z.AppendSnapshot(nil)
	requireErrorIs(t, z.Apply(&wal.Event{Type: wal.TypeHoldReleased, Hold: "h-rel", At: 3000}), ErrZoneHoldUnknown)
	requireEqual(t, z.AppendSnapshot(nil), before, "a refused late release changed nothing")

	// Orders stay readable, by order id and as holds.
	requireEqual(t, z.LookupOrder("o-paid").Answer.ID, "h-paid")
	requireTrue(t, z.LookupOrder("o-cancel").Answer.OrderCancelled)
	requireEqual(t, z.LookupHold(Access{HoldID: "h-paid", Admin: true}).Answer.State, HoldPurchased)

	// The hold with an open payment stays until the payment closes, then
	// goes at the next drop.
	requireEqual(t, z.LookupHold(Access{HoldID: "h-pay", Admin: true}).Answer.State, HoldExpired)
	requireEqual(t, len(z.OpenPayments()), 1)
	requireEqual(t, z.DropEnded(1_000_000, 100), 0)
	mustApply(t, z, &wal.Event{Type: wal.TypePaymentRefunded, Hold: "h-pay", Order: "o-pay", At: 5000})
	requireEqual(t, z.DropEnded(1_000_000, 100), 1)
	requireTrue(t, z.Hold("h-pay") == nil)
	requireNoError(t, checkZone(z))
}

// TestZoneDropSnapshot: a snapshot carries no dropped hold, restores, and
// the restored zone drops the rest as the original does; records after it
// apply to both alike.
func TestZoneDropSnapshot(t *testing.T) {
	z := zoneWithEnded(t)
	requireEqual(t, z.DropEnded(2000, 100), 2)
	r := snapshotZone(t, z)
	requireTrue(t, r.Hold("h-rel") == nil && r.Hold("h-exp") == nil)
	requireEqual(t, r.KeptHolds(), z.KeptHolds())
	requireEqual(t, r.Order("o-paid").ID, "h-paid")
	later := []*wal.Event{
		{Type: wal.TypeHoldReleased, Hold: "h-act", At: 3000},
		{Type: wal.TypePaymentFailed, Hold: "h-pay", Order: "o-pay", At: 3000},
		placedEvent(z, "h-new", []uint32{0, 1}, 3000, 1000),
	}
	for _, zz := range []*Zone{z, r} {
		for _, ev := range later {
			mustApply(t, zz, ev)
		}
		requireEqual(t, zz.DropEnded(3000, 100), 2, "h-act and h-pay")
		requireNoError(t, checkZone(zz))
	}
	requireEqual(t, r.AppendSnapshot(nil), z.AppendSnapshot(nil))
}

// TestZoneDropReplay: a zone that drops on its ticks and one rebuilt from
// its records, dropping on the records' clock, take the same records and
// end with the same state.
func TestZoneDropReplay(t *testing.T) {
	rng := testRand(t)
	const retention, ttl = 500, 300
	live := NewZone(testSale, gaDef(200))
	var log []*wal.Event
	now := int64(1000)
	apply := func(ev *wal.Event) {
		requireNoError(t, live.Apply(ev), "apply %s %s", ev.Type, ev.Hold)
		log = append(log, ev)
	}
	var active []string
	for i := range 20_000 {
		now += int64(rng.IntN(5))
		if i%1000 == 0 {
			requireNoError(t, checkZone(live), "step %d", i)
		}
		if i%10 == 0 { // a tick
			for _, id := range live.TakeDue(now, 1000) {
				d, ok := live.DecideExpiry(id, now)
				requireTrue(t, ok)
				apply(&d.Event)
			}
			live.DropEnded(now-retention, 1000)
		}
		switch {
		case len(active) > 0 && rng.IntN(2) == 0:
			k := rng.IntN(len(active))
			id := active[k]
			active[k] = active[len(active)-1]
			active = active[:len(active)-1]
			if h := live.Hold(id); h == nil || h.State != HoldActive || h.ExpiresAt <= now {
				continue
			}
			if rng.IntN(4) == 0 {
				apply(&wal.Event{Type: wal.TypeOrderPaid, Hold: id, Order: "o-" + id, At: now})
			} else {
				apply(&wal.Event{Type: wal.TypeHoldReleased, Hold: id, At: now})
			}
		default:
			seats, ok := live.Pick(1 + rng.IntN(3))
			if !ok {
				continue
			}
			id := fmt.Sprintf("h%06d", i)
			apply(placedEvent(live, id, seats, now, ttl))
			active = append(active, id)
		}
		if sold := live.sold; sold > 150 {
			for _, o := range sortedOrders(live) {
				if !live.Order(o).OrderCancelled {
					apply(&wal.Event{Type: wal.TypeOrderCancelled, Order: o, At: now})
				}
			}
		}
	}
	ended := live.KeptHolds() - live.ActiveHolds() - len(live.orders)
	requireTrue(t, ended < 1000, "kept %d ended holds after 20,000 steps", ended)

	replayed := NewZone(testSale, gaDef(200))
	var clock int64
	for i, ev := range log {
		clock = max(clock, ev.At)
		replayed.DropEnded(clock-retention, 1<<30)
		if err := replayed.Apply(ev); err != nil {
			t.Fatalf("record %d (%s %s): %v", i, ev.Type, ev.Hold, err)
		}
	}
	requireNoError(t, checkZone(replayed))
	live.DropEnded(now-retention, 1<<30)
	replayed.DropEnded(now-retention, 1<<30)
	requireEqual(t, replayed.AppendSnapshot(nil), live.AppendSnapshot(nil))
}

func sortedOrders(z *Zone) []string {
	var out []string
	z.ForEachHold(func(h *Hold) {
		if h.State == HoldPurchased {
			out = append(out, h.OrderID)
		}
	})
	return out
}

// TestZoneChurnBounded: a zone that takes many holds over its life keeps
// only those within the retention: every structure stays within a bound
// that does not grow with the holds made.
func TestZoneChurnBounded(t *testing.T) {
	const cycles, retention, tickEvery = 200_000, 1000, 100
	z := NewZone(testSale, gaDef(1000))
	ids := make([]string, cycles)
	for i := range ids {
		ids[i] = fmt.Sprintf("h_%022d", i)
	}
	maxKept, maxList, maxMap := 0, 0, 0
	for i := range cycles {
		now := int64(i) // one hold a millisecond
		seats, ok := z.Pick(2)
		requireTrue(t, ok)
		if err := z.Apply(placedEvent(z, ids[i], seats, now, 60_000)); err != nil {
			t.Fatal(err)
		}
		if err := z.Apply(&wal.Event{Type: wal.TypeHoldReleased, Hold: ids[i], At: now}); err != nil {
			t.Fatal(err)
		}
		if i%tickEvery == 0 {
			z.DropEnded(now-retention, 1<<30)
		}
		maxKept = max(maxKept, z.KeptHolds())
		maxList = max(maxList, len(z.list))
		maxMap = max(maxMap, z.holdsPeak)
	}
	requireNoError(t, checkZone(z))
	t.Logf("%d cycles: at most %d holds kept, list %d, map sized for %d; ended heap %d, expiry heap %d",
		cycles, maxKept, maxList, maxMap, len(z.ended), len(z.expiry))
	bound := retention + tickEvery + 1
	requireTrue(t, maxKept <= bound, "kept %d, bound %d", maxKept, bound)
	requireTrue(t, maxList <= 2*(bound+zoneListSlack)+1, "list %d", maxList)
	requireTrue(t, len(z.ended) <= bound, "ended heap %d", len(z.ended))
	requireTrue(t, len(z.expiry) <= zoneExpirySlack+1, "expiry heap %d", len(z.expiry))
}
