package actors

// Holds running out: on the tick, at expires_at exactly, and while the engine is closed.

import (
	"testing"
	"time"

	"onsale/wal"
)

func TestEngineHoldExpires(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	early := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 3})
	early2 := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3})
	h.clock.Advance(stdTTL / 2)
	late := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"B-1"}})
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1}), CodeLimitExceeded)

	h.clock.Advance(stdTTL/2 - time.Millisecond)
	requireEqual(t, requireHold(t, h.e.GetHold(early.ID, "", true)).State, "active", "one ms before its expiry")
	h.clock.Advance(time.Millisecond)
	waitFor(t, "expiry of the early holds", func() bool {
		return h.e.GetHold(early.ID, "", true).Hold.State == "expired" && h.e.GetHold(early2.ID, "", true).Hold.State == "expired"
	})
	// One tick released both zones' due holds, and only those.
	requireEqual(t, requireHold(t, h.e.GetHold(late.ID, "", true)).State, "active")
	requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 20}, {ID: "vip", Free: 19, Held: 1}})
	requireEqual(t, s.ledger.count("b1"), 0)
	requireEqual(t, s.Stats().HoldsExpired, int64(2))
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: early2.Seats})
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 3})

	h.clock.Advance(stdTTL / 2)
	waitFor(t, "expiry of the late hold", func() bool { return h.e.GetHold(late.ID, "b2", false).Hold.State == "expired" })
	requireEqual(t, s.ledger.count("b2"), 0)

	// The expiries are durable.
	h.restart()
	requireEqual(t, requireHold(t, h.e.GetHold(early.ID, "", true)).State, "expired")
	requireEqual(t, requireHold(t, h.e.GetHold(late.ID, "", true)).State, "expired")
}

func TestEngineHoldOverAtExpiry(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	read := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	release := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2})

	// At expires_at the hold is over, whether a tick has come by yet or
	// not: a read says expired and a release is refused, as a checkout is.
	h.clock.Advance(stdTTL)
	requireEqual(t, requireHold(t, h.e.GetHold(read.ID, "b1", false)).State, "expired")
	requireCode(t, h.e.ReleaseHold(release.ID, "b2", false), CodeHoldNotActive)
	requireEqual(t, requireHold(t, h.e.GetHold(release.ID, "", true)).State, "expired")
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})
	requireEqual(t, s.ledger.count("b1")+s.ledger.count("b2"), 0)
}

func TestEngineExpiryWhileClosed(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	due := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 4})
	h.clock.Advance(time.Minute)
	kept := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2})
	h.close()

	h.clock.Advance(stdTTL - time.Minute)
	h.open()
	// Expired by Open itself, before it returned: the first tick comes
	// 100 ms after it.
	s = h.sale("final")
	requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 18, Held: 2}, {ID: "vip", Free: 20}})
	requireEqual(t, s.ledger.count("b1"), 0)
	requireEqual(t, s.ledger.count("b2"), 2)
	requireEqual(t, requireHold(t, h.e.GetHold(due.ID, "b1", false)).State, "expired")
	requireEqual(t, requireHold(t, h.e.GetHold(kept.ID, "b2", false)).State, "active")

	// The expiry was written: it holds after another restart at the same time.
	h.restart()
	requireEqual(t, requireHold(t, h.e.GetHold(due.ID, "b1", false)).State, "expired")
	var expired int
	h.close()
	replayLog(t, h.dir, func(_ uint64, ev *wal.Event) {
		if ev.Type == wal.TypeHoldExpired {
			requireEqual(t, ev.Hold, due.ID)
			expired++
		}
	})
	requireEqual(t, expired, 1)
	h.open()
}
