package line

import (
	"fmt"
	"math"

	"onsale/wal"
)

// The waiting room's decisions. Each one reads the state and makes events;
// each event is checked, handed to the room's Log (SetLog) and applied only
// once the log accepted it (emit): decide, log, apply. A refused event
// changes nothing and ends the decision, which returns the events accepted
// before it and the refusal, wrapped in ErrLogRefused. What a decision does
// before its first event is a function of the time alone (the clock, the
// ageing of recent admissions, expiry of access, the token bucket's refill)
// and would happen at the next decision anyway.

// Join puts a buyer in line, or returns the place they have: the buyer's
// live ticket comes back unchanged. A buyer whose ticket expired gets a new
// ticket, at the back, under newQueueID. Before the opening the ticket waits
// in the pre-queue (number 0) for the draw; after it, it takes the next
// number. A newcomer is admitted at once when nobody waits and a slot is
// free (the sale drawn, not paused, not sold out; ActiveLimit and in
// automatic mode the stock cap not reached).
//
// Join draws first when the opening has come and Tick has not drawn yet, so
// that the pre-queue is always ahead of whoever joins after opens_at; the
// queue_drawn event is then among the returned ones, also when the buyer
// already had a ticket. On a bad request nothing changed and no events are
// returned. When the log refuses the draw or the join, Join returns the
// refusal (and the draw, if it was accepted); when it refuses only the
// admission of the newcomer, the newcomer waits in line, Join succeeds, and
// the next Tick admits them.
func (r *Room) Join(buyer, newQueueID string, now int64, st Stock) (*Ticket, []wal.Event, error) {
	now = r.advance(now)
	if t := r.byBuyerAt(buyer, now); t != nil {
		evs, err := r.drawIfDue(now, nil)
		if err != nil {
			return nil, evs, err
		}
		return t, evs, nil
	}
	preQueue := !r.drawn && now < r.cfg.OpensAt
	if err := r.checkJoin(buyer, newQueueID, preQueue); err != nil {
		return nil, nil, err
	}
	evs, err := r.drawIfDue(now, nil)
	if err != nil {
		return nil, evs, err
	}
	alone := r.lineWaiting == 0
	ev := wal.Event{Type: wal.TypeQueueJoined, Sale: r.sale, Buyer: buyer, Hold: newQueueID, At: now}
	if r.drawn {
		ev.Num = uint64(len(r.byNum)) + 1
	}
	if evs, err = r.emit(evs, ev); err != nil {
		return nil, evs, err
	}
	if r.drawn && alone {
		r.expire(now)
		if r.slots(st) > 0 {
			// A refused admission leaves the newcomer waiting: see above.
			evs, _ = r.admit(now, []string{newQueueID}, evs)
		}
	}
	return r.Ticket(newQueueID), evs, nil
}

func (r *Room) checkJoin(buyer, queueID string, preQueue bool) error {
	if !roomValidID(buyer) || !roomValidID(queueID) {
		return ErrBadID
	}
	if _, ok := r.byID.get(queueID); ok {
		return ErrQueueIDTaken
	}
	if r.tickets.len() >= r.ticketsMax || (preQueue && len(r.preQueue) >= r.preQueueMax) {
		return ErrLineFull
	}
	return nil
}

func roomValidID(s string) bool { return len(s) > 0 && len(s) <= roomIDBytesMax }

// Leave gives up a place in line or an admission: the ticket is expired and,
// if it was shopping, frees its slot. A ticket already expired (or unknown)
// gives no events.
func (r *Room) Leave(queueID string, now int64) ([]wal.Event, error) {
	now = r.advance(now)
	t := r.Ticket(queueID)
	if t == nil || t.StateAt(now) == TicketExpired {
		return nil, nil
	}
	return r.emit(nil, wal.Event{Type: wal.TypeQueueLeft, Sale: r.sale, Hold: queueID, At: now})
}

// Complete records that an admitted buyer completed a checkout: they stop
// counting against ActiveLimit but stay admitted until AccessExpires. Only
// the first call for a ticket whose access is still valid gives an event.
func (r *Room) Complete(queueID string, now int64) ([]wal.Event, error) {
	now = r.advance(now)
	t := r.Ticket(queueID)
	if t == nil || t.StateAt(now) != TicketAdmitted || t.Done {
		return nil, nil
	}
	return r.emit(nil, wal.Event{Type: wal.TypeQueueDone, Sale: r.sale, Hold: queueID, At: now})
}

// Tick moves the line. Call it often (every 100 ms or so): it draws at the
// first call at or after OpensAt, ends admissions whose access passed (time
// alone ends them: no event), and admits from the front of the line by a
// token bucket at the rate in force, as many as ActiveLimit (and in automatic
// mode the stock cap) leaves room for. Admitted tickets are in the returned
// queue_admitted event, and passed to the OnAdmitted function. A refused
// admission keeps its credit in the bucket for the next Tick.
func (r *Room) Tick(now int64, st Stock) ([]wal.Event, error) {
	now = r.advance(now)
	evs, err := r.drawIfDue(now, nil)
	if err != nil {
		return evs, err
	}
	r.expire(now)
	r.refill(now, r.RateInForce(now, st))
	n := min(int64(r.tokens), r.slots(st), r.lineWaiting, roomAdmitBatchMax)
	if n > 0 {
		if evs, err = r.admit(now, r.front(n), evs); err != nil {
			return evs, err
		}
		r.tokens -= float64(n)
	}
	r.sample(now)
	return evs, nil
}

