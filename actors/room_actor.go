package actors

import (
	"errors"
	"fmt"
	"io/fs"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"onsale/actors/line"
	"onsale/wal"
)

// roomHandle is what others know of a sale's waiting room: its PID and the
// View the room publishes after every change, for readers that must not
// wait on it (the sale's GET, metrics, the dashboard, the access-token
// check, the pause check of a hold).
type roomHandle struct {
	s   *Sale
	pid *actor.PID

	// published is the room's latest line.View: immutable, replaced whole.
	// Stored by the room actor only (publish), before it answers anyone
	// from the change the View shows.
	published atomic.Pointer[line.View]
	// board has the latest durable copy of every ticket, hub the event
	// streams; pub makes the room's changes visible in both once durable.
	board *roomBoard
	hub   *roomHub
	pub   roomPublisher

	// Recovery only, then handed to the actor.
	core    *line.Room
	snapSeq uint64
}

func newRoomHandle(s *Sale) *roomHandle {
	rh := &roomHandle{s: s, board: newRoomBoard(), hub: newRoomHub()}
	rh.pub.rh = rh
	rh.core = line.New(s.def.ID, s.roomConfig())
	return rh
}

// roomViewUnstarted is what readers see before the room actor first
// publishes, which it does before the sale is reachable: never in practice.
var roomViewUnstarted = &line.View{State: "open"}

// view is the room's latest published View.
func (rh *roomHandle) view() *line.View {
	if v := rh.published.Load(); v != nil {
		return v
	}
	return roomViewUnstarted
}

func (s *Sale) roomConfig() line.Config {
	c := roomConfigOf(s.def.WaitingRoom, s.opensAt, s.seed)
	c.PollBudget = s.e.cfg.PollBudget
	return c
}

// roomConfigOf is the waiting room's config for a normalized definition.
func roomConfigOf(w WaitingRoomDef, opensAt int64, seed [32]byte) line.Config {
	return line.Config{
		OpensAt: opensAt, ActiveLimit: w.ActiveLimit, AdmitPerS: w.AdmitPerS,
		AccessTTL: int64(w.AccessTTLS) * 1000, Seed: seed,
	}
}

func (rh *roomHandle) load(dir string) error {
	seq, data, err := wal.ReadSnapshot(dir, roomSnapName(rh.s))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("room snapshot: %w", err)
	}
	r, err := line.Restore(rh.s.def.ID, rh.s.roomConfig(), data)
	if err != nil {
		return fmt.Errorf("room snapshot %q: %w", roomSnapName(rh.s), err)
	}
	rh.core, rh.snapSeq = r, seq
	return nil
}

func (rh *roomHandle) replay(seq uint64, ev *wal.Event) error {
	if seq <= rh.snapSeq {
		return nil
	}
	if err := rh.core.Apply(ev); err != nil {
		return fmt.Errorf("room of sale %q: %w", rh.s.def.ID, err)
	}
	return nil
}

// TicketView is what GET queue/{id} shows; the waiting room (package line)
// computes it.
type TicketView = line.TicketView

// QueueTicket is a buyer's place in line as the HTTP edge renders it.
type QueueTicket struct {
	QueueID string     `json:"queue_id"`
	Buyer   string     `json:"buyer"`
	View    TicketView `json:"view"`
}

// Messages to the room actor.
type (
	roomJoinCmd struct {
		c     *call
		buyer string
	}
	roomGetCmd struct {
		c       *call
		queueID string
	}
	roomLeaveCmd struct {
		c       *call
		queueID string
	}
	roomDoneMsg struct {
		queueID string
	}
	roomHeldMsg struct {
		queueID string
	}
	// roomPauseMsg tells the room of a durable pause or resume; c, if set,
	// is finished once the room publishes figures that show it.
	roomPauseMsg struct {
		paused bool
		c      *call
	}
)

// roomActor is the thin shell around a sale's line.Room: it routes
// messages, passes the time and the stock in, gives the room its log, and
// publishes the room's View after every change.
type roomActor struct {
	s  *Sale
	rh *roomHandle
	r  *line.Room // owned by this actor
	// log counts this room's records, for answers that must wait for them.
	log ownerLog

	// written is the log's callback for the room's records: a record that
	// will never be durable stops the engine. Made once, not per record.
	written func(seq uint64, err error)

	// changed are copies of the tickets changed since the last publish;
	// publishedAt is log.appended at the last publish that queued one.
	changed     []*line.Ticket
	publishedAt uint64

	lastHolds   int64 // holds placed at the previous tick, for the hold rate
	lastTickMs  int64
	holdsPerSec float64
}

