package line

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"onsale/wal"
)

// Model-based, replay, snapshot and fuzz tests of the waiting room.

// roomHard is the event-sourced state of a room, everything replay must
// rebuild, read through the public API where there is one.
type roomHard struct {
	Tickets                    []Ticket
	Positions                  []int64
	States                     []TicketState
	Views                      []TicketView
	Waiting, Admitted, Total   int64
	Drawn                      bool
	Order                      []string
	LineWaiting, PreWaiting    int64
	Head                       uint64
	ByNum                      []uint32
	PreQueue                   []uint32
	ByBuyer                    map[string]string
	DrawCount                  uint64
	ShoppingCounted, HeapAlive int
	// What a published View says of each ticket.
	ViewPositions []int64
	Revoked       []bool
}

func roomHardState(r *Room, now int64) roomHard {
	r.expire(now)
	h := roomHard{Waiting: r.Waiting(), Admitted: r.Admitted(), Total: r.AdmittedTotal(),
		LineWaiting: r.lineWaiting, PreWaiting: r.preWaiting, Head: r.head, ByNum: r.byNum,
		PreQueue: r.preQueue, ByBuyer: map[string]string{}, DrawCount: r.drawCount}
	_, h.Order, h.Drawn = r.Draw()
	view := r.Publish(now, roomPlenty)
	for i := range uint32(r.tickets.len()) {
		t := r.tickets.at(i)
		h.Tickets = append(h.Tickets, *t)
		latest, ok := r.byBuyer.get(t.Buyer)
		if !ok {
			panic("buyer not indexed: " + t.Buyer)
		}
		h.ByBuyer[t.Buyer] = r.tickets.at(latest).QueueID
		h.Positions = append(h.Positions, r.Position(t))
		h.States = append(h.States, t.StateAt(now))
		v := r.TicketView(t, now, roomPlenty)
		if v.Position > 0 {
			// eta_s and poll_after_s follow the measured rate: soft state.
			v.ETAS, v.PollAfterS = 0, 0
		}
		h.Views = append(h.Views, v)
		h.ViewPositions = append(h.ViewPositions, view.Position(t.Num))
		h.Revoked = append(h.Revoked, view.Revoked(t.QueueID))
		if t.active {
			h.ShoppingCounted++
		}
	}
	for _, i := range r.access.idx {
		if t := r.tickets.at(i); t.active {
			h.HeapAlive++
		}
	}
	return h
}

func TestRoomIndex(t *testing.T) {
	rng := testRand(t)
	var ts roomTickets
	ids, buyers := newRoomIndex(&ts, false), newRoomIndex(&ts, true)
	wantID, wantBuyer := map[string]uint32{}, map[string]uint32{}
	for i := range uint32(20_000) {
		tk := Ticket{QueueID: fmt.Sprintf("q_%d", i), Buyer: fmt.Sprintf("b%d", rng.IntN(3000))}
		ts.add(tk)
		ids.put(tk.QueueID, i)
		buyers.put(tk.Buyer, i)
		wantID[tk.QueueID], wantBuyer[tk.Buyer] = i, i
	}
	for k, v := range wantID {
		got, ok := ids.get(k)
		requireTrue(t, ok && got == v, k)
		got, ok = ids.getBytes([]byte(k))
		requireTrue(t, ok && got == v, k)
	}
	for k, v := range wantBuyer {
		got, ok := buyers.get(k)
		requireTrue(t, ok && got == v, k)
	}
	requireEqual(t, buyers.n, len(wantBuyer))
	for _, k := range []string{"", "q_", "q_20000", "b3000", "nobody"} {
		_, ok := ids.get(k)
		requireFalse(t, ok, k)
		_, ok = ids.getBytes([]byte(k))
		requireFalse(t, ok, k)
		_, ok = buyers.get(k)
		requireFalse(t, ok, k)
	}
	requireTrue(t, 2*ids.n <= len(ids.slots), "load %d/%d", ids.n, len(ids.slots))
}

// roomModel is the reference: the same rules with slices and maps, no
// Fenwick tree, no heap, no bucket.
type roomModel struct {
	cfg       Config
	drawn     bool
	paused    bool
	clock     int64
	pre, line []string // waiting, in join order and in line order
	tickets   map[string]*roomModelTicket
	latest    map[string]string // buyer -> their latest queue id
}

