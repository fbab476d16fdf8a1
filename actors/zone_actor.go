package actors

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"onsale/actors/seats"
	"onsale/wal"
)

// Limits of the zone actor.
const (
	// expiriesPerTickMax bounds the work of one tick, so that a mass expiry
	// (a crowd that held at opening and walked away) never stalls holds for
	// long; the rest go on the next tick.
	expiriesPerTickMax = 4096
	// checkoutStaleMs is how long a checkout may be in progress before another
	// may start: a gateway call is bounded well below it, so an older mark is
	// left over from a request that timed out at the edge.
	checkoutStaleMs = 60_000
	// alternativesMax is how many alternatives a seats_taken answer offers.
	alternativesMax = 3
)

// zoneActor is the thin shell around a Zone: it routes messages, asks the
// core, hands events to the log and finishes calls once they are durable. It
// is the only goroutine that touches z.
type zoneActor struct {
	s  *Sale
	zh *zoneHandle
	z  *seats.Zone // owned by this actor

	// checkouts marks holds whose payment is in progress: hold id -> start (ms).
	checkouts map[string]int64
	// pendingExpiry holds ids taken from the expiry heap whose expiry event
	// could not be queued yet; retried on the next tick.
	pendingExpiry []string
	// log counts this zone's records, for answers that must wait for them.
	log ownerLog
	// ops counts the requests handled, in mailbox order.
	ops uint64
	// idemFails are the stored refusals of idempotent requests made in this
	// zone; successes are derived from the holds. Kept for snapshots.
	idemFails map[idemKey]idemFail
}

// idemFail is a stored refusal: what it answered and to which request.
type idemFail struct {
	Buyer string    `json:"b"`
	Scope idemScope `json:"s"`
	Key   string    `json:"k"`
	Hash  uint64    `json:"h"`
	At    int64     `json:"t"`
	Err   *Error    `json:"e"`
}

func (a *zoneActor) Receive(ctx actor.Context) {
	a.ops++
	msg := ctx.Message()
	if r, ok := msg.(request); ok {
		r.call().zseq = a.ops
	}
	switch m := msg.(type) {
	case *holdCmd:
		a.hold(m)
	case *releaseCmd:
		a.release(m)
	case *getHoldCmd:
		a.getHold(m)
	case *checkoutBeginCmd:
		a.checkoutBegin(m)
	case *checkoutEndCmd:
		a.checkoutEnd(m)
	case *cancelCmd:
		a.cancel(m)
	case *getOrderCmd:
		a.getOrder(m)
	case *seatsCmd:
		// A copy of a byte per seat: rendering a 1,000,000-seat map is
		// left to the caller, so holds in this zone do not wait for it.
		m.reply <- a.z.AppendSeatStates(nil)
	case tickMsg:
		a.expire()
	case *snapCmd:
		a.snapshot(m)
	}
}

// publish copies the zone's counts to the atomics that readers use.
func (a *zoneActor) publish() {
	a.zh.setCounts(a.z.Counts())
}

// apply mutates the core with an event that the actor has just validated. A
// refusal here means the actor and the core disagree: a broken invariant.
func (a *zoneActor) apply(ev *wal.Event) {
	if err := a.z.Apply(ev); err != nil {
		panic(fmt.Sprintf("zone %s/%s: validated %s event refused by the core: %v", a.s.def.ID, a.zh.def.ID, ev.Type, err))
	}
	a.publish()
}

// commit queues ev, applies it and runs then (if not nil); c is finished
// with r once ev is durable and all of that is done. If the log refuses the
// event, nothing is applied, then does not run and c gets the error.
func (a *zoneActor) commit(ev *wal.Event, c *call, r Result, then func()) bool {
	p := &zoneCommit{a: a, c: c, r: r, typ: ev.Type}
	p.left.Store(2)
	// The hot path of every hold: one allocation for the commit and one for
	// its callback, counted in the zone's ownerLog by hand.
	if err := a.log.log.Append(ev, p.durable); err != nil {
		a.s.finish(c, Result{Err: unavailable(err)})
		return false
	}
	a.log.appended++
	a.apply(ev)
	if then != nil {
		then()
	}
	p.arrive()
	return true
}

// zoneCommit answers one zone write once its event is durable and the actor
// has applied it, whichever comes last (see commitJoin).
type zoneCommit struct {
	a    *zoneActor
	c    *call
	r    Result // the answer once durable
	typ  wal.Type
	res  Result       // set by durable before it arrives
	left atomic.Int32 // arrivals still to come: durable and applied
}

