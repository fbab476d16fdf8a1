package seats

import (
	"errors"
	"testing"

	"onsale/wal"
)

// zoneWithMoney is zoneWithHistory with an attempt open on h-active, one
// on the expired hold (its money may have been taken before it expired),
// and a cancel open on o-paid.
func zoneWithMoney(t testing.TB) *Zone {
	t.Helper()
	z := zoneWithHistory(t)
	mustApply(t, z, &wal.Event{Type: wal.TypePaymentStarted, Hold: "h-active", Order: "o-a", Buyer: "buyer-h-active",
		Amount: 2 * testPrice, IdemKey: "pay-a", IdemHash: 11, At: 5000})
	mustApply(t, z, &wal.Event{Type: wal.TypeCancelStarted, Order: "o-paid", At: 6000})
	return z
}

func TestZoneApplyMoney(t *testing.T) {
	started := func(hold, order string) *wal.Event {
		return &wal.Event{Type: wal.TypePaymentStarted, Hold: hold, Order: order, Buyer: "buyer-" + hold, Amount: testPrice, At: 9000}
	}
	f := func(name string, want error, mk func() *wal.Event) {
		t.Helper()
		z := zoneWithMoney(t)
		before := z.AppendSnapshot(nil)
		err := z.Apply(mk())
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
		requireEqual(t, z.AppendSnapshot(nil), before, name+": changed nothing")
	}
	f("started: unknown hold", ErrZoneHoldUnknown, func() *wal.Event { return started("nope", "o-new") })
	f("started: released", ErrZoneHoldNotActive, func() *wal.Event { return started("h-released", "o-new") })
	f("started: open already", ErrZonePaymentOpen, func() *wal.Event {
		e := started("h-active", "o-new")
		e.Amount = 2 * testPrice
		return e
	})
	f("started: wrong amount", ErrZoneEventInvalid, func() *wal.Event { return started("h-active2", "o-new") })
	f("started: order used", ErrZoneOrderExists, func() *wal.Event {
		e := started("h-active2", "o-paid")
		e.Amount = 3 * testPrice
		return e
	})
	f("started: no order", ErrZoneEventInvalid, func() *wal.Event {
		e := started("h-active2", "")
		e.Amount = 3 * testPrice
		return e
	})
	f("failed: none open", ErrZonePaymentUnknown, func() *wal.Event {
		return &wal.Event{Type: wal.TypePaymentFailed, Hold: "h-active2", Order: "o-x", At: 9000}
	})
	f("refunded: other order", ErrZonePaymentUnknown, func() *wal.Event {
		return &wal.Event{Type: wal.TypePaymentRefunded, Hold: "h-active", Order: "o-x", At: 9000}
	})
	f("paid: not the open payment's order", ErrZoneEventInvalid, func() *wal.Event {
		return &wal.Event{Type: wal.TypeOrderPaid, Hold: "h-active", Order: "o-x", At: 9000}
	})
	f("cancel started: unknown", ErrZoneOrderUnknown, func() *wal.Event { return &wal.Event{Type: wal.TypeCancelStarted, Order: "nope", At: 9000} })
	f("cancel started: cancelled", ErrZoneOrderCancelled, func() *wal.Event {
		return &wal.Event{Type: wal.TypeCancelStarted, Order: "o-cancelled", At: 9000}
	})
	f("cancel started: open already", ErrZoneCancelOpen, func() *wal.Event { return &wal.Event{Type: wal.TypeCancelStarted, Order: "o-paid", At: 9000} })

	// The outcomes close what they name, and change no seat.
	z := zoneWithMoney(t)
	fr, he, so := z.Counts()
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderPaid, Hold: "h-active", Order: "o-a", At: 9000})
	requireEqual(t, len(z.OpenPayments()), 0)
	mustApply(t, z, &wal.Event{Type: wal.TypeOrderCancelled, Order: "o-paid", At: 9000})
	requireEqual(t, len(z.OpenCancels()), 0)
	fr2, he2, so2 := z.Counts()
	requireEqual(t, []int{fr2, he2, so2}, []int{fr + 2, he - 2, so})
}

func TestZoneSnapshotMoney(t *testing.T) {
	z := zoneWithMoney(t)
	r := snapshotZone(t, z)
	requireEqual(t, r.OpenPayments(), z.OpenPayments())
	requireEqual(t, r.OpenCancels(), []string{"o-paid"})
	requireEqual(t, r.OpenPayments()[0], Payment{Hold: "h-active", Order: "o-a", Buyer: "buyer-h-active",
		Amount: 2 * testPrice, IdemKey: "pay-a", IdemHash: 11, StartedAt: 5000})
	// A version 1 snapshot (before money was recorded) still reads: the
	// same holds, nothing open.
	plain := zoneWithHistory(t)
	b := plain.AppendSnapshot(nil)
	b[0] = zoneSnapVersionNoMoney
	old, err := RestoreZone(testSale, *plain.Def(), b[:len(b)-2]) // no payment or cancel counts
	requireNoError(t, err)
	requireEqual(t, old.AppendSnapshot(nil), plain.AppendSnapshot(nil))
	// An open payment of an unknown hold is refused.
	z2 := zoneWithHistory(t)
	z2.payments["h-gone"] = &Payment{Hold: "h-gone", Order: "o-g", Buyer: "b", Amount: 1}
	_, err = RestoreZone(testSale, *z2.Def(), z2.AppendSnapshot(nil))
	requireTrue(t, errors.Is(err, ErrZoneSnapshot), "got %v", err)
}