type roomModelTicket struct {
	buyer    string
	state    TicketState
	admitted int64
	expires  int64
	done     bool
}

func (m *roomModel) stateAt(q string, now int64) TicketState {
	t := m.tickets[q]
	if t.state == TicketAdmitted && now >= t.expires {
		return TicketExpired
	}
	return t.state
}

func (m *roomModel) shopping(now int64) int64 {
	var n int64
	for q, t := range m.tickets {
		if m.stateAt(q, now) == TicketAdmitted && !t.done {
			n++
		}
	}
	return n
}

func (m *roomModel) slots(now int64, st Stock) int64 {
	if m.paused || !m.drawn || st.soldOut() {
		return 0
	}
	n := int64(m.cfg.ActiveLimit) - m.shopping(now)
	if m.cfg.AdmitPerS == 0 {
		// As many as the free seats serve at two seats a buyer, counting
		// only those admitted in the last two minutes.
		var fresh int64
		for q, t := range m.tickets {
			if m.stateAt(q, now) == TicketAdmitted && !t.done && t.admitted > now-120_000 {
				fresh++
			}
		}
		n = min(n, (max(st.Free, 0)+1)/2-fresh) // ceil(free / 2 seats a buyer)
	}
	return max(n, 0)
}

func (m *roomModel) drawIfDue(now int64) bool {
	if m.drawn || now < m.cfg.OpensAt {
		return false
	}
	m.line = append(DrawOrder(m.cfg.Seed, m.pre), m.line...)
	m.pre, m.drawn = nil, true
	return true
}

func (m *roomModel) admit(t testing.TB, ids []string, now int64) {
	t.Helper()
	if len(ids) == 0 {
		return
	}
	requireTrue(t, len(ids) <= len(m.line), "admitted %d of %d waiting", len(ids), len(m.line))
	requireEqual(t, ids, m.line[:len(ids)], "admissions are the front of the line")
	for _, q := range ids {
		m.tickets[q].state = TicketAdmitted
		m.tickets[q].admitted = now
		m.tickets[q].expires = now + m.cfg.AccessTTL
	}
	m.line = m.line[len(ids):]
}

func (m *roomModel) remove(q string) {
	for _, l := range []*[]string{&m.pre, &m.line} {
		for i, x := range *l {
			if x == q {
				*l = append((*l)[:i:i], (*l)[i+1:]...)
				return
			}
		}
	}
}

func TestRoomModel(t *testing.T) {
	seed := testSeed(t)
	for round := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, round))
		roomModelRound(t, rng, round)
	}
}

