package line

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"sort"
	"testing"

	"onsale/wal"
)

// roomT0 is the tests' "now": an ordinary Unix time in milliseconds.
const roomT0 int64 = 1_800_000_000_000

const roomTestSale = "final-2026"

// roomPlenty is a stock that never limits admissions.
var roomPlenty = Stock{Free: 1_000_000}

func testRoomConfig() Config {
	return Config{OpensAt: roomT0, ActiveLimit: 1000, AdmitPerS: 100, AccessTTL: 60_000,
		Seed: sha256.Sum256([]byte("onsale test seed"))}
}

// roomHarness drives a Room, keeps every event it returned (to replay
// them) and the queue ids in the order OnAdmitted saw them.
type roomHarness struct {
	t        testing.TB
	r        *Room
	evs      []wal.Event
	last     []wal.Event // what the latest call returned
	n        int
	admitted []string
}

func newRoomHarness(t testing.TB, cfg Config) *roomHarness {
	h := &roomHarness{t: t, r: New(roomTestSale, cfg)}
	h.r.OnAdmitted(func(tk *Ticket) { h.admitted = append(h.admitted, tk.QueueID) })
	return h
}

func (h *roomHarness) join(buyer string, now int64, st Stock) *Ticket {
	h.t.Helper()
	h.n++
	tk, evs, err := h.r.Join(buyer, fmt.Sprintf("q_%06d", h.n), now, st)
	requireNoError(h.t, err, "join %s", buyer)
	h.evs, h.last = append(h.evs, evs...), evs
	return tk
}

func (h *roomHarness) tick(now int64, st Stock) []wal.Event {
	evs, err := h.r.Tick(now, st)
	requireNoError(h.t, err, "tick")
	h.evs, h.last = append(h.evs, evs...), evs
	return evs
}

func (h *roomHarness) leave(queueID string, now int64) []wal.Event {
	evs, err := h.r.Leave(queueID, now)
	requireNoError(h.t, err, "leave")
	h.evs, h.last = append(h.evs, evs...), evs
	return evs
}

func (h *roomHarness) complete(queueID string, now int64) []wal.Event {
	evs, err := h.r.Complete(queueID, now)
	requireNoError(h.t, err, "complete")
	h.evs, h.last = append(h.evs, evs...), evs
	return evs
}

func roomEventTypes(evs []wal.Event) []wal.Type {
	out := []wal.Type{}
	for _, ev := range evs {
		out = append(out, ev.Type)
	}
	return out
}

func roomAdmittedIDs(t testing.TB, evs []wal.Event) []string {
	t.Helper()
	out := []string{}
	for _, ev := range evs {
		if ev.Type == wal.TypeQueueAdmitted {
			ids, err := QueueIDs(ev.Blob)
			requireNoError(t, err)
			out = append(out, ids...)
		}
	}
	return out
}

func TestRoomFIFOAdmission(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 3
	h := newRoomHarness(t, cfg)
	var qids []string
	for i := range 10 {
		tk := h.join(fmt.Sprintf("b%d", i), roomT0+int64(i), roomPlenty)
		qids = append(qids, tk.QueueID)
	}
	// Open, nobody waiting: the first three are admitted at once.
	requireEqual(t, h.admitted, qids[:3])
	for i, q := range qids[3:] {
		requireEqual(t, h.r.Position(h.r.Ticket(q)), int64(i+1))
	}
	requireEqual(t, h.r.State(roomT0+10, roomPlenty), "queueing")

	h.complete(qids[0], roomT0+100)
	h.tick(roomT0+200, roomPlenty)
	h.tick(roomT0+300, roomPlenty)
	requireEqual(t, h.admitted, qids[:4])
	h.leave(qids[1], roomT0+400)
	h.complete(qids[2], roomT0+400)
	h.tick(roomT0+500, roomPlenty)
	requireEqual(t, h.admitted, qids[:6])
	requireEqual(t, h.r.Admitted(), int64(3))
	requireEqual(t, h.r.Position(h.r.Ticket(qids[6])), int64(1))
}