func newRoomActor(s *Sale, rh *roomHandle) *roomActor {
	a := &roomActor{s: s, rh: rh, r: rh.core, log: ownerLog{log: s.e.log, followed: s.e.followedFrom(rh.snapSeq)}}
	rh.core = nil
	a.written = func(_ uint64, err error) {
		if err != nil {
			s.e.fatal(fmt.Errorf("room of sale %q: write a queue event: %w", s.def.ID, err))
		}
	}
	a.r.SetLog(a.append)
	a.r.SetPaused(s.pausedAtStart)
	// Recovered tickets are durable: they go on the board at once.
	a.r.ForEachTicket(func(t *line.Ticket) { rh.board.put(ticketCopy(t)) })
	a.r.OnChange(func(t *line.Ticket) { a.changed = append(a.changed, ticketCopy(t)) })
	// A first tick before the actor runs: a sale that is open already
	// reads open (and draws) from its first answer, not after 100 ms.
	a.tick()
	return a
}

// stock reads what the zones publish.
func (a *roomActor) stock() line.Stock {
	free, held, _ := a.s.Stock()
	st := line.Stock{Free: free, Held: held, HoldsPerS: a.holdsPerSec}
	if h := a.s.holdsPlaced.Load(); h > 0 {
		st.SeatsPerHold = float64(a.s.seatsHeld.Load()) / float64(h)
	}
	return st
}

// ticketCopy is a ticket as the board keeps it: never changed once stored.
func ticketCopy(t *line.Ticket) *line.Ticket {
	c := *t
	return &c
}

// publish makes the room as it is now visible to readers on other
// goroutines (its View, the tickets changed since the last publish) once
// every record it depends on is durable; then runs then, if set. Call it
// after every change, and answer from a change through then: a buyer told
// they joined finds their ticket, one told they left finds their access
// token refused.
func (a *roomActor) publish(now int64, then func(err error)) {
	v := a.r.Publish(now, a.stock())
	if then == nil && len(a.changed) == 0 && a.log.appended == a.publishedAt && a.rh.pub.replaceLast(v) {
		return // nothing new to wait for: the queued publication carries v
	}
	a.publishedAt = a.log.appended
	gen := a.rh.pub.prepare(v, a.changed)
	a.changed = nil
	a.log.whenDurable(func(err error) {
		if err == nil {
			a.rh.pub.apply(gen)
		}
		if then != nil {
			then(err)
		}
	})
}

// answerPublished finishes c with r once the change r reports is durable
// and published.
func (a *roomActor) answerPublished(now int64, c *call, r Result) {
	a.publish(now, func(err error) {
		if err != nil {
			a.s.finish(c, Result{Err: unavailable(err)})
			return
		}
		a.s.finish(c, r)
	})
}

func (a *roomActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *roomJoinCmd:
		a.join(m)
	case *roomGetCmd:
		a.get(m)
	case *roomLeaveCmd:
		a.leave(m)
	case roomDoneMsg:
		// Complete ignores a ticket that is not shopping (unknown, left,
		// expired, done already). Refused for a full log queue, it is
		// dropped like the message: the slot frees when access expires.
		now := a.s.e.nowMs()
		if _, err := a.r.Complete(m.queueID, now); err != nil {
			a.refusal(err)
		}
		a.publish(now, nil)
	case roomHeldMsg:
		a.r.Held(m.queueID, a.s.e.nowMs())
	case roomPauseMsg:
		a.r.SetPaused(m.paused)
		if m.c != nil {
			a.answerPublished(a.s.e.nowMs(), m.c, Result{})
		} else {
			a.publish(a.s.e.nowMs(), nil)
		}
	case tickMsg:
		a.tick()
	case followMsg:
		if err := a.r.Apply(m.ev); err != nil {
			a.s.e.fatal(fmt.Errorf("room of sale %q: follow record %d: %w", a.s.def.ID, m.seq, err))
		} else {
			a.log.followed = m.seq
			a.publish(a.s.e.nowMs(), nil)
		}
		m.followed()
	case *roomDrawCmd:
		m.reply <- a.draw()
	case *snapCmd:
		sendSnapshot(a.s.e, &a.log, a.s.def.ID, "", roomSnapName(a.s), a.r.AppendSnapshot(nil), m.reply)
	}
}

