package actors

import "testing"

// TestRoomPublishedView: readers off the room actor (Sale.Queue,
// Sale.Revoked, Sale.Paused) read the View the room publishes, and the room
// publishes before it answers, so a caller sees the effect of their own
// request as soon as they are answered; recovery and snapshots rebuild what
// the View says.
func TestRoomPublishedView(t *testing.T) {
	h := newHarness(t)
	def := stdSaleDef()
	def.WaitingRoom = WaitingRoomDef{ActiveLimit: 1, AdmitPerS: 100}
	s := h.createSale(def)

	join := func(buyer string) *QueueTicket {
		t.Helper()
		r := s.Join(buyer)
		requireTrue(t, r.Err == nil && r.Ticket != nil, "join %s: %s", buyer, describe(r))
		return r.Ticket
	}
	a := join("a")
	requireEqual(t, a.View.State, "admitted", "nobody waits: admitted at once")
	b := join("b")
	requireEqual(t, b.View.Position, int64(1))
	requireEqual(t, s.Queue(), QueueSummary{State: "queueing", Waiting: 1, Admitted: 1, AdmittedTotal: 1, AdmitPerS: 100})
	requireFalse(t, s.Revoked(a.QueueID), "admitted, not revoked")

	// Leaving an admission revokes it at once; leaving a place in line
	// revokes nothing.
	requireNoError(t, resultErr(s.Leave(a.QueueID)))
	requireTrue(t, s.Revoked(a.QueueID), "revoked as soon as the leave is answered")
	requireEqual(t, s.Queue().Admitted, int64(0))
	c := join("c")
	requireNoError(t, resultErr(s.Leave(c.QueueID)))
	requireFalse(t, s.Revoked(c.QueueID), "never admitted, so nothing to revoke")

	// The pause is the room's to publish, and shown once answered.
	requireNoError(t, resultErr(s.SetPaused(true)))
	requireTrue(t, s.Paused(), "paused as soon as answered")
	requireEqual(t, s.Queue().State, "paused")
	requireEqual(t, s.Queue().AdmitPerS, 0.0)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b", Zone: "ga", Quantity: 1}), CodeSalePaused)

	check := func(when string) {
		t.Helper()
		s = h.sale("final")
		requireTrue(t, s.Revoked(a.QueueID), "%s: a's admission stays revoked", when)
		requireFalse(t, s.Revoked(b.QueueID), "%s: b", when)
		requireFalse(t, s.Revoked(c.QueueID), "%s: c", when)
		requireTrue(t, s.Paused(), "%s: paused", when)
		requireEqual(t, s.Queue().State, "paused", when)
	}
	h.restart()
	check("after a restart")
	requireNoError(t, h.e.Snapshot())
	h.restart()
	check("after a snapshot and a restart")

	requireNoError(t, resultErr(s.SetPaused(false)))
	requireFalse(t, s.Paused(), "resumed as soon as answered")
	requireTrue(t, s.Queue().State != "paused", "resumed")
}
