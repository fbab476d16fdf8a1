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
	// cancelWaitersMax bounds the cancels of one order that wait for the
	// running one: operators, not crowds, cancel orders.
	cancelWaitersMax = 64
)

// zoneActor is the thin shell around a seats.Zone: it routes messages, asks
// the core to decide, hands the record to the log, applies it once the log
// has taken it and finishes calls once they are durable. Every rule is the
// core's. It is the only goroutine that touches z.
type zoneActor struct {
	s  *Sale
	zh *zoneHandle
	z  *seats.Zone // owned by this actor
	// terms are what the core's hold decisions need from the sale.
	terms seats.Terms

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
	// cancelling marks the orders whose cancel runs in this process (its
	// caller refunds and records): order id -> the cancels that wait for
	// its answer. Memory only: after a restart the settler runs them.
	cancelling map[string][]*call
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
	case *cancelBeginCmd:
		a.cancelBegin(m)
	case *cancelDropCmd:
		a.cancelDrop(m)
	case *paymentEndCmd:
		a.paymentEnd(m)
	case *getOrderCmd:
		a.getOrder(m)
	case *seatsCmd:
		// A copy of a byte per seat: rendering a 1,000,000-seat map is
		// left to the caller, so holds in this zone do not wait for it.
		// The counts, version and stamp are read at the same moment, so
		// that the reader's answer agrees with itself.
		c := seatsCopy{states: a.z.AppendSeatStates(nil, m.from, m.to), version: a.zh.version.Load(),
			stamp: a.zh.rowsStamp(m.firstRow, m.lastRow)}
		c.free, c.held, c.sold = a.z.Counts()
		m.reply <- c
	case tickMsg:
		a.expire()
	case followMsg:
		a.follow(m)
	case *snapCmd:
		a.snapshot(m)
	}
}

// publish copies the zone's counts to the atomics that readers use, and
// moves the zone's version on: whatever a reader made of the seats before
// is stale from here.
func (a *zoneActor) publish() {
	a.zh.setCounts(a.z.Counts())
	a.zh.version.Add(1)
}

// apply mutates the core with a record the core has just decided. A refusal
// here means the core's decision and its Apply disagree: a broken invariant.
func (a *zoneActor) apply(ev *wal.Event) {
	if err := a.z.Apply(ev); err != nil {
		panic(fmt.Sprintf("zone %s/%s: validated %s event refused by the core: %v", a.s.def.ID, a.zh.def.ID, ev.Type, err))
	}
	a.stampRows(ev)
	a.publish()
}

// stampRows marks the rows whose seats ev changed with the version that
// publish is about to make, before it makes it: a reader that sees the new
// version sees the stamps too.
func (a *zoneActor) stampRows(ev *wal.Event) {
	if len(a.zh.rowStamps) == 0 {
		return
	}
	v := a.zh.version.Load() + 1
	for _, seat := range a.z.AppliedSeats(ev) {
		a.zh.rowStamps[a.z.SeatRow(seat)].Store(v)
	}
}

