package line

import (
	"bytes"
	"testing"

	"onsale/wal"
)

func TestRoomApplyRejects(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	shopper := h.join("shopper", roomT0, roomPlenty)
	w := h.join("waiter", roomT0, roomPlenty)
	h.join("gone", roomT0, roomPlenty)
	h.leave("q_000003", roomT0)
	ids := func(ids ...string) []byte { return AppendQueueIDs(nil, ids) }
	for name, ev := range map[string]wal.Event{
		"other sale":           {Type: wal.TypeQueueLeft, Sale: "other", Hold: w.QueueID},
		"not a queue event":    {Type: wal.TypeHoldPlaced, Sale: roomTestSale},
		"join: id in use":      {Type: wal.TypeQueueJoined, Sale: roomTestSale, Buyer: "x", Hold: w.QueueID, Num: 4},
		"join: live buyer":     {Type: wal.TypeQueueJoined, Sale: roomTestSale, Buyer: "waiter", Hold: "q_new", Num: 4},
		"join: wrong number":   {Type: wal.TypeQueueJoined, Sale: roomTestSale, Buyer: "x", Hold: "q_new", Num: 7},
		"join: pre-queue late": {Type: wal.TypeQueueJoined, Sale: roomTestSale, Buyer: "x", Hold: "q_new"},
		"join: no buyer":       {Type: wal.TypeQueueJoined, Sale: roomTestSale, Hold: "q_new", Num: 4},
		"drawn twice":          {Type: wal.TypeQueueDrawn, Sale: roomTestSale, Blob: ids()},
		"admit: admitted":      {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids(shopper.QueueID), At: roomT0, Expires: roomT0 + 1},
		"admit: expired":       {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids("q_000003"), At: roomT0, Expires: roomT0 + 1},
		"admit: twice":         {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids(w.QueueID, w.QueueID), At: roomT0, Expires: roomT0 + 1},
		"admit: unknown":       {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids("q_nope"), At: roomT0, Expires: roomT0 + 1},
		"admit: none":          {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids(), At: roomT0, Expires: roomT0 + 1},
		"admit: no window":     {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids(w.QueueID), At: roomT0, Expires: roomT0},
		"admit: bad blob":      {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: []byte{1, 5, 'q'}, At: roomT0, Expires: roomT0 + 1},
		"admit: trailing":      {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: append(ids(w.QueueID), 0), At: roomT0, Expires: roomT0 + 1},
		"left: expired":        {Type: wal.TypeQueueLeft, Sale: roomTestSale, Hold: "q_000003"},
		"left: unknown":        {Type: wal.TypeQueueLeft, Sale: roomTestSale, Hold: "q_nope"},
		"done: waiting":        {Type: wal.TypeQueueDone, Sale: roomTestSale, Hold: w.QueueID},
		"done: unknown":        {Type: wal.TypeQueueDone, Sale: roomTestSale, Hold: "q_nope"},
	} {
		before := h.r.AppendSnapshot(nil)
		requireErrorIs(t, h.r.Apply(&ev), ErrEvent, name)
		requireEqual(t, h.r.AppendSnapshot(nil), before, "%s changed the room", name)
	}

	// Before the draw.
	cfg.OpensAt = roomT0 + 1000
	h = newRoomHarness(t, cfg)
	a := h.join("a", roomT0, roomPlenty)
	h.join("b", roomT0, roomPlenty)
	for name, ev := range map[string]wal.Event{
		"numbered early": {Type: wal.TypeQueueJoined, Sale: roomTestSale, Buyer: "x", Hold: "q_new", Num: 1},
		"admit early":    {Type: wal.TypeQueueAdmitted, Sale: roomTestSale, Blob: ids(a.QueueID), At: roomT0, Expires: roomT0 + 1},
		"draw: missing":  {Type: wal.TypeQueueDrawn, Sale: roomTestSale, Blob: ids(a.QueueID)},
		"draw: twice":    {Type: wal.TypeQueueDrawn, Sale: roomTestSale, Blob: ids(a.QueueID, a.QueueID)},
		"draw: unknown":  {Type: wal.TypeQueueDrawn, Sale: roomTestSale, Blob: ids(a.QueueID, "q_nope")},
		"draw: bad blob": {Type: wal.TypeQueueDrawn, Sale: roomTestSale, Blob: []byte{0x80}},
	} {
		before := h.r.AppendSnapshot(nil)
		requireErrorIs(t, h.r.Apply(&ev), ErrEvent, name)
		requireEqual(t, h.r.AppendSnapshot(nil), before, "%s changed the room", name)
	}
}

func TestRoomQueueIDs(t *testing.T) {
	for _, ids := range [][]string{{}, {"q_a"}, {"q_a", "q_bb", string(bytes.Repeat([]byte("z"), roomIDBytesMax))}} {
		got, err := QueueIDs(AppendQueueIDs([]byte{}, ids))
		requireNoError(t, err)
		requireEqual(t, len(got), len(ids))
		for i := range ids {
			requireEqual(t, got[i], ids[i])
		}
	}
	for _, bad := range [][]byte{nil, {}, {1}, {1, 0}, {1, 2, 'q'}, {2, 1, 'q'}, {0, 0}, {1, 65}, {0xff, 0xff, 0xff, 0xff, 0x0f}} {
		_, err := QueueIDs(bad)
		requireErrorIs(t, err, ErrEvent, "%v", bad)
	}
}