func TestRoomOnePlacePerBuyer(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	first := h.join("alice", roomT0, roomPlenty)
	requireEqual(t, first.State, TicketAdmitted)
	waiting := h.join("bob", roomT0+1, roomPlenty)
	requireEqual(t, h.r.Position(waiting), int64(1))
	h.join("carol", roomT0+2, roomPlenty)

	for _, tk := range []*Ticket{first, waiting} {
		again, evs, err := h.r.Join(tk.Buyer, "q_other", roomT0+3, roomPlenty)
		requireNoError(t, err)
		requireTrue(t, again == tk, "same ticket for %s", tk.Buyer)
		requireEqual(t, len(evs), 0)
	}
	requireEqual(t, h.r.ByBuyer("bob"), waiting)
	requireEqual(t, h.r.Waiting(), int64(2))

	// After leaving, joining again is a new place at the back.
	h.leave(waiting.QueueID, roomT0+4)
	requireTrue(t, h.r.ByBuyer("bob") == nil)
	back := h.join("bob", roomT0+5, roomPlenty)
	requireTrue(t, back.QueueID != waiting.QueueID)
	requireEqual(t, h.r.Position(back), int64(2))
	requireEqual(t, h.r.TicketView(waiting, roomT0+5, roomPlenty).State, "expired")
}

func TestRoomPositionAfterLeave(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	h.join("shopper", roomT0, roomPlenty)
	var line []*Ticket
	for i := range 10 {
		line = append(line, h.join(fmt.Sprintf("b%d", i), roomT0+1, roomPlenty))
	}
	check := func(want []*Ticket) {
		t.Helper()
		for i, tk := range want {
			requireEqual(t, h.r.Position(tk), int64(i+1), tk.Buyer)
			v := h.r.TicketView(tk, roomT0+2, roomPlenty)
			requireEqual(t, v.Position, int64(i+1))
			requireEqual(t, v.State, "waiting")
		}
		requireEqual(t, h.r.Waiting(), int64(len(want)))
	}
	check(line)
	h.leave(line[2].QueueID, roomT0+2) // someone ahead leaves: those behind move up
	line = append(line[:2], line[3:]...)
	check(line)
	h.leave(line[len(line)-1].QueueID, roomT0+2) // the last leaves: nobody else moves
	line = line[:len(line)-1]
	check(line)
	h.leave(line[0].QueueID, roomT0+2)
	line = line[1:]
	check(line)
	// The shopper's access passes; the front is admitted and the rest move up.
	h.tick(roomT0+cfg.AccessTTL, roomPlenty)
	h.tick(roomT0+cfg.AccessTTL+100, roomPlenty)
	requireEqual(t, h.admitted[1:], []string{line[0].QueueID})
	check(line[1:])
}