// durable is the log writer's callback.
func (p *zoneCommit) durable(_ uint64, err error) {
	p.a.log.resolved.Add(1)
	p.res = p.r
	if err != nil {
		// Applied in memory, never durable: memory and log disagree from
		// here on, so the engine stops.
		s := p.a.s
		s.e.fatal(fmt.Errorf("zone %s/%s: write %s: %w", s.def.ID, p.a.zh.def.ID, p.typ, err))
		p.res = Result{Err: unavailable(err)}
	}
	p.arrive()
}

func (p *zoneCommit) arrive() {
	if p.left.Add(-1) == 0 {
		p.a.s.finish(p.c, p.res)
	}
}

// A commitJoin answers a write once its event is durable and its actor has
// applied it, whichever comes last. The log writer may call back before the
// actor has applied the event, and a caller that has its answer must find the
// change made everywhere it reads: the counts, the ledger, the pause flag.
type commitJoin struct {
	finish func(Result)
	res    Result       // set by durable before it arrives
	left   atomic.Int32 // arrivals still to come: durable and applied
}

func newCommitJoin(finish func(Result)) *commitJoin {
	j := &commitJoin{finish: finish}
	j.left.Store(2)
	return j
}

// durable is called by the log callback with the answer to send.
func (j *commitJoin) durable(r Result) {
	j.res = r
	j.arrive()
}

// applied is called by the actor once the change is in memory.
func (j *commitJoin) applied() { j.arrive() }

func (j *commitJoin) arrive() {
	if j.left.Add(-1) == 0 {
		j.finish(j.res)
	}
}

// refuse answers c with a refusal. When c carries an idempotency key and the
// refusal is one that is stored, it is made durable first, so a retry after a
// crash gets the same answer.
func (a *zoneActor) refuse(c *call, e *Error) {
	r := Result{Err: e}
	if c.key.key == "" || !storable(r) {
		a.s.finish(c, r)
		return
	}
	f := idemFail{Buyer: c.key.buyer, Scope: c.key.scope, Key: c.key.key, Hash: c.hash, At: c.at, Err: e}
	blob, err := json.Marshal(f)
	if err != nil {
		panic("marshal stored answer: " + err.Error())
	}
	ev := &wal.Event{Type: wal.TypeIdemResult, Sale: a.s.def.ID, Zone: a.zh.def.ID, Buyer: f.Buyer,
		IdemKey: f.Key, IdemHash: f.Hash, Num: uint64(f.Scope), At: f.At, Blob: blob}
	s := a.s
	if err := a.log.append(ev, func(_ uint64, err error) {
		if err != nil {
			s.e.fatal(fmt.Errorf("zone %s/%s: write a stored answer: %w", s.def.ID, a.zh.def.ID, err))
			s.finish(c, Result{Err: unavailable(err)})
			return
		}
		s.finish(c, r)
	}); err != nil {
		s.finish(c, Result{Err: unavailable(err)})
		return
	}
	a.idemFails[c.key] = f
}

