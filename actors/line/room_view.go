package line

import "math/bits"

// View is the waiting room as it stood after one change, for readers on
// other goroutines: the sale's GET, metrics, the dashboard, the access-token
// check, and a ticket's place in line. The room builds a new one with
// Publish after every change and never changes one it has built, so a
// reader that loaded the pointer (the actor stores it in an atomic.Pointer)
// needs no lock and no message to the room.
//
// A reader holding a copy of a ticket (queue id, number, state, admission
// and access times) computes its position, eta_s and poll_after_s with
// TicketView, or learns that its copy is out of date: a waiting ticket whose
// number no longer waits was admitted or left, and only the room can say
// which.
type View struct {
	Sale string
	At   int64 // unix ms: the time passed to Publish

	// Counters of the line. Ticket numbers 1..Issued are handed out; those
	// below Serving no longer wait, and a waiting ticket's position is one
	// more than the waiting numbers from Serving up to its own (Position).
	Serving       uint64
	Issued        uint64
	Waiting       int64 // tickets waiting, the pre-queue included
	PreWaiting    int64 // tickets waiting in the pre-queue (number 0)
	Admitted      int64 // buyers shopping now: admitted, access valid, not done
	AdmittedTotal int64 // admissions ever

	// Rates, admissions/s. MeasuredRate is the room's EWMA of admissions
	// while a line existed (RateMeasured false: none yet); RateInForce is
	// what the token bucket admits at now (0 while paused, before the draw,
	// sold out); ETARate is what eta_s and poll_after_s assume.
	MeasuredRate float64
	RateMeasured bool
	RateInForce  float64
	ETARate      float64
	// PollSpan sets poll_after_s: positions per poll second (pollAfter).
	PollSpan   float64
	PollBudget float64

	State    string // queue.state: paused, pre_queue, sold_out, queueing, open
	OpensAt  int64  // unix ms
	Drawn    bool   // the opening draw happened
	Paused   bool
	SoldOut  bool // the stock passed to Publish had no seat free or held
	NoneFree bool // the stock passed to Publish had no seat free

	gone    roomGoneView // numbers that no longer wait
	revoked *revokedSet  // queue ids whose admission was given up
}

// Publish builds the View of the room as it is, with the stock and time
// the figures that depend on them are computed for. It costs O(blocks of
// the line) when admissions or departures changed the line since the last
// Publish, O(1) otherwise; the View shares all it can with the previous one.
func (r *Room) Publish(now int64, st Stock) *View {
	return &View{
		Sale: r.sale, At: now,
		Serving: r.head, Issued: uint64(len(r.byNum)),
		Waiting: r.Waiting(), PreWaiting: r.preWaiting,
		Admitted: r.shopping, AdmittedTotal: r.admittedTotal,
		MeasuredRate: r.rate, RateMeasured: r.rateOn,
		RateInForce: r.RateInForce(now, st), ETARate: r.etaRate(now, st),
		PollSpan: r.pollSpan(r.etaRate(now, st)), PollBudget: r.cfg.pollBudget(),
		State: r.State(now, st), OpensAt: r.cfg.OpensAt,
		Drawn: r.drawn, Paused: r.paused, SoldOut: st.soldOut(), NoneFree: st.Free <= 0,
		gone:    r.gone.publish(),
		revoked: r.revoked,
	}
}

// Waits reports whether ticket number num was waiting when the View was
// built. Number 0 (the pre-queue) is never in the line.
func (v *View) Waits(num uint64) bool {
	return num >= v.Serving && num != 0 && num <= v.Issued && !v.gone.has(num)
}

// Position is the place in line of ticket number num, 1 = next, or 0 when
// that number does not wait (Waits). It equals Room.Position of the ticket
// at the time of the View. O(blocks between Serving and num).
func (v *View) Position(num uint64) int64 {
	if !v.Waits(num) {
		return 0
	}
	return int64(num-v.Serving) - v.gone.count(v.Serving, num) + 1
}

// Revoked reports whether the buyer of this queue id gave up an admission
// (left after being admitted): their access token, otherwise valid until it
// expires, is refused.
func (v *View) Revoked(queueID string) bool { return v.revoked.has(queueID) }

// TicketView is what GET queue/{id} shows at now of the ticket t is a copy
// of, as Room.TicketView computes it with the stock the View was built with.
// ok is false when the copy is out of date for this View: it says waiting
// with a number that no longer waits, or in the pre-queue after the draw; ask
// the room then. A pre-queue ticket that left, and a completed checkout, are
// known only to whoever holds the copy: they asked the room for it.
func (v *View) TicketView(t *Ticket, now int64) (tv TicketView, ok bool) {
	c := *t
	switch {
	case c.State == TicketWaiting && c.Num == 0 && v.Drawn:
		return TicketView{}, false
	case c.State == TicketWaiting && c.Num != 0 && !v.Waits(c.Num):
		return TicketView{}, false
	case c.State == TicketAdmitted && v.Revoked(c.QueueID):
		c.State = TicketExpired
	}
	var pos int64
	if c.State == TicketWaiting && c.Num != 0 {
		pos = v.Position(c.Num)
	}
	return ticketView(&c, now, pos, lineFacts{sale: v.Sale, opensAt: v.OpensAt, preWaiting: v.PreWaiting,
		rate: v.ETARate, span: v.PollSpan, budget: v.PollBudget, soldOut: v.SoldOut, noneFree: v.NoneFree}), true
}