// commit queues d's record, applies it and settles it; c is finished with r
// once the record is durable and all of that is done. If the log refuses
// the record, nothing is applied or settled and c gets the error.
func (a *zoneActor) commit(d *seats.Decision, c *call, r Result) bool {
	ev := &d.Event
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
	a.settle(d)
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
		// A failed write or fsync may or may not have reached the disk: the
		// outcome is unknown (not notDone), so a checkout does not refund
		// an order that a restart may find.
		p.res = Result{Err: errorf(CodeUnavailable, "the change may not be durable (%v); retry later", err)}
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

// refuse answers c with a refusal that follows from what the zone holds.
// When c carries an idempotency key and the refusal is one that is stored,
// it is made durable first, so a retry after a crash gets the same answer;
// its record comes after every record the refusal was read from. Without
// one, the answer waits until those records are durable: seats_taken read
// from a hold whose record is still in flight would be a lie if the record
// were lost (a crash, or a cluster leader deposed before it committed).
func (a *zoneActor) refuse(c *call, e *Error) {
	r := Result{Err: e}
	if c.key.key == "" || !storable(r) {
		a.s.answerDurable(&a.log, c, r)
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

func newZoneActor(s *Sale, zh *zoneHandle) *zoneActor {
	return &zoneActor{
		s: s, zh: zh, z: zh.core, idemFails: zh.idemFails, log: ownerLog{log: s.e.log, followed: s.e.followedFrom(zh.snapSeq)},
		cancelling: make(map[string][]*call),
		terms: seats.Terms{
			HoldTTLMs:   s.holdTTLMs,
			MaxPerBuyer: s.def.MaxPerBuyer,
			Allowance:   s.ledger,
			OtherZones:  func() []ZoneFree { return s.otherZonesFree(zh.idx) },
			NewHoldID:   func() string { return newID('h', s.idx, zh.idx) },
		},
	}
}

func (a *zoneActor) hold(m *holdCmd) {
	r := seats.HoldRequest{Buyer: m.buyer, Quantity: m.quantity, Seats: m.seats, AcceptAlternative: m.acceptAlt,
		IdemKey: m.c.key.key, IdemHash: m.c.hash, Paused: a.s.Paused()}
	a.carryHold(m.c, a.z.DecideHold(r, &a.terms, a.s.e.nowMs()))
}

func (a *zoneActor) release(m *releaseCmd) {
	now := a.s.e.nowMs()
	r := seats.Access{HoldID: m.holdID, Buyer: m.buyer, Admin: m.admin}
	a.expireIfDue(r, now)
	a.carryHold(m.c, a.z.DecideRelease(r, now))
}

func (a *zoneActor) getHold(m *getHoldCmd) {
	r := seats.Access{HoldID: m.holdID, Buyer: m.buyer, Admin: m.admin}
	a.expireIfDue(r, a.s.e.nowMs())
	a.carryHold(m.c, a.z.LookupHold(r))
}

func (a *zoneActor) getOrder(m *getOrderCmd) {
	a.carryOrder(m.c, a.z.LookupOrder(m.orderID))
}

// carryHold and carryOrder carry out a decision whose answer is a hold, or
// an order. The answer is built before the commit so that the log callback
// only closes a channel; d.Answer is already what the record makes it.
func (a *zoneActor) carryHold(c *call, d seats.Decision) {
	if d.Refusal != nil {
		a.refusal(c, d.Refusal)
		return
	}
	a.carry(c, &d, Result{Hold: holdView(a.s.def.ID, a.z, &d.Answer)})
}

func (a *zoneActor) carryOrder(c *call, d seats.Decision) {
	if d.Refusal != nil {
		a.refusal(c, d.Refusal)
		return
	}
	a.carry(c, &d, Result{Order: orderView(&a.s.def, a.z, &d.Answer)})
}

// carry answers c with r as d says: once d's record is durable and applied,
// or, with no record, once what r was read from is durable. A record the log
// refuses changes nothing and gives back what the decision reserved.
func (a *zoneActor) carry(c *call, d *seats.Decision, r Result) {
	if !d.Writes() {
		a.s.answerDurable(&a.log, c, r)
		return
	}
	if !a.commit(d, c, r) && d.Reserved > 0 {
		a.s.ledger.Give(d.Answer.Buyer, d.Reserved)
	}
}

// settle does what follows an applied record outside the zone: the seats it
// returned go back to the buyer's allowance, and the sale's counters move.
func (a *zoneActor) settle(d *seats.Decision) {
	if d.Returned > 0 {
		a.s.ledger.Give(d.Answer.Buyer, d.Returned)
	}
	switch d.Event.Type {
	case wal.TypeHoldPlaced:
		a.s.holdsPlaced.Add(1)
		a.s.seatsHeld.Add(int64(len(d.Event.Seats)))
	case wal.TypeHoldExpired:
		a.s.holdsExpired.Add(1)
	}
}

// refusal answers c with a refusal of the core: stored first when the core
// says it is the request's lasting answer.
func (a *zoneActor) refusal(c *call, r *seats.Refusal) {
	if r.Durable {
		a.refuse(c, refusalError(r))
		return
	}
	// Not stored, but it may still be read from the zone's state (a hold
	// expired or bought, the sale paused) that a record in flight made:
	// answered once that is durable, like a read.
	a.s.answerDurable(&a.log, c, Result{Err: refusalError(r)})
}

// refusalError is the engine's error for a refusal of the seat core: the one
// place the two meet.
func refusalError(r *seats.Refusal) *Error {
	return &Error{Code: r.Code, Message: r.Message, Remaining: r.Remaining,
		Alternatives: r.Alternatives, Zones: r.Zones, transient: r.Transient}
}

// expireIfDue expires the hold r names, if r may see it and its time has
// come, before the request is decided: see seats.Zone.DecideExpiry.
func (a *zoneActor) expireIfDue(r seats.Access, now int64) {
	if a.s.e.cfg.Follower {
		return // the leader expires it, and this zone follows
	}
	if h := a.z.Owned(r); h != nil {
		a.expireOne(h.ID, now)
	}
}

// expire releases the holds that are due, then drops the ended holds past
// their retention. Expiry events need no answer; if the log refuses one
// (full), the hold is retried on the next tick.
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
	a.z.DropEnded(now-a.s.e.cfg.HoldRetention.Milliseconds(), holdsDropPerTickMax)
}

func (a *zoneActor) expireOne(id string, now int64) {
	d, ok := a.z.DecideExpiry(id, now)
	if !ok {
		return
	}
	if err := a.log.append(&d.Event, a.s.e.expiryDone); err != nil {
		a.pendingExpiry = append(a.pendingExpiry, id)
		return
	}
	a.apply(&d.Event)
	a.settle(&d)
}