func roomModelRound(t *testing.T, rng *rand.Rand, round uint64) {
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + rng.Int64N(20_000)
	cfg.ActiveLimit = 1 + rng.IntN(6)
	cfg.AdmitPerS = []int{0, 1, 5, 50}[rng.IntN(4)]
	cfg.AccessTTL = 1000 + rng.Int64N(20_000)
	cfg.Seed[0] = byte(round)
	h := newRoomHarness(t, cfg)
	m := &roomModel{cfg: cfg, tickets: map[string]*roomModelTicket{}, latest: map[string]string{}}
	now := roomT0
	stock := roomPlenty
	var all []string
	revoked := map[string]bool{}
	copies := map[string]Ticket{} // each ticket as the previous op left it
	var prev *View                // the previous op's View, and what it said
	var prevPositions map[uint64]int64
	for op := range 600 {
		ctx := fmt.Sprintf("round %d op %d", round, op)
		kind := rng.IntN(10)
		const pause = 6
		if kind != pause { // a pause takes no time and does not move the room's clock
			now += rng.Int64N(700)
			if rng.IntN(50) == 0 {
				now -= rng.Int64N(2000) // the clock steps back: the room holds its own
			}
		}
		switch rng.IntN(20) {
		case 0:
			stock = Stock{}
		case 1:
			stock = Stock{Free: rng.Int64N(4), Held: rng.Int64N(3)}
		case 2, 3:
			stock = roomPlenty
		}
		at := max(m.clock, now)
		m.clock = at
		pick := func() string {
			if len(all) == 0 {
				return "q_none"
			}
			return all[rng.IntN(len(all))]
		}
		switch {
		case kind < 4:
			buyer := fmt.Sprintf("b%d", rng.IntN(30))
			drew := m.drawIfDue(at)
			live := ""
			if q, ok := m.latest[buyer]; ok && m.stateAt(q, at) != TicketExpired {
				live = q
			}
			alone := len(m.line) == 0
			slots := m.slots(at, stock)
			tk := h.join(buyer, now, stock)
			evs := h.last
			want := []wal.Type{}
			if drew {
				want = append(want, wal.TypeQueueDrawn)
			}
			if live != "" {
				requireEqual(t, tk.QueueID, live, ctx)
				requireEqual(t, roomEventTypes(evs), want, ctx)
				break
			}
			want = append(want, wal.TypeQueueJoined)
			m.tickets[tk.QueueID] = &roomModelTicket{buyer: buyer, state: TicketWaiting}
			m.latest[buyer] = tk.QueueID
			all = append(all, tk.QueueID)
			if !m.drawn {
				m.pre = append(m.pre, tk.QueueID)
			} else {
				m.line = append(m.line, tk.QueueID)
				if alone && slots > 0 {
					want = append(want, wal.TypeQueueAdmitted)
					m.admit(t, []string{tk.QueueID}, at)
				}
			}
			requireEqual(t, roomEventTypes(evs), want, ctx)
		case kind == 4: // leave
			q := pick()
			gone := q == "q_none" || m.stateAt(q, at) == TicketExpired
			evs := h.leave(q, now)
			requireEqual(t, len(evs), map[bool]int{true: 0, false: 1}[gone], ctx)
			if !gone {
				if m.stateAt(q, at) == TicketAdmitted {
					revoked[q] = true
				}
				m.remove(q)
				m.tickets[q].state = TicketExpired
			}
		case kind == 5: // complete
			q := pick()
			ok := q != "q_none" && m.stateAt(q, at) == TicketAdmitted && !m.tickets[q].done
			evs := h.complete(q, now)
			requireEqual(t, len(evs), map[bool]int{true: 1, false: 0}[ok], ctx)
			if ok {
				m.tickets[q].done = true
			}
		case kind == pause:
			m.paused = !m.paused
			h.r.SetPaused(m.paused)
		default: // tick
			drew := m.drawIfDue(at)
			slots := m.slots(at, stock)
			evs := h.tick(now, stock)
			if drew {
				requireTrue(t, len(evs) > 0 && evs[0].Type == wal.TypeQueueDrawn, ctx)
				evs = evs[1:]
			}
			ids := roomAdmittedIDs(t, evs)
			requireTrue(t, int64(len(ids)) <= slots, "%s: %d admitted, %d slots", ctx, len(ids), slots)
			m.admit(t, ids, at)
		}

		// Compare every ticket.
		requireEqual(t, h.r.Waiting(), int64(len(m.pre)+len(m.line)), ctx)
		for i, q := range m.line {
			requireEqual(t, h.r.Position(h.r.Ticket(q)), int64(i+1), ctx)
		}
		for _, q := range m.pre {
			requireEqual(t, h.r.Ticket(q).Num, uint64(0), ctx)
		}
		for q, mt := range m.tickets {
			tk := h.r.Ticket(q)
			requireEqual(t, tk.StateAt(at), m.stateAt(q, at), "%s %s", ctx, q)
			requireEqual(t, tk.Done, mt.done, "%s %s", ctx, q)
		}
		h.r.expire(at)
		requireEqual(t, h.r.Admitted(), m.shopping(at), ctx)
		requireEqual(t, h.r.State(at, stock) == "pre_queue", !m.drawn && !m.paused, ctx)

		// A View published before this op says what it said then.
		for num, pos := range prevPositions {
			requireEqual(t, prev.Position(num), pos, "%s: earlier View, number %d", ctx, num)
		}
		// The View published now agrees with the room and the model.
		v := h.r.Publish(at, stock)
		requireEqual(t, v.Waiting, h.r.Waiting(), ctx)
		requireEqual(t, v.Admitted, h.r.Admitted(), ctx)
		requireEqual(t, v.State, h.r.State(at, stock), ctx)
		requireEqual(t, v.Paused, m.paused, ctx)
		prev, prevPositions = v, map[uint64]int64{}
		for i, q := range m.line {
			num := h.r.Ticket(q).Num
			requireEqual(t, v.Position(num), int64(i+1), "%s: View position of %s", ctx, q)
			prevPositions[num] = int64(i + 1)
		}
		for q := range m.tickets {
			tk := h.r.Ticket(q)
			requireEqual(t, v.Revoked(q), revoked[q], "%s: revoked %s", ctx, q)
			if tk.Num != 0 && tk.State != TicketWaiting {
				requireEqual(t, v.Position(tk.Num), int64(0), "%s: %s no longer waits", ctx, q)
			}
			want := h.r.TicketView(tk, at, stock)
			got, ok := v.TicketView(tk, at)
			requireTrue(t, ok, "%s: View of the current %s", ctx, q)
			requireEqual(t, got, want, "%s: View of the current %s", ctx, q)
			// A copy from before this op: the View answers as the room
			// does, or says the copy is out of date. A pre-queue ticket
			// that left is known only to who made it leave.
			if old, ok := copies[q]; ok {
				got, ok := v.TicketView(&old, at)
				leftPre := old.State == TicketWaiting && old.Num == 0 && tk.State == TicketExpired && tk.Num == 0
				if ok && !leftPre {
					requireEqual(t, got, want, "%s: View of the earlier copy of %s", ctx, q)
				}
				if old.State == TicketWaiting && tk.State != TicketWaiting && old.Num != 0 {
					requireFalse(t, ok, "%s: the copy of %s is out of date", ctx, q)
				}
			}
			copies[q] = *tk
		}
	}

	// Replay: the events alone rebuild the same room.
	fresh := New(roomTestSale, cfg)
	for i := range h.evs {
		requireNoError(t, fresh.Apply(&h.evs[i]), "replay event %d", i)
	}
	requireEqual(t, roomHardState(fresh, m.clock), roomHardState(h.r, m.clock), "round %d replay", round)
}