// roomGoneBlockNums is how many ticket numbers share one block of the gone
// bitmap: 4,096 numbers in 512 bytes. A line of roomTicketsMax numbers has
// 489 blocks, so the block list a View holds is about 4 KB, and a reader
// counts across at most that many blocks.
const roomGoneBlockNums = 1 << 12

// roomGone marks the ticket numbers that no longer wait (admitted or left).
// Blocks are copied on write once a View holds them, so a published View
// never changes under its readers. Owned by the Room.
type roomGone struct {
	blocks []*roomGoneBlock
	epoch  uint64 // blocks of an older epoch belong to a published View
	shared bool   // a published View holds the blocks slice's array
}

type roomGoneBlock struct {
	bits  [roomGoneBlockNums / 64]uint64
	n     int64 // bits set
	epoch uint64
}

// roomGoneView is the read-only side of roomGone, held by a View.
type roomGoneView struct {
	blocks []*roomGoneBlock
}

// set marks number num (1-based) as no longer waiting; it must not be set.
func (g *roomGone) set(num uint64) {
	bi := int((num - 1) / roomGoneBlockNums)
	for len(g.blocks) <= bi {
		// Appending never writes where a View reads: a View's slice ends
		// at its length and capacity (publish).
		g.blocks = append(g.blocks, &roomGoneBlock{epoch: g.epoch})
	}
	b := g.blocks[bi]
	if b.epoch != g.epoch {
		if g.shared {
			g.blocks = append(make([]*roomGoneBlock, 0, cap(g.blocks)), g.blocks...)
			g.shared = false
		}
		c := *b
		c.epoch = g.epoch
		b = &c
		g.blocks[bi] = b
	}
	bit := (num - 1) % roomGoneBlockNums
	if b.bits[bit/64]&(1<<(bit%64)) != 0 {
		panic("roomGone.set: number set twice")
	}
	b.bits[bit/64] |= 1 << (bit % 64)
	b.n++
}

// publish hands the marks as they are to a View; the next write copies.
func (g *roomGone) publish() roomGoneView {
	g.epoch++
	g.shared = true
	return roomGoneView{blocks: g.blocks[:len(g.blocks):len(g.blocks)]}
}

func (v roomGoneView) has(num uint64) bool {
	bit := num - 1
	bi := int(bit / roomGoneBlockNums)
	if bi >= len(v.blocks) {
		return false
	}
	bit %= roomGoneBlockNums
	return v.blocks[bi].bits[bit/64]&(1<<(bit%64)) != 0
}

// count is how many numbers in [from, to) are marked; 1 <= from <= to.
func (v roomGoneView) count(from, to uint64) int64 {
	return v.below(to) - v.below(from)
}

// below is how many numbers under num are marked, counting whole blocks by
// their totals.
func (v roomGoneView) below(num uint64) int64 {
	bit := num - 1 // numbers 1..num-1 are bits 0..num-2
	bi := int(bit / roomGoneBlockNums)
	var n int64
	for i := 0; i < min(bi, len(v.blocks)); i++ {
		n += v.blocks[i].n
	}
	if bi >= len(v.blocks) {
		return n
	}
	b, off := v.blocks[bi], bit%roomGoneBlockNums
	for w := range off / 64 {
		n += int64(bits.OnesCount64(b.bits[w]))
	}
	if r := off % 64; r != 0 {
		n += int64(bits.OnesCount64(b.bits[off/64] & (1<<r - 1)))
	}
	return n
}

// revokedSet is the persistent set of queue ids whose admission was given
// up: a chain of maps that are never written once made, newest first. Adding
// makes a one-id map and merges it into the next while it is at least as
// big, so the chain has O(log n) maps and an id is copied O(log n) times; a
// View keeps the chain it was built with.
type revokedSet struct {
	ids  map[string]struct{}
	next *revokedSet
}

func (s *revokedSet) has(id string) bool {
	for ; s != nil; s = s.next {
		if _, ok := s.ids[id]; ok {
			return true
		}
	}
	return false
}

// with returns the set with id added; s is unchanged.
func (s *revokedSet) with(id string) *revokedSet {
	top := &revokedSet{ids: map[string]struct{}{id: {}}, next: s}
	for top.next != nil && len(top.ids) >= len(top.next.ids) {
		m := make(map[string]struct{}, len(top.ids)+len(top.next.ids))
		for k := range top.next.ids {
			m[k] = struct{}{}
		}
		for k := range top.ids {
			m[k] = struct{}{}
		}
		top = &revokedSet{ids: m, next: top.next.next}
	}
	return top
}

// size is how many ids the set holds.
func (s *revokedSet) size() int {
	n := 0
	for ; s != nil; s = s.next {
		n += len(s.ids)
	}
	return n
}

// revokedOf builds the set from the tickets after a restore: those that
// left after being admitted.
func revokedOf(r *Room) *revokedSet {
	m := map[string]struct{}{}
	for i := range uint32(r.tickets.len()) {
		if t := r.tickets.at(i); t.State == TicketExpired && t.AdmittedAt != 0 {
			m[t.QueueID] = struct{}{}
		}
	}
	if len(m) == 0 {
		return nil
	}
	return &revokedSet{ids: m}
}
