package line

import (
	"errors"
	"slices"
	"testing"

	"onsale/wal"
)

// TestRoomLogRefusal: decide, log, apply. An event the log refuses is not
// applied: the decision reports ErrLogRefused wrapping the log's error, the
// room's event-sourced state is as it was, and the events the log accepted
// replay to exactly the room's state, so memory never runs ahead of the log.
func TestRoomLogRefusal(t *testing.T) {
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 1000
	cfg.ActiveLimit = 2
	h := newRoomHarness(t, cfg)
	errFull := errors.New("log queue full")
	var refuse []wal.Type // types the log refuses now
	var logged []wal.Event
	h.r.SetLog(func(ev *wal.Event) error {
		if slices.Contains(refuse, ev.Type) {
			return errFull
		}
		logged = append(logged, *ev)
		return nil
	})
	// refused runs decide with the log refusing types, and checks that it
	// failed and changed nothing the events record.
	refused := func(name string, now int64, types []wal.Type, decide func() error) {
		t.Helper()
		before, n := roomHardState(h.r, now), len(logged)
		before.ByNum, before.PreQueue = slices.Clone(before.ByNum), slices.Clone(before.PreQueue)
		refuse = types
		err := decide()
		refuse = nil
		requireErrorIs(t, err, ErrLogRefused, name)
		requireErrorIs(t, err, errFull, name)
		requireEqual(t, len(logged), n, name+": events logged")
		requireEqual(t, roomHardState(h.r, now), before, name)
	}
	join := func(buyer, q string, now int64) func() error {
		return func() error { _, _, err := h.r.Join(buyer, q, now, roomPlenty); return err }
	}
	all := []wal.Type{wal.TypeQueueJoined, wal.TypeQueueDrawn, wal.TypeQueueAdmitted, wal.TypeQueueLeft, wal.TypeQueueDone}

	refused("pre-queue join", roomT0, all, join("b1", "q_b1", roomT0))
	h.join("b1", roomT0, roomPlenty)
	h.join("b2", roomT0, roomPlenty)
	h.join("b3", roomT0, roomPlenty)

	// At the opening: the draw refused, by a tick and by a join.
	open := cfg.OpensAt
	refused("draw by tick", open, []wal.Type{wal.TypeQueueDrawn}, func() error { _, err := h.r.Tick(open, roomPlenty); return err })
	refused("draw by join", open, []wal.Type{wal.TypeQueueDrawn}, join("b4", "q_b4", open))
	refused("draw by a buyer in line", open, []wal.Type{wal.TypeQueueDrawn}, join("b1", "q_other", open))
	requireFalse(t, h.r.drawn, "no draw while the log refuses it")

	// The draw accepted, the join refused: the draw stands alone.
	refuse = []wal.Type{wal.TypeQueueJoined}
	_, evs, err := h.r.Join("b4", "q_b4", open, roomPlenty)
	refuse = nil
	requireErrorIs(t, err, ErrLogRefused)
	requireEqual(t, roomEventTypes(evs), []wal.Type{wal.TypeQueueDrawn})
	requireTrue(t, h.r.drawn, "drawn")
	requireTrue(t, h.r.Ticket("q_b4") == nil, "the refused joiner has no ticket")

	// Admissions refused keep the bucket's credit: the next tick admits as
	// many as it would have.
	if _, err := h.r.Tick(open, roomPlenty); err != nil {
		t.Fatal(err)
	}
	refused("admission", open+100, []wal.Type{wal.TypeQueueAdmitted}, func() error { _, err := h.r.Tick(open+100, roomPlenty); return err })
	evs, err = h.r.Tick(open+100, roomPlenty)
	requireNoError(t, err)
	requireEqual(t, len(roomAdmittedIDs(t, evs)), 2, "the slots the refused tick would have filled")

	admitted := roomAdmittedIDs(t, evs)[0]
	var waiting string // the one of b1..b3 the draw put last
	for _, q := range []string{"q_000001", "q_000002", "q_000003"} {
		if h.r.Ticket(q).State == TicketWaiting {
			waiting = q
		}
	}
	refused("leave", open+200, []wal.Type{wal.TypeQueueLeft}, func() error { _, err := h.r.Leave(waiting, open+200); return err })
	refused("complete", open+200, []wal.Type{wal.TypeQueueDone}, func() error { _, err := h.r.Complete(admitted, open+200); return err })
	_, err = h.r.Complete(admitted, open+200)
	requireNoError(t, err)

	// A newcomer who finds a free slot and nobody waiting is admitted at
	// once; if the log refuses that admission, they wait in line instead,
	// and the join succeeds.
	_, err = h.r.Leave(waiting, open+300)
	requireNoError(t, err)
	requireEqual(t, h.r.lineWaiting, int64(0))
	refuse = []wal.Type{wal.TypeQueueAdmitted}
	tk, evs, err := h.r.Join("b5", "q_b5", open+300, roomPlenty)
	refuse = nil
	requireNoError(t, err, "join with its admission refused")
	requireEqual(t, roomEventTypes(evs), []wal.Type{wal.TypeQueueJoined})
	requireEqual(t, tk.State, TicketWaiting)
	evs, err = h.r.Tick(open+400, roomPlenty)
	requireNoError(t, err)
	requireEqual(t, roomAdmittedIDs(t, evs), []string{"q_b5"}, "the next tick admits them")

	// What the log holds is what the room is.
	replayed := New(roomTestSale, cfg)
	for i := range logged {
		requireNoError(t, replayed.Apply(&logged[i]), "replay %s", logged[i].Type)
	}
	now := open + 400
	requireEqual(t, roomHardState(replayed, now), roomHardState(h.r, now), "replay of the accepted events")
}