func (a *zoneActor) hold(m *holdCmd) {
	s, z := a.s, a.z
	if s.paused.Load() {
		s.finish(m.c, Result{Err: errorf(CodeSalePaused, "the sale is paused; holds resume when the organizer resumes it")})
		return
	}
	if z.HoldsFull() {
		// A zone keeps every hold it made, for reads and idempotency; past
		// its bound it takes no more rather than grow without limit.
		s.finish(m.c, Result{Err: errorf(CodeUnavailable, "zone %q has made as many holds as it can keep; no more holds can be placed in it", a.zh.def.ID)})
		return
	}
	var named []uint32
	n := m.quantity
	if len(m.seats) > 0 {
		if !z.Reserved() {
			s.finish(m.c, Result{Err: errorf(CodeBadRequest, "zone %q is general admission: ask for a quantity, not seats", a.zh.def.ID)})
			return
		}
		named = make([]uint32, len(m.seats))
		seen := make(map[uint32]bool, len(m.seats))
		for i, name := range m.seats {
			idx, ok := z.SeatIndex(name)
			if !ok {
				s.finish(m.c, Result{Err: errorf(CodeBadRequest, "zone %q has no seat %q", a.zh.def.ID, name)})
				return
			}
			if seen[idx] {
				s.finish(m.c, Result{Err: errorf(CodeBadRequest, "seat %q is named twice", name)})
				return
			}
			seen[idx] = true
			named[i] = idx
		}
		n = len(named)
	}
	ok, remaining := s.ledger.reserve(m.buyer, n)
	if !ok {
		a.refuse(m.c, &Error{Code: CodeLimitExceeded, Remaining: &remaining,
			Message: fmt.Sprintf("this sale allows %d seats per buyer; you may take %d more", s.def.MaxPerBuyer, remaining)})
		return
	}
	var chosen []uint32
	switch {
	case named != nil && z.AllFree(named):
		chosen = named
	case named != nil && !m.acceptAlt:
		s.ledger.give(m.buyer, n)
		alts := z.Alternatives(n, alternativesMax, named)
		e := &Error{Code: CodeSeatsTaken, Message: "some of those seats are held or sold; see the alternatives", Alternatives: make([][]string, 0, len(alts))}
		for _, alt := range alts {
			e.Alternatives = append(e.Alternatives, seatNames(z, alt))
		}
		a.refuse(m.c, e)
		return
	default:
		var picked []uint32
		ok := false
		if named != nil {
			// accept_alternative: the best alternative is the first set a
			// seats_taken answer to the same request would offer, so it
			// leaves out every named seat, as those sets do.
			if alts := z.Alternatives(n, 1, named); len(alts) > 0 {
				picked, ok = alts[0], true
			}
		} else {
			picked, ok = z.Pick(n)
		}
		if !ok {
			s.ledger.give(m.buyer, n)
			a.refuse(m.c, &Error{Code: CodeSoldOut, Message: fmt.Sprintf("zone %q cannot fill %d seats; see the zones with seats free", a.zh.def.ID, n), Zones: s.otherZonesFree(a.zh.idx)})
			return
		}
		chosen = picked
	}
	now := s.e.nowMs()
	ev := &wal.Event{
		Type: wal.TypeHoldPlaced, Sale: s.def.ID, Zone: a.zh.def.ID,
		Hold: newID('h', s.idx, a.zh.idx), Buyer: m.buyer, Seats: chosen,
		At: now, Expires: now + s.holdTTLMs, Amount: int64(len(chosen)) * a.zh.def.PriceCents,
		IdemKey: m.c.key.key, IdemHash: m.c.hash,
	}
	// The answer is built before the commit so that the log callback only
	// closes a channel; the view does not change when the event is applied.
	h := &seats.Hold{ID: ev.Hold, Buyer: ev.Buyer, Seats: chosen, CreatedAt: now, ExpiresAt: ev.Expires, Amount: ev.Amount, State: seats.HoldActive}
	if !a.commit(ev, m.c, Result{Hold: holdView(s.def.ID, z, h)}, func() { s.holdsPlaced.Add(1) }) {
		s.ledger.give(m.buyer, n)
	}
}

// owned returns the hold if the caller may see it: existence is not revealed
// to anyone else.
func (a *zoneActor) owned(holdID, buyer string, admin bool) *seats.Hold {
	h := a.z.Hold(holdID)
	if h == nil || (!admin && h.Buyer != buyer) {
		return nil
	}
	return h
}

func errHoldNotFound() *Error { return errorf(CodeNotFound, "no such hold") }

func (a *zoneActor) release(m *releaseCmd) {
	s := a.s
	h := a.owned(m.holdID, m.buyer, m.admin)
	a.expireIfDue(h)
	switch {
	case h == nil:
		s.finish(m.c, Result{Err: errHoldNotFound()})
	case h.State == seats.HoldReleased:
		s.answerDurable(&a.log, m.c, Result{Hold: holdView(s.def.ID, a.z, h)})
	case h.State != seats.HoldActive:
		s.finish(m.c, Result{Err: errorf(CodeHoldNotActive, "the hold is %s, not active", h.State)})
	default:
		ev := &wal.Event{Type: wal.TypeHoldReleased, Sale: s.def.ID, Zone: a.zh.def.ID, Hold: h.ID, At: s.e.nowMs()}
		v := holdView(s.def.ID, a.z, h)
		v.State = seats.HoldReleased.String()
		a.commit(ev, m.c, Result{Hold: v}, func() {
			s.ledger.give(h.Buyer, len(h.Seats))
			delete(a.checkouts, h.ID)
		})
	}
}

// expireIfDue expires h now if its time has come and no tick has released
// it yet: at expires_at the hold is over (API.md), so reads and releases
// must agree with a checkout at the same instant.
func (a *zoneActor) expireIfDue(h *seats.Hold) {
	if now := a.s.e.nowMs(); h != nil && h.State == seats.HoldActive && now >= h.ExpiresAt {
		a.expireOne(h.ID, now)
	}
}

func (a *zoneActor) getHold(m *getHoldCmd) {
	h := a.owned(m.holdID, m.buyer, m.admin)
	a.expireIfDue(h)
	if h == nil {
		a.s.finish(m.c, Result{Err: errHoldNotFound()})
		return
	}
	a.s.answerDurable(&a.log, m.c, Result{Hold: holdView(a.s.def.ID, a.z, h)})
}

