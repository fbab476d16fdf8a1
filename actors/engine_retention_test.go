package actors

// Released and expired holds are dropped from memory after the retention;
// orders stay.

import (
	"testing"
	"time"
)

func TestEngineDropsEndedHolds(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	expired := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 1})
	bought := mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "vip", Seats: []string{"A-1"}})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: bought.ID, Buyer: "b3", PaymentToken: tokOK, IdemKey: "pay-1"}, p))
	h.clock.Advance(stdTTL)
	waitFor(t, "expiry", func() bool { return h.e.GetHold(expired.ID, "", true).Hold.State == "expired" })
	released := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2, IdemKey: "k-released"})
	requireHold(t, h.e.ReleaseHold(released.ID, "b1", false))

	// Within the retention every hold reads as it ended.
	h.clock.Advance(HoldRetentionDefault - time.Minute)
	time.Sleep(3 * tickInterval) // ticks that must not drop them
	requireEqual(t, requireHold(t, h.e.GetHold(released.ID, "b1", false)).State, "released")
	requireEqual(t, requireHold(t, h.e.GetHold(expired.ID, "b2", false)).State, "expired")

	// Past it the ended holds are gone: not found, as an id that never
	// existed, to their buyer and to an operator; a late release too.
	h.clock.Advance(2 * time.Minute)
	waitFor(t, "drop of the ended holds", func() bool {
		return h.e.GetHold(released.ID, "", true).Err != nil && h.e.GetHold(expired.ID, "", true).Err != nil
	})
	requireCode(t, h.e.GetHold(released.ID, "b1", false), CodeNotFound)
	requireCode(t, h.e.GetHold(expired.ID, "", true), CodeNotFound)
	requireCode(t, h.e.ReleaseHold(released.ID, "b1", false), CodeNotFound)
	requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: expired.ID, Buyer: "b2", PaymentToken: tokOK}, p), CodeNotFound)
	check := func(when string) {
		t.Helper()
		requireEqual(t, *requireOrder(t, h.e.GetOrder(o.ID), when), *o, when)
		requireEqual(t, requireHold(t, h.e.GetHold(bought.ID, "b3", false), when).State, "purchased", when)
		requireCode(t, h.e.GetHold(released.ID, "", true), CodeNotFound, when)
		requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20}, when)
		requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 19, Sold: 1}, when)
		requireEqual(t, s.ledger.count("b3"), 1, when)
	}
	check("after the drop")

	// The key of a dropped hold is forgotten with it: the same request
	// places a new hold.
	again := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2, IdemKey: "k-released"})
	requireTrue(t, again.ID != released.ID, "a new hold, not the dropped one's answer")
	requireHold(t, h.e.ReleaseHold(again.ID, "b1", false))

	// Replay of the whole log (no snapshot) drops them too, and so does a
	// snapshot taken after the drop, with the records after it.
	h.restart()
	s = h.sale("final")
	check("after replay")
	requireNoError(t, h.e.Snapshot())
	late := mustHold(t, s, HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1})
	requireHold(t, h.e.ReleaseHold(late.ID, "b4", false))
	h.restart()
	s = h.sale("final")
	check("after a snapshot")
	requireEqual(t, requireHold(t, h.e.GetHold(late.ID, "b4", false)).State, "released")
	requireEqual(t, requireHold(t, h.e.GetHold(again.ID, "b1", false)).State, "released")
}