// append is the room's line.Log: it queues a record the room decided on,
// which the room applies only if this accepts it. Answers wait for the
// records through answerDurable.
func (a *roomActor) append(ev *wal.Event) error { return a.log.append(ev, a.written) }

// refusal is the answer to a decision the log refused (line.ErrLogRefused):
// nothing changed. A full queue is the load of the moment and the caller may
// retry; so is a log that cannot write for now (a full disk, a stuck fsync),
// which takes records again by itself. Any other refusal means the log
// failed for good, and stops the engine.
func (a *roomActor) refusal(err error) *Error {
	switch {
	case errors.Is(err, wal.ErrFull):
		return errSaturated()
	case errors.Is(err, wal.ErrUnavailable):
		return unavailable(err)
	}
	a.s.e.fatal(fmt.Errorf("room of sale %q: log refused a queue event: %w", a.s.def.ID, err))
	return unavailable(err)
}

func (a *roomActor) ticket(t *line.Ticket, now int64) *QueueTicket {
	return &QueueTicket{QueueID: t.QueueID, Buyer: t.Buyer, View: a.r.TicketView(t, now, a.stock())}
}

func (a *roomActor) join(m *roomJoinCmd) {
	now := a.s.e.nowMs()
	t, _, err := a.r.Join(m.buyer, randomID('q'), now, a.stock())
	switch {
	case errors.Is(err, line.ErrLogRefused):
		a.publish(now, nil)
		m.c.finish(Result{Err: a.refusal(err)})
	case err != nil:
		// Read from the line as it is, joins in flight included: answered
		// once they are durable, as a read would be (no publication of its
		// own: a full line refuses many).
		a.publish(now, nil)
		a.s.answerDurable(&a.log, m.c, Result{Err: errorf(CodeLineFull, "%v", err)})
	default:
		a.answerPublished(now, m.c, Result{Ticket: a.ticket(t, now)})
	}
}

func (a *roomActor) get(m *roomGetCmd) {
	t := a.r.Ticket(m.queueID)
	if t == nil {
		m.c.finish(Result{Err: errorf(CodeNotFound, "no such place in line")})
		return
	}
	a.s.answerDurable(&a.log, m.c, Result{Ticket: a.ticket(t, a.s.e.nowMs())})
}

func (a *roomActor) leave(m *roomLeaveCmd) {
	t := a.r.Ticket(m.queueID)
	if t == nil {
		m.c.finish(Result{Err: errorf(CodeNotFound, "no such place in line")})
		return
	}
	now := a.s.e.nowMs()
	// Leaving an admission revokes it (line.View.Revoked).
	if _, err := a.r.Leave(m.queueID, now); err != nil {
		m.c.finish(Result{Err: a.refusal(err)})
		return
	}
	a.answerPublished(now, m.c, Result{Ticket: a.ticket(t, now)})
}

func errSaturated() *Error {
	return errorf(CodeUnavailable, "the server is writing as fast as it can; retry in a second, your place is kept")
}

// holdRateAlpha weights the newest tick in the hold-rate average: about the
// last half second counts, so that the automatic admission rate follows the
// shop within a few ticks.
const holdRateAlpha = 0.2

func (a *roomActor) tick() {
	now := a.s.e.nowMs()
	holds := a.s.holdsPlaced.Load()
	if a.lastTickMs != 0 && now > a.lastTickMs {
		inst := float64(holds-a.lastHolds) * 1000 / float64(now-a.lastTickMs)
		a.holdsPerSec += holdRateAlpha * (inst - a.holdsPerSec)
	}
	a.lastHolds, a.lastTickMs = holds, now
	// A refused admission keeps its credit: the next tick admits. A
	// follower's room only shows what the leader's decides.
	if !a.s.e.cfg.Follower {
		if _, err := a.r.Tick(now, a.stock()); err != nil {
			a.refusal(err)
		}
	}
	a.publish(now, nil)
}