// advance moves the room's clock to now and returns it, or returns the clock
// when now is earlier: decisions never go back in time, so an expiry once
// seen stays seen and the bucket never refills backwards.
func (r *Room) advance(now int64) int64 {
	if now < r.clock {
		now = r.clock
	}
	r.clock = now
	r.age(now)
	return now
}

// expire stops counting the admissions whose access passed by now.
func (r *Room) expire(now int64) {
	for len(r.access.idx) > 0 {
		t := r.tickets.at(r.access.top())
		if t.AccessExpires > now {
			return
		}
		r.access.pop()
		if t.active {
			t.active = false
			r.shopping--
			r.leftShopping(t)
		}
	}
}

// refill adds the credit earned since the last tick at rate/s. No credit is
// kept while nobody waits: joiners are then admitted at once anyway, and
// banked credit would let the next crowd in faster than the rate.
func (r *Room) refill(now int64, rate float64) {
	if !r.bucketOn {
		r.bucketOn, r.refilledAt, r.tokens = true, now, 0
		return
	}
	dt := now - r.refilledAt
	r.refilledAt = now
	if r.lineWaiting == 0 {
		r.tokens = 0
		return
	}
	burst := max(1, rate*roomBucketBurstMs/1000)
	r.tokens = min(r.tokens+rate*float64(dt)/1000, burst)
}

// sample folds the admissions since the last sample into the measured rate,
// when a line existed at the start of the interval: only then do admissions
// say how fast the line moves.
func (r *Room) sample(now int64) {
	if !r.sampleOn {
		r.sampleOn, r.sampledAt, r.sampledTotal, r.sampleLine = true, now, r.admittedTotal, r.lineWaiting > 0
		return
	}
	dt := now - r.sampledAt
	if dt < roomRateSampleMinMs {
		return
	}
	if r.sampleLine {
		inst := float64(r.admittedTotal-r.sampledTotal) * 1000 / float64(dt)
		if !r.rateOn {
			r.rate, r.rateOn = inst, true
		} else {
			alpha := 1 - math.Exp(-float64(dt)/roomRateTauMs)
			r.rate += alpha * (inst - r.rate)
		}
	}
	r.sampledAt, r.sampledTotal, r.sampleLine = now, r.admittedTotal, r.lineWaiting > 0
}

// front returns the queue ids of the first n waiting tickets, in line order.
// The head skips what left or was admitted, so this costs O(n) amortized.
func (r *Room) front(n int64) []string {
	ids := make([]string, 0, n)
	for num := r.head; num <= uint64(len(r.byNum)) && int64(len(ids)) < n; num++ {
		if t := r.tickets.at(r.byNum[num-1]); t.State == TicketWaiting {
			ids = append(ids, t.QueueID)
		}
	}
	return ids
}

// admit makes the admission of ids (in line order) and appends its event.
func (r *Room) admit(now int64, ids []string, evs []wal.Event) ([]wal.Event, error) {
	evs, err := r.emit(evs, wal.Event{Type: wal.TypeQueueAdmitted, Sale: r.sale, At: now,
		Expires: now + r.cfg.AccessTTL, Blob: AppendQueueIDs(nil, ids)})
	if err != nil {
		return evs, err
	}
	if r.onAdmitted != nil {
		for _, id := range ids {
			r.onAdmitted(r.Ticket(id))
		}
	}
	return evs, nil
}

// drawIfDue holds the draw once the opening has come: the waiting pre-queue
// in DrawOrder, numbered 1..k ahead of everyone after.
func (r *Room) drawIfDue(now int64, evs []wal.Event) ([]wal.Event, error) {
	if r.drawn || now < r.cfg.OpensAt {
		return evs, nil
	}
	ids := make([]string, 0, r.preWaiting)
	for _, i := range r.preQueue {
		if t := r.tickets.at(i); t.State == TicketWaiting {
			ids = append(ids, t.QueueID)
		}
	}
	return r.emit(evs, wal.Event{Type: wal.TypeQueueDrawn, Sale: r.sale, At: now,
		Blob: AppendQueueIDs(nil, DrawOrder(r.cfg.Seed, ids))})
}

// emit is decide, log, apply for one event the room just made: it checks
// the event (one that does not fit is a bug in the decision that made it,
// and must not reach the log), hands it to the log, and applies it once the
// log accepted it. It returns evs with ev appended, or on a refusal evs as
// they were and nothing changed. The event goes into evs before the log sees
// it, so that it is not allocated a second time.
func (r *Room) emit(evs []wal.Event, ev wal.Event) ([]wal.Event, error) {
	if err := r.checkEvent(&ev); err != nil {
		panic(fmt.Sprintf("waiting room %q: own %s event does not apply: %v", r.sale, ev.Type, err))
	}
	evs = append(evs, ev)
	p := &evs[len(evs)-1]
	if r.log != nil {
		if err := r.log(p); err != nil {
			return evs[:len(evs)-1], fmt.Errorf("%w: %s: %w", ErrLogRefused, p.Type, err)
		}
	}
	r.change(p)
	return evs, nil
}