// drawOrderIndependent is a second implementation of the published draw,
// written from its description with other tools (big integers, a streaming
// hash, sort.Slice), so that a mistake in one is not repeated in the other.
func drawOrderIndependent(seed [32]byte, ids []string) []string {
	out := make([]string, len(ids))
	copy(out, ids)
	sort.Slice(out, func(a, b int) bool { return bytes.Compare([]byte(out[a]), []byte(out[b])) < 0 })
	for i := len(out) - 1; i >= 1; i-- {
		h := sha256.New()
		h.Write(seed[:])
		if err := binary.Write(h, binary.BigEndian, uint64(i)); err != nil {
			panic(err)
		}
		sum := h.Sum(nil)
		j := new(big.Int).Mod(new(big.Int).SetBytes(sum[:8]), big.NewInt(int64(i+1))).Int64()
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func TestRoomDrawOrderRecomputable(t *testing.T) {
	// A fixed vector, also checked by hand with another language: the
	// algorithm is public and must never change.
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(i)
	}
	in := []string{"q_e", "q_a", "q_d", "q_b", "q_c", "q_f", "q_g", "q_h"}
	kept := append([]string(nil), in...)
	requireEqual(t, DrawOrder(seed, in), []string{"q_g", "q_e", "q_a", "q_c", "q_d", "q_b", "q_f", "q_h"})
	requireEqual(t, in, kept, "input unchanged")
	requireEqual(t, len(DrawOrder(seed, nil)), 0)
	requireEqual(t, DrawOrder(seed, []string{"q_x"}), []string{"q_x"})

	rng := testRand(t)
	for range 200 {
		var s [32]byte
		for i := range s {
			s[i] = byte(rng.UintN(256))
		}
		ids := make([]string, rng.IntN(300))
		for i := range ids {
			ids[i] = fmt.Sprintf("q_%x", rng.Uint64())
		}
		got := DrawOrder(s, ids)
		requireEqual(t, got, drawOrderIndependent(s, ids))
		rng.Shuffle(len(ids), func(a, b int) { ids[a], ids[b] = ids[b], ids[a] })
		requireEqual(t, DrawOrder(s, ids), got, "input order does not matter")
	}
}

func TestRoomPreQueueAheadOfLaterArrivals(t *testing.T) {
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 10_000
	h := newRoomHarness(t, cfg)
	var pre []string
	for i := range 6 {
		tk := h.join(fmt.Sprintf("early%d", i), roomT0+int64(i)*1000, roomPlenty)
		requireEqual(t, tk.Num, uint64(0))
		pre = append(pre, tk.QueueID)
	}
	requireEqual(t, h.r.State(roomT0, roomPlenty), "pre_queue")
	tk := h.r.Ticket(pre[0])
	for _, c := range []struct{ now, opensIn int64 }{
		{roomT0, 10}, {cfg.OpensAt - 1500, 2}, {cfg.OpensAt - 1000, 1}, {cfg.OpensAt - 1, 1}, {cfg.OpensAt, 0},
	} {
		v := h.r.TicketView(tk, c.now, roomPlenty)
		requireEqual(t, v, TicketView{State: "waiting", ETAS: c.opensIn, PollAfterS: max(c.opensIn, 1),
			OpensInS: c.opensIn}, "at %d", c.now)
	}
	// Leaving before the draw keeps you out of it.
	left := pre[5]
	h.leave(left, roomT0+6000)
	pre = pre[:5]
	seedHex, order, done := h.r.Draw()
	requireFalse(t, done)
	requireEqual(t, seedHex, "")
	requireEqual(t, order, []string(nil))

	h.tick(cfg.OpensAt-1, roomPlenty)
	requireFalse(t, h.r.drawn)
	evs := h.tick(cfg.OpensAt, roomPlenty)
	requireEqual(t, roomEventTypes(evs), []wal.Type{wal.TypeQueueDrawn})
	drawn, err := QueueIDs(evs[0].Blob)
	requireNoError(t, err)
	requireEqual(t, drawn, DrawOrder(cfg.Seed, pre))
	seedHex, order, done = h.r.Draw()
	requireTrue(t, done)
	requireEqual(t, seedHex, fmt.Sprintf("%x", cfg.Seed))
	requireEqual(t, order, drawn)
	requireEqual(t, h.r.SeedSHA256(), fmt.Sprintf("%x", sha256.Sum256(cfg.Seed[:])))
	for i, q := range order {
		requireEqual(t, h.r.Ticket(q).Num, uint64(i+1))
		requireEqual(t, h.r.Position(h.r.Ticket(q)), int64(i+1))
	}
	later := h.join("late", cfg.OpensAt+1, roomPlenty)
	requireEqual(t, later.Num, uint64(6))
	requireEqual(t, h.r.Position(later), int64(6))
	requireEqual(t, h.r.Ticket(left).StateAt(cfg.OpensAt), TicketExpired)
	requireEqual(t, h.r.Ticket(left).Num, uint64(0))

	// A Join at the opening before any Tick draws first.
	h2 := newRoomHarness(t, cfg)
	a := h2.join("early", roomT0, roomPlenty)
	b, evs, err := h2.r.Join("late", "q_late", cfg.OpensAt, roomPlenty)
	requireNoError(t, err)
	requireEqual(t, roomEventTypes(evs), []wal.Type{wal.TypeQueueDrawn, wal.TypeQueueJoined})
	requireEqual(t, a.Num, uint64(1))
	requireEqual(t, b.Num, uint64(2))
	requireEqual(t, b.State, TicketWaiting, "the pre-queue waits, so the newcomer waits too")
}

func TestRoomAdmitRate(t *testing.T) {
	for _, stepMs := range []int64{50, 100, 250, 1000} {
		cfg := testRoomConfig()
		cfg.ActiveLimit = 100_000
		cfg.OpensAt = roomT0 + 1
		h := newRoomHarness(t, cfg)
		for i := range 5000 {
			h.join(fmt.Sprintf("b%d", i), roomT0, roomPlenty)
		}
		h.tick(cfg.OpensAt, roomPlenty)
		for now := cfg.OpensAt + stepMs; now <= cfg.OpensAt+10_000; now += stepMs {
			h.tick(now, roomPlenty)
		}
		got := h.r.AdmittedTotal()
		requireTrue(t, got >= 900 && got <= 1100, "step %d ms: %d admitted in 10 s at 100/s", stepMs, got)
		requireTrue(t, math.Abs(h.r.MeasuredRate()-100) <= 10, "step %d ms: measured %v", stepMs, h.r.MeasuredRate())
		requireEqual(t, h.r.RateInForce(cfg.OpensAt, roomPlenty), 100.0)
	}
}

// roomShopping counts from the tickets themselves who shops at now.
func roomShopping(r *Room, now int64) int64 {
	var n int64
	for i := range uint32(r.tickets.len()) {
		t := r.tickets.at(i)
		if t.StateAt(now) == TicketAdmitted && !t.Done {
			n++
		}
	}
	return n
}

func TestRoomActiveLimit(t *testing.T) {
	rng := testRand(t)
	cfg := testRoomConfig()
	cfg.ActiveLimit = 7
	cfg.AdmitPerS = 1000
	cfg.AccessTTL = 5000
	h := newRoomHarness(t, cfg)
	now := roomT0
	for i := range 2000 {
		now += int64(rng.IntN(200))
		switch rng.IntN(4) {
		case 0:
			h.join(fmt.Sprintf("b%d", i), now, roomPlenty)
		case 1:
			if len(h.admitted) > 0 {
				h.complete(h.admitted[rng.IntN(len(h.admitted))], now)
			}
		default:
			h.tick(now, roomPlenty)
		}
		requireTrue(t, roomShopping(h.r, now) <= 7, "op %d: %d shopping", i, roomShopping(h.r, now))
		h.r.expire(now)
		requireEqual(t, h.r.Admitted(), roomShopping(h.r, now))
	}
	requireTrue(t, h.r.AdmittedTotal() > 100, "the line moved: %d", h.r.AdmittedTotal())
}

func TestRoomSoldOutAndBack(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 2
	h := newRoomHarness(t, cfg)
	shopper := h.join("shopper", roomT0, roomPlenty)
	var line []*Ticket
	for i := range 3 {
		line = append(line, h.join(fmt.Sprintf("b%d", i), roomT0, roomPlenty))
	}
	requireEqual(t, h.r.Admitted(), int64(2))
	soldOut := Stock{}
	requireEqual(t, h.r.State(roomT0, soldOut), "sold_out")
	requireEqual(t, h.r.RateInForce(roomT0, soldOut), 0.0)
	v := h.r.TicketView(line[2], roomT0, soldOut)
	requireEqual(t, v.State, "sold_out")
	requireEqual(t, v.Position, int64(2), "the place is kept")
	requireTrue(t, v.PollAfterS >= roomPollSoldOutMinS)
	requireEqual(t, h.r.TicketView(shopper, roomT0, soldOut).State, "admitted")

	// A slot frees, but nothing is left to sell: nobody is admitted, and a
	// newcomer is not admitted at once either.
	h.complete(shopper.QueueID, roomT0+10)
	for now := roomT0 + 100; now < roomT0+3000; now += 100 {
		requireEqual(t, len(h.tick(now, soldOut)), 0)
	}
	requireEqual(t, h.r.State(roomT0+3000, Stock{Held: 1}), "queueing", "held seats may come back")

	// A hold expires: the line moves again.
	back := Stock{Free: 1}
	requireEqual(t, h.r.TicketView(line[1], roomT0+3000, back).State, "waiting")
	h.tick(roomT0+3100, back)
	requireEqual(t, len(h.admitted), 3)
	requireEqual(t, h.r.TicketView(line[1], roomT0+3100, back).State, "admitted")
}

func TestRoomAccessExpiryFreesSlot(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	first := h.join("first", roomT0, roomPlenty)
	second := h.join("second", roomT0, roomPlenty)
	requireEqual(t, first.AccessExpires, roomT0+cfg.AccessTTL)
	v := h.r.TicketView(first, roomT0+1000, roomPlenty)
	requireEqual(t, v, TicketView{State: "admitted", PollAfterS: 59, OpensInS: -1, AccessExpires: first.AccessExpires})

	for now := roomT0 + 100; now < first.AccessExpires; now += 10_000 {
		requireEqual(t, len(h.tick(now, roomPlenty)), 0)
	}
	h.tick(first.AccessExpires-1, roomPlenty)
	requireEqual(t, second.State, TicketWaiting)
	h.tick(first.AccessExpires, roomPlenty)
	requireEqual(t, second.State, TicketAdmitted)
	requireEqual(t, h.r.TicketView(first, first.AccessExpires, roomPlenty).State, "expired")
	requireTrue(t, h.r.ByBuyer("first") == nil)
	requireEqual(t, h.r.Admitted(), int64(1))

	again := h.join("first", first.AccessExpires+1, roomPlenty)
	requireTrue(t, again != first)
	requireEqual(t, h.r.Position(again), int64(1))
}

func TestRoomLeave(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	shopper := h.join("shopper", roomT0, roomPlenty)
	w1 := h.join("w1", roomT0, roomPlenty)
	w2 := h.join("w2", roomT0, roomPlenty)

	evs := h.leave(w1.QueueID, roomT0+1)
	requireEqual(t, evs, []wal.Event{{Type: wal.TypeQueueLeft, Sale: roomTestSale, Hold: w1.QueueID, At: roomT0 + 1}})
	requireEqual(t, h.r.TicketView(w1, roomT0+1, roomPlenty),
		TicketView{State: "expired", PollAfterS: roomPollAfterMaxS, OpensInS: -1})
	requireEqual(t, len(h.leave(w1.QueueID, roomT0+2)), 0, "leaving twice")
	requireEqual(t, len(h.leave("q_nobody", roomT0+2)), 0, "unknown id")
	requireEqual(t, h.r.Position(w2), int64(1))

	// Giving up an admission frees its slot.
	requireEqual(t, len(h.leave(shopper.QueueID, roomT0+3)), 1)
	requireEqual(t, h.r.Admitted(), int64(0))
	h.tick(roomT0+100, roomPlenty)
	h.tick(roomT0+200, roomPlenty)
	requireEqual(t, w2.State, TicketAdmitted)
	requireEqual(t, len(h.leave(shopper.QueueID, roomT0+300)), 0)
}

func TestRoomDone(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	shopper := h.join("shopper", roomT0, roomPlenty)
	next := h.join("next", roomT0, roomPlenty)
	requireEqual(t, len(h.complete(next.QueueID, roomT0+1)), 0, "not admitted")
	requireEqual(t, len(h.complete(shopper.QueueID, roomT0+1)), 1)
	requireEqual(t, len(h.complete(shopper.QueueID, roomT0+2)), 0, "twice")
	requireTrue(t, shopper.Done)
	requireEqual(t, h.r.Admitted(), int64(0))
	requireEqual(t, h.r.TicketView(shopper, roomT0+2, roomPlenty).State, "admitted", "until the access window ends")
	requireTrue(t, h.r.ByBuyer("shopper") == shopper)
	h.tick(roomT0+100, roomPlenty)
	h.tick(roomT0+200, roomPlenty)
	requireEqual(t, next.State, TicketAdmitted)
	requireEqual(t, h.r.TicketView(shopper, shopper.AccessExpires, roomPlenty).State, "expired")
	requireEqual(t, len(h.complete(next.QueueID, next.AccessExpires)), 0, "access passed")
}

func TestRoomPause(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 5
	h := newRoomHarness(t, cfg)
	h.r.SetPaused(true)
	tk := h.join("b0", roomT0, roomPlenty)
	requireEqual(t, tk.State, TicketWaiting, "no admission at once while paused")
	for i := 1; i < 5; i++ {
		h.join(fmt.Sprintf("b%d", i), roomT0, roomPlenty)
	}
	requireEqual(t, h.r.State(roomT0, roomPlenty), "paused")
	requireEqual(t, h.r.State(roomT0, Stock{}), "paused")
	requireEqual(t, h.r.RateInForce(roomT0, roomPlenty), 0.0)
	for now := roomT0; now < roomT0+5000; now += 100 {
		requireEqual(t, len(h.tick(now, roomPlenty)), 0)
	}
	v := h.r.TicketView(tk, roomT0+5000, roomPlenty)
	requireEqual(t, v.State, "waiting")
	requireTrue(t, v.ETAS >= 1)
	h.r.SetPaused(false)
	requireEqual(t, h.r.RateInForce(roomT0, roomPlenty), 100.0)
	h.tick(roomT0+5100, roomPlenty)
	requireEqual(t, h.r.AdmittedTotal(), int64(5), "the pause banked no credit beyond one second")
}

func TestRoomAutomaticRate(t *testing.T) {
	cfg := testRoomConfig()
	cfg.AdmitPerS = 0
	h := newRoomHarness(t, cfg)
	h.join("b", roomT0, roomPlenty)
	for _, c := range []struct {
		holds, want float64
	}{{0, 500}, {10, 500}, {100, 500}, {1000, 2000}, {1e9, AdmitPerSMax}, {math.NaN(), 500}, {math.Inf(1), AdmitPerSMax}, {-5, 500}} {
		requireEqual(t, h.r.RateInForce(roomT0, Stock{Free: 10, HoldsPerS: c.holds}), c.want, "holds %v/s", c.holds)
	}
}

func TestRoomAutomaticCap(t *testing.T) {
	rng := testRand(t)
	cfg := testRoomConfig()
	cfg.AdmitPerS = 0
	cfg.ActiveLimit = 1000
	h := newRoomHarness(t, cfg)
	free := int64(10)
	now := roomT0
	// Admissions happen only while fewer buyers look for seats than the
	// free seats serve (autoSeekersMax); those admitted before the stock
	// shrank stay.
	checkCap := func(before int64, now int64) {
		t.Helper()
		if h.r.AdmittedTotal() > before {
			requireTrue(t, roomShopping(h.r, now) <= autoSeekersMax(Stock{Free: free}),
				"%d shopping for %d free seats", roomShopping(h.r, now), free)
		}
	}
	for i := range 300 {
		st := Stock{Free: free, Held: 5, HoldsPerS: 1000}
		before := h.r.AdmittedTotal()
		h.join(fmt.Sprintf("b%d", i), now, st)
		checkCap(before, now)
		now += 50
		// A random checkout completes before the tick, so that the tick
		// can fill the slot again before the check below.
		if rng.IntN(10) == 0 && len(h.admitted) > 0 {
			h.complete(h.admitted[rng.IntN(len(h.admitted))], now)
		}
		before = h.r.AdmittedTotal()
		h.tick(now, st)
		checkCap(before, now)
		if i == 150 {
			requireEqual(t, roomShopping(h.r, now), autoSeekersMax(Stock{Free: 10}), "the cap binds")
			free = 3
			for _, q := range h.admitted {
				h.complete(q, now)
			}
		}
	}
	requireEqual(t, h.r.Admitted(), autoSeekersMax(Stock{Free: 3}), "the cap binds")
	requireTrue(t, h.r.Waiting() > 200)
	// Nothing free but seats held: no admission, yet not sold out either.
	st := Stock{Held: 5}
	h.r.expire(now)
	before := h.r.AdmittedTotal()
	for _, q := range h.admitted {
		h.complete(q, now)
	}
	h.tick(now+1000, st)
	requireEqual(t, h.r.AdmittedTotal(), before)
	requireEqual(t, h.r.State(now, st), "queueing")
}

func TestRoomStateOrder(t *testing.T) {
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 1000
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	requireEqual(t, h.r.State(roomT0, Stock{}), "pre_queue")
	h.r.SetPaused(true)
	requireEqual(t, h.r.State(roomT0, roomPlenty), "paused")
	h.r.SetPaused(false)
	h.tick(cfg.OpensAt, roomPlenty)
	requireEqual(t, h.r.State(cfg.OpensAt, roomPlenty), "open")
	h.join("a", cfg.OpensAt, roomPlenty)
	requireEqual(t, h.r.State(cfg.OpensAt, roomPlenty), "open")
	h.join("b", cfg.OpensAt, roomPlenty)
	requireEqual(t, h.r.State(cfg.OpensAt, roomPlenty), "queueing")
	requireEqual(t, h.r.State(cfg.OpensAt, Stock{}), "sold_out")
}

func TestRoomETAAndPoll(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1_000_000
	cfg.OpensAt = roomT0 + 1
	h := newRoomHarness(t, cfg)
	for i := range 3000 {
		h.join(fmt.Sprintf("b%d", i), roomT0, roomPlenty)
	}
	h.tick(cfg.OpensAt, roomPlenty)
	last := h.r.tickets.at(h.r.byNum[2999])
	// Nothing measured yet: the rate in force (100/s).
	v := h.r.TicketView(last, cfg.OpensAt, roomPlenty)
	requireEqual(t, v.Position, int64(3000))
	requireEqual(t, v.ETAS, int64(30))
	requireEqual(t, v.PollAfterS, int64(1)) // a line of 3,000 is within the poll budget
	for now := cfg.OpensAt + 100; now <= cfg.OpensAt+10_000; now += 100 {
		h.tick(now, roomPlenty)
	}
	v = h.r.TicketView(last, cfg.OpensAt+10_000, roomPlenty)
	want := int64(math.Ceil(float64(v.Position) / h.r.MeasuredRate()))
	requireEqual(t, v.ETAS, want)
	// Paused: nothing moves, yet eta_s stays a finite number.
	h.r.SetPaused(true)
	for now := cfg.OpensAt + 10_100; now <= cfg.OpensAt+200_000; now += 1000 {
		h.tick(now, roomPlenty)
	}
	v = h.r.TicketView(last, cfg.OpensAt+200_000, roomPlenty)
	requireTrue(t, v.ETAS >= 0 && v.ETAS <= v.Position, "eta %d at position %d", v.ETAS, v.Position)
	requireTrue(t, v.PollAfterS >= 1 && v.PollAfterS <= roomPollAfterMaxS)
}

// TestRoomPollLoadBound sums the polls per second a still line makes at
// the default budget (each position polls once per poll_after_s), for lines
// of 10,000, 1,000,000 and the longest, and checks that a line moving faster
// than the budget's span polls about when each buyer's turn is due.
func TestRoomPollLoadBound(t *testing.T) {
	load := func(n int64, span float64) float64 {
		var s float64
		prev := int64(1)
		for p := int64(1); p <= n; p++ {
			pa := pollAfter(p, span)
			if pa < prev || pa < 1 || pa > roomPollAfterMaxS {
				t.Fatalf("poll_after(%d, %v) = %d after %d", p, span, pa, prev)
			}
			prev = pa
			s += 1 / float64(pa)
		}
		return s
	}
	requireEqual(t, pollAfter(1, 100), int64(1))
	for _, n := range []int64{10_000, 100_000, 1_000_000, roomTicketsMax} {
		span := budgetSpan(n, PollBudgetDefault)
		got := load(n, span)
		t.Logf("still line of %d: poll_after_s = ceil(position / %.0f), %.0f polls/s (budget %d), the back polls every %d s",
			n, span, got, PollBudgetDefault, pollAfter(n, span))
		requireTrue(t, got <= PollBudgetDefault, "%.0f polls/s for a line of %d", got, n)
		requireTrue(t, got >= PollBudgetDefault/2 || float64(n) <= PollBudgetDefault, "the budget is used: %.0f polls/s", got)
	}
	// A short line polls every second.
	requireEqual(t, budgetSpan(5000, PollBudgetDefault), 5000.0)
	// A room whose line moves at 4,000/s: positions up to 4,000 poll each
	// second, the rest about when their turn comes.
	r := New("s", Config{OpensAt: 0, ActiveLimit: 10, AdmitPerS: 4000, AccessTTL: 1000})
	r.lineWaiting = 1_000_000
	requireEqual(t, r.pollSpan(4000), 4000.0)
	requireEqual(t, r.pollSpan(1e9), float64(PollBudgetDefault/2), "the pace counts up to half the budget")
}

// TestRoomPreQueuePollSpread checks that the pre-queue's first polls after
// the opening come at about the target load, not all in the first second.
func TestRoomPreQueuePollSpread(t *testing.T) {
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 60_000
	h := newRoomHarness(t, cfg)
	const n = 100_000
	for i := range n {
		h.join(fmt.Sprintf("b%d", i), roomT0, roomPlenty)
	}
	now := cfg.OpensAt - 1000
	perSecond := map[int64]int{}
	for i := range uint32(n) {
		v := h.r.TicketView(h.r.tickets.at(i), now, roomPlenty)
		perSecond[v.PollAfterS]++
	}
	busiest := 0
	for _, c := range perSecond {
		busiest = max(busiest, c)
	}
	t.Logf("%d pre-queue polls spread over %d seconds, at most %d in one", n, len(perSecond), busiest)
	requireTrue(t, busiest <= 2*PollBudgetDefault, "%d polls in one second", busiest)
	requireTrue(t, len(perSecond) >= n/PollBudgetDefault, "spread over %d seconds", len(perSecond))
}

func TestRoomJoinErrors(t *testing.T) {
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 1000
	h := newRoomHarness(t, cfg)
	long := string(bytes.Repeat([]byte("x"), roomIDBytesMax+1))
	for _, c := range []struct {
		buyer, qid string
		err        error
	}{{"", "q_1", ErrBadID}, {"b", "", ErrBadID}, {long, "q_1", ErrBadID}, {"b", long, ErrBadID}} {
		_, evs, err := h.r.Join(c.buyer, c.qid, roomT0, roomPlenty)
		requireErrorIs(t, err, c.err)
		requireEqual(t, len(evs), 0)
	}
	h.join("b0", roomT0, roomPlenty)
	_, _, err := h.r.Join("b1", "q_000001", roomT0, roomPlenty)
	requireErrorIs(t, err, ErrQueueIDTaken)

	h.r.preQueueMax = 2
	h.join("b1", roomT0, roomPlenty)
	before := h.r.AppendSnapshot(nil)
	_, evs, err := h.r.Join("b2", "q_x", roomT0, roomPlenty)
	requireErrorIs(t, err, ErrLineFull)
	requireEqual(t, len(evs), 0)
	requireEqual(t, h.r.AppendSnapshot(nil), before, "a refused join changes nothing")
	// After the opening the pre-queue limit no longer applies; the whole
	// line's does.
	h.r.ticketsMax = 3
	h.join("b2", cfg.OpensAt, roomPlenty)
	_, _, err = h.r.Join("b3", "q_y", cfg.OpensAt, roomPlenty)
	requireErrorIs(t, err, ErrLineFull)
	tk, _, err := h.r.Join("b2", "q_z", cfg.OpensAt, roomPlenty)
	requireNoError(t, err, "a buyer in line gets their place back however full the line")
	requireEqual(t, tk.Buyer, "b2")
}

func TestRoomConfigCheck(t *testing.T) {
	good := testRoomConfig()
	requireNoError(t, good.check())
	for _, mod := range []func(*Config){
		func(c *Config) { c.ActiveLimit = 0 },
		func(c *Config) { c.ActiveLimit = ActiveLimitMax + 1 },
		func(c *Config) { c.AdmitPerS = -1 },
		func(c *Config) { c.AdmitPerS = AdmitPerSMax + 1 },
		func(c *Config) { c.AccessTTL = 0 },
		func(c *Config) { c.AccessTTL = AccessTTLMax + 1 },
	} {
		c := good
		mod(&c)
		requireErrorIs(t, c.check(), ErrConfig)
		_, err := Restore(roomTestSale, c, New(roomTestSale, good).AppendSnapshot(nil))
		requireErrorIs(t, err, ErrConfig)
	}
}

// TestRoomAutomaticIdleShoppers: in automatic mode, buyers admitted long ago
// who still shop (they hold nothing, or hold seats and never come back) stop
// counting against the stock cap after roomAutoFreshMs, so
// the last seats are not kept from the line for a whole access window.
func TestRoomAutomaticIdleShoppers(t *testing.T) {
	cfg := testRoomConfig()
	cfg.AdmitPerS = 0
	cfg.ActiveLimit = 1000
	cfg.AccessTTL = 900_000
	h := newRoomHarness(t, cfg)
	st := Stock{Free: 5, Held: 0, HoldsPerS: 100}
	now := roomT0
	for i := range 40 {
		h.join(fmt.Sprintf("b%d", i), now, st)
	}
	for range 20 {
		now += 100
		h.tick(now, st)
	}
	requireEqual(t, h.r.Admitted(), autoSeekersMax(st), "the cap binds")
	admitted := h.r.AdmittedTotal()
	// Nobody does anything; a minute later the cap still binds.
	now += 60_000
	h.tick(now, st)
	requireEqual(t, h.r.AdmittedTotal(), admitted, "still capped within the window")
	// Past the window the idle shoppers no longer count: the line moves,
	// while active_limit still counts them.
	now += roomAutoFreshMs
	for range 20 {
		now += 100
		h.tick(now, st)
	}
	requireEqual(t, h.r.AdmittedTotal(), admitted+autoSeekersMax(st), "the next ones are let in")
	requireEqual(t, h.r.Admitted(), 2*autoSeekersMax(st), "everyone admitted still shops")
	// A restored room counts the same.
	r2, err := Restore(h.r.sale, cfg, h.r.AppendSnapshot(nil))
	requireNoError(t, err)
	r2.advance(now)
	requireEqual(t, r2.freshCount, h.r.freshCount, "fresh shoppers after a restore")
}

// TestRoomETAWhileTheShopIsFull: with every shopping place taken, the line
// moves only as shoppers leave, at the latest when their access window
// ends. A still shop must not read as a wait of a few seconds: number 3
// behind one place of 120 s windows is told minutes, never less than the
// pace the windows guarantee, and the estimate is the same from the
// published view.
func TestRoomETAWhileTheShopIsFull(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit, cfg.AccessTTL = 1, 120_000
	h := newRoomHarness(t, cfg)
	var tks []*Ticket
	for i := range 4 {
		tks = append(tks, h.join(fmt.Sprintf("b%d", i), roomT0+int64(i), roomPlenty))
	}
	requireEqual(t, len(h.admitted), 1)
	now := roomT0
	for now < roomT0+15_000 {
		now += 1000
		h.tick(now, roomPlenty)
	}
	requireEqual(t, len(h.admitted), 1, "nobody leaves the shop, nobody is admitted")
	third := tks[3]
	requireEqual(t, h.r.Position(third), int64(3))
	v := h.r.TicketView(third, now, roomPlenty)
	// The windows guarantee one admission per 120 s here; the measured
	// rate, decaying since the one admission, may promise a little more.
	requireTrue(t, v.ETAS >= 120, "number 3 behind a full shop of one place is told %d s", v.ETAS)
	requireTrue(t, v.ETAS <= 3*120, "eta_s %d s is beyond what the access windows allow", v.ETAS)
	pv, ok := h.r.Publish(now, roomPlenty).TicketView(third, now)
	requireTrue(t, ok, "the view shows the ticket")
	requireEqual(t, pv.ETAS, v.ETAS, "the published view's estimate")
}