// Join puts a buyer in line (or returns their place) once it is durable.
func (s *Sale) Join(buyer string) Result {
	c := newCall()
	s.e.sys.Root.Send(s.room.pid, &roomJoinCmd{c: c, buyer: buyer})
	return c.wait(s.e.cfg.CallTimeout)
}

// QueueStatus reads a place in line: from the room's published View and
// the board's copy of the ticket, without a message to the room. Only a
// copy that the View finds out of date (a newer change not yet on the board
// together with its View) asks the room.
func (s *Sale) QueueStatus(queueID string) Result {
	v := s.room.view() // before the ticket: a copy newer than the View is fine
	t := s.room.board.get(queueID)
	if t == nil {
		return Result{Err: errorf(CodeNotFound, "no such place in line")}
	}
	if tv, ok := v.TicketView(t, s.e.nowMs()); ok {
		return Result{Ticket: &QueueTicket{QueueID: t.QueueID, Buyer: t.Buyer, View: tv}}
	}
	return s.queueStatusAsk(queueID)
}

// queueStatusAsk reads a place in line from the room itself.
func (s *Sale) queueStatusAsk(queueID string) Result {
	c := newCall()
	s.e.sys.Root.Send(s.room.pid, &roomGetCmd{c: c, queueID: queueID})
	return c.wait(s.e.cfg.CallTimeout)
}

// Leave gives up a place in line or an admission.
func (s *Sale) Leave(queueID string) Result {
	c := newCall()
	s.e.sys.Root.Send(s.room.pid, &roomLeaveCmd{c: c, queueID: queueID})
	return c.wait(s.e.cfg.CallTimeout)
}

// HoldPlaced tells the room that the buyer admitted with this queue id (their
// access token's id) holds seats now: they stop counting among the buyers
// looking for seats (line.Room.Held).
func (s *Sale) HoldPlaced(queueID string) {
	s.e.sys.Root.Send(s.room.pid, roomHeldMsg{queueID: queueID})
}

// CheckoutDone tells the room that the buyer admitted with this queue id
// (their access token's id) completed a checkout, so they no longer count
// against active_limit.
func (s *Sale) CheckoutDone(queueID string) {
	s.e.sys.Root.Send(s.room.pid, roomDoneMsg{queueID: queueID})
}

// QueueSummary is the line as the sale's GET shows it.
type QueueSummary struct {
	State         string  `json:"state"`
	Waiting       int64   `json:"waiting"`
	Admitted      int64   `json:"admitted"`
	AdmittedTotal int64   `json:"admitted_total"`
	AdmitPerS     float64 `json:"admit_per_s"`
}

// Queue returns the line's published figures. While paused, the state is
// "paused" and the rate in force 0.
func (s *Sale) Queue() QueueSummary {
	v := s.room.view()
	return QueueSummary{State: v.State, Waiting: v.Waiting, Admitted: v.Admitted,
		AdmittedTotal: v.AdmittedTotal, AdmitPerS: v.RateInForce}
}

// Revoked reports whether the buyer of this queue id gave up their admission,
// so that their access token no longer works.
func (s *Sale) Revoked(queueID string) bool { return s.room.view().Revoked(queueID) }

// DrawInfo is the opening lottery as GET /draw shows it: the seed's hash
// before the opening, the seed and the drawn order after.
type DrawInfo struct {
	SeedSHA256 string
	Done       bool
	Seed       string
	Order      []string
}

type roomDrawCmd struct{ reply chan DrawInfo }

// Draw reads the opening lottery; false if the room did not answer in time.
func (s *Sale) Draw() (DrawInfo, bool) {
	reply := make(chan DrawInfo, 1)
	s.e.sys.Root.Send(s.room.pid, &roomDrawCmd{reply: reply})
	select {
	case d := <-reply:
		return d, true
	case <-after(s.e.cfg.CallTimeout):
		return DrawInfo{}, false
	}
}

func (a *roomActor) draw() DrawInfo {
	seed, order, done := a.r.Draw()
	d := DrawInfo{SeedSHA256: a.r.SeedSHA256(), Done: done}
	if done {
		d.Seed = seed
		d.Order = append([]string{}, order...)
		if d.Order == nil {
			d.Order = []string{}
		}
	}
	return d
}