func TestRoomSnapshotRoundTrip(t *testing.T) {
	seed := testSeed(t)
	for round := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, round))
		cfg := testRoomConfig()
		cfg.OpensAt = roomT0 + rng.Int64N(5000)
		cfg.ActiveLimit = 1 + rng.IntN(5)
		cfg.AdmitPerS = []int{0, 3, 20}[rng.IntN(3)]
		cfg.AccessTTL = 500 + rng.Int64N(5000)
		a := newRoomHarness(t, cfg)
		now := roomT0
		ops := func(h *roomHarness, rng *rand.Rand, n int) {
			for range n {
				now += rng.Int64N(300)
				st := roomPlenty
				if rng.IntN(8) == 0 {
					st = Stock{Free: rng.Int64N(3)}
				}
				switch rng.IntN(6) {
				case 0, 1:
					h.join(fmt.Sprintf("b%d", rng.IntN(40)), now, st)
				case 2:
					h.leave(fmt.Sprintf("q_%06d", 1+rng.IntN(h.n+1)), now)
				case 3:
					h.complete(fmt.Sprintf("q_%06d", 1+rng.IntN(h.n+1)), now)
				default:
					h.tick(now, st)
				}
			}
		}
		ops(a, rng, rng.IntN(300))
		if rng.IntN(4) == 0 {
			a.r.SetPaused(true)
		}
		snap := a.r.AppendSnapshot(nil)
		r, err := Restore(roomTestSale, cfg, snap)
		requireNoError(t, err, "round %d", round)
		requireEqual(t, r.AppendSnapshot(nil), snap, "round %d: snapshot of the restored room", round)
		requireEqual(t, roomHardState(r, now), roomHardState(a.r, now), "round %d", round)

		// The same inputs from here on give the same events and answers.
		b := &roomHarness{t: t, r: r, n: a.n}
		r.OnAdmitted(func(tk *Ticket) { b.admitted = append(b.admitted, tk.QueueID) })
		a.evs, a.admitted = nil, nil
		start := now
		seed2 := rng.Uint64()
		ops(a, rand.New(rand.NewPCG(seed2, 1)), 300)
		end := now
		now = start
		ops(b, rand.New(rand.NewPCG(seed2, 1)), 300)
		requireEqual(t, now, end)
		requireEqual(t, b.evs, a.evs, "round %d: events after restore", round)
		requireEqual(t, b.admitted, a.admitted)
		requireEqual(t, b.r.AppendSnapshot(nil), a.r.AppendSnapshot(nil), "round %d", round)
		requireEqual(t, b.r.MeasuredRate(), a.r.MeasuredRate())
	}
}

