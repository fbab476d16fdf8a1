package actors

// Recovery: a sale's whole state survives a restart, with and without a snapshot.

import (
	"testing"
	"time"
)

// engineState is what a restart must keep of a sale: counts, every hold and
// order, the buyers' allowances, the pause and the line.
type engineState struct {
	Counts  []ZoneCounts
	Holds   map[string]HoldView
	Orders  map[string]OrderView
	Ledger  map[string]int
	Paused  bool
	Tickets map[string]QueueTicket
}

func captureState(t testing.TB, h *harness, saleID string, holds, orders, queueIDs []string) engineState {
	t.Helper()
	s := h.sale(saleID)
	st := engineState{Counts: s.Counts(), Holds: map[string]HoldView{}, Orders: map[string]OrderView{},
		Ledger: map[string]int{}, Paused: s.Paused(), Tickets: map[string]QueueTicket{}}
	for _, id := range holds {
		v := requireHold(t, h.e.GetHold(id, "", true), "hold %s", id)
		st.Holds[id] = *v
		st.Ledger[v.Buyer] = s.ledger.count(v.Buyer)
	}
	for _, id := range orders {
		st.Orders[id] = *requireOrder(t, h.e.GetOrder(id), "order %s", id)
	}
	for _, q := range queueIDs {
		r := s.QueueStatus(q)
		requireTrue(t, r.Err == nil && r.Ticket != nil, "queue %s: %s", q, describe(r))
		tk := *r.Ticket
		// Position, ETA and polling advice come from measured rates,
		// which a restart measures afresh.
		tk.View = TicketView{State: tk.View.State, AccessExpires: tk.View.AccessExpires}
		st.Tickets[q] = tk
	}
	return st
}

func TestEngineRecovery(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	other := h.createSale(SaleDef{ID: "other", MaxPerBuyer: 4, Zones: []ZoneDef{{ID: "floor", Capacity: 10}}})
	p := newFakePayer()
	var holds, orders, queue []string
	hold := func(s *Sale, req HoldRequest) *HoldView {
		v := mustHold(t, s, req)
		holds = append(holds, v.ID)
		return v
	}
	buy := func(v *HoldView) *OrderView {
		o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: v.Buyer, PaymentToken: tokOK}, p))
		orders = append(orders, o.ID)
		return o
	}
	join := func(s *Sale, buyer string) {
		r := s.Join(buyer)
		requireTrue(t, r.Err == nil && r.Ticket != nil, "join: %s", describe(r))
		queue = append(queue, r.Ticket.QueueID)
	}

	active := hold(s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-5", "A-6"}})
	released := hold(s, HoldRequest{Buyer: "b2", Zone: "vip", Quantity: 3})
	requireNoError(t, resultErr(h.e.ReleaseHold(released.ID, "b2", false)))
	paid := buy(hold(s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 4}))
	cancelled := buy(hold(s, HoldRequest{Buyer: "b3", Zone: "vip", Quantity: 2}))
	requireOrder(t, h.e.CancelOrder(cancelled.ID, p))
	hold(other, HoldRequest{Buyer: "b1", Zone: "floor", Quantity: 4})
	join(s, "q1")
	join(s, "q2")
	join(other, "q1")
	requireNoError(t, resultErr(s.SetPaused(true)))

	before := captureState(t, h, "final", holds, orders, queue[:2])
	beforeOther := captureState(t, h, "other", holds[len(holds)-1:], nil, queue[2:])
	requireEqual(t, before.Counts, []ZoneCounts{{ID: "ga", Free: 16, Sold: 4}, {ID: "vip", Free: 18, Held: 2}})
	requireTrue(t, before.Paused, "paused")

	h.restart()
	requireEqual(t, captureState(t, h, "final", holds, orders, queue[:2]), before, "after a restart")
	requireEqual(t, captureState(t, h, "other", holds[len(holds)-1:], nil, queue[2:]), beforeOther)
	requireCode(t, h.sale("final").Hold(HoldRequest{Buyer: "b9", Zone: "ga", Quantity: 1}), CodeSalePaused, "still paused")
	requireEqual(t, h.sale("final").Queue().State, "paused")
	// The same buyer joining again keeps its place.
	requireEqual(t, h.sale("final").Join("q1").Ticket.QueueID, queue[0])

	// A snapshot, then more of everything, then a restart: the state is
	// the snapshot's plus the log after it.
	requireNoError(t, h.e.Snapshot())
	requireTrue(t, h.e.log.FirstSeq() > 1, "the snapshot truncated the log")
	s = h.sale("final")
	requireNoError(t, resultErr(s.SetPaused(false)))
	more := hold(s, HoldRequest{Buyer: "b4", Zone: "vip", Quantity: 4})
	requireNoError(t, resultErr(h.e.ReleaseHold(active.ID, "b1", false)))
	requireOrder(t, h.e.CancelOrder(paid.ID, p))
	buy(more)
	join(s, "q3")
	h.clock.Advance(time.Second)
	after := captureState(t, h, "final", holds, orders, append(queue[:2:2], queue[3:]...))
	requireFalse(t, after.Paused, "resumed")
	requireEqual(t, after.Counts, []ZoneCounts{{ID: "ga", Free: 20}, {ID: "vip", Free: 16, Sold: 4}})
	h.restart()
	requireEqual(t, captureState(t, h, "final", holds, orders, append(queue[:2:2], queue[3:]...)), after, "after a snapshot and a restart")
	requireEqual(t, captureState(t, h, "other", holds[len(holds)-2:len(holds)-1], nil, queue[2:3]), beforeOther)
	mustHold(t, h.sale("final"), HoldRequest{Buyer: "b9", Zone: "ga", Quantity: 1})
}