func (a *zoneActor) checkoutBegin(m *checkoutBeginCmd) {
	s := a.s
	h := a.owned(m.holdID, m.buyer, false)
	a.expireIfDue(h)
	now := s.e.nowMs()
	switch {
	case h == nil:
		s.finish(m.c, Result{Err: errHoldNotFound()})
	case h.State == seats.HoldExpired:
		s.finish(m.c, Result{Err: errorf(CodeHoldExpired, "the hold expired at %s; hold the seats again", fmtMs(h.ExpiresAt))})
	case h.State != seats.HoldActive:
		s.finish(m.c, Result{Err: errorf(CodeHoldNotActive, "the hold is %s, not active", h.State)})
	default:
		if t, ok := a.checkouts[h.ID]; ok && now-t < checkoutStaleMs {
			e := errorf(CodeHoldNotActive, "a checkout of this hold is already in progress; retry in a few seconds")
			e.transient = true
			s.finish(m.c, Result{Err: e})
			return
		}
		a.checkouts[h.ID] = now
		// The hold may be one whose own record is not durable yet (a
		// retry racing its first answer): charge only for a durable hold.
		s.answerDurable(&a.log, m.c, Result{Hold: holdView(s.def.ID, a.z, h)})
	}
}

func (a *zoneActor) checkoutEnd(m *checkoutEndCmd) {
	s := a.s
	if m.began {
		delete(a.checkouts, m.holdID)
	}
	if !m.paid {
		a.refuse(m.c, m.fail)
		return
	}
	h := a.z.Hold(m.holdID)
	a.expireIfDue(h)
	now := s.e.nowMs()
	switch {
	case h == nil:
		s.finish(m.c, Result{Err: errHoldNotFound()})
	case h.State == seats.HoldExpired || (h.State == seats.HoldActive && now >= h.ExpiresAt):
		// The second form: due, but its expiry could not be queued yet.
		a.refuse(m.c, errorf(CodeHoldExpired, "the hold expired at %s during payment; the payment is refunded", fmtMs(h.ExpiresAt)))
	case h.State != seats.HoldActive:
		a.refuse(m.c, errorf(CodeHoldNotActive, "the hold is %s, not active; the payment is refunded", h.State))
	default:
		ev := &wal.Event{Type: wal.TypeOrderPaid, Sale: s.def.ID, Zone: a.zh.def.ID, Hold: h.ID, Order: m.orderID,
			At: now, Amount: h.Amount, IdemKey: m.c.key.key, IdemHash: m.c.hash}
		o := *h
		o.OrderID, o.PaidAt, o.State = m.orderID, now, seats.HoldPurchased
		a.commit(ev, m.c, Result{Order: orderView(s.def.ID, a.z, &o)}, nil)
	}
}

func (a *zoneActor) cancel(m *cancelCmd) {
	s := a.s
	h := a.z.Order(m.orderID)
	switch {
	case h == nil:
		s.finish(m.c, Result{Err: errorf(CodeNotFound, "no such order")})
	case h.OrderCancelled:
		s.answerDurable(&a.log, m.c, Result{Order: orderView(s.def.ID, a.z, h)})
	default:
		now := s.e.nowMs()
		ev := &wal.Event{Type: wal.TypeOrderCancelled, Sale: s.def.ID, Zone: a.zh.def.ID, Hold: h.ID, Order: h.OrderID, At: now}
		v := orderView(s.def.ID, a.z, h)
		v.State, v.CancelledAt = "cancelled", now
		a.commit(ev, m.c, Result{Order: v}, func() { s.ledger.give(h.Buyer, len(h.Seats)) })
	}
}

func (a *zoneActor) getOrder(m *getOrderCmd) {
	h := a.z.Order(m.orderID)
	if h == nil {
		a.s.finish(m.c, Result{Err: errorf(CodeNotFound, "no such order")})
		return
	}
	a.s.answerDurable(&a.log, m.c, Result{Order: orderView(a.s.def.ID, a.z, h)})
}

// expire releases the holds that are due. Expiry events need no answer; if
// the log refuses one (full), the hold is retried on the next tick.
func (a *zoneActor) expire() {
	now := a.s.e.nowMs()
	retry := a.pendingExpiry
	a.pendingExpiry = nil
	for _, id := range retry {
		a.expireOne(id, now)
	}
	for _, id := range a.z.TakeDue(now, expiriesPerTickMax) {
		a.expireOne(id, now)
	}
}

func (a *zoneActor) expireOne(id string, now int64) {
	h := a.z.Hold(id)
	if h == nil || h.State != seats.HoldActive {
		return
	}
	ev := &wal.Event{Type: wal.TypeHoldExpired, Sale: a.s.def.ID, Zone: a.zh.def.ID, Hold: id, At: now}
	if err := a.log.append(ev, a.s.e.expiryDone); err != nil {
		a.pendingExpiry = append(a.pendingExpiry, id)
		return
	}
	a.apply(ev)
	a.s.ledger.give(h.Buyer, len(h.Seats))
	a.s.holdsExpired.Add(1)
	delete(a.checkouts, id)
}