func TestRoomRestoreRejects(t *testing.T) {
	cfg := testRoomConfig()
	cfg.ActiveLimit = 1
	h := newRoomHarness(t, cfg)
	h.join("a", roomT0, roomPlenty)
	h.join("b", roomT0, roomPlenty)
	good := h.r.AppendSnapshot(nil)
	_, err := Restore(roomTestSale, cfg, good)
	requireNoError(t, err)
	_, err = Restore("another-sale", cfg, good)
	requireErrorIs(t, err, ErrSnapshot)
	for i := range good {
		_, err := Restore(roomTestSale, cfg, good[:i])
		requireErrorIs(t, err, ErrSnapshot, "cut at %d", i)
	}
	_, err = Restore(roomTestSale, cfg, append(good[:len(good):len(good)], 0))
	requireErrorIs(t, err, ErrSnapshot, "trailing byte")
	bad := bytes.Clone(good)
	bad[0] = 2
	_, err = Restore(roomTestSale, cfg, bad)
	requireErrorIs(t, err, ErrSnapshot, "version")
}

// roomFuzzSeeds returns snapshots of rooms in various states.
func roomFuzzSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 500
	cfg.ActiveLimit = 2
	h := newRoomHarness(tb, cfg)
	out = append(out, h.r.AppendSnapshot(nil))
	now := roomT0
	for i := range 12 {
		h.join(fmt.Sprintf("b%d", i%9), now, roomPlenty)
		h.tick(now, roomPlenty)
		if i%4 == 3 {
			h.leave(fmt.Sprintf("q_%06d", i), now)
			h.complete(fmt.Sprintf("q_%06d", i-2), now)
		}
		now += 150
		out = append(out, h.r.AppendSnapshot(nil))
	}
	return out
}

func FuzzRestore(f *testing.F) {
	for _, s := range roomFuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	cfg := testRoomConfig()
	cfg.OpensAt = roomT0 + 500
	cfg.ActiveLimit = 2
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Restore(roomTestSale, cfg, data)
		if err != nil {
			requireErrorIs(t, err, ErrSnapshot)
			return
		}
		snap := r.AppendSnapshot(nil)
		r2, err := Restore(roomTestSale, cfg, snap)
		requireNoError(t, err, "a restored room's snapshot restores")
		requireEqual(t, r2.AppendSnapshot(nil), snap)
		// A restored room works: none of this may panic.
		now := max(r.clock, roomT0)
		for i := range uint32(r.tickets.len()) {
			tk := r.tickets.at(i)
			r.TicketView(tk, now, roomPlenty)
			r.Position(tk)
		}
		r.Draw()
		_, _, _ = r.Join("fuzz-buyer", "q_fuzz", now, roomPlenty)
		r.Tick(now+1000, roomPlenty)
		if r.tickets.len() > 0 {
			q := r.tickets.at(0).QueueID
			r.Complete(q, now+1000)
			r.Leave(q, now+1000)
		}
	})
}

func FuzzRoomQueueIDs(f *testing.F) {
	f.Add(AppendQueueIDs(nil, []string{"q_a", "q_b"}))
	f.Add([]byte{0})
	f.Add([]byte{1, 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := QueueIDs(data)
		if err != nil {
			return
		}
		again, err := QueueIDs(AppendQueueIDs(nil, ids))
		requireNoError(t, err)
		requireTrue(t, reflect.DeepEqual(again, ids) || (len(again) == 0 && len(ids) == 0))
	})
}
