package line

import (
	"encoding/binary"
	"fmt"
	"slices"

	"onsale/wal"
)

// Apply changes the room by one queue event: recovery calls it on the
// events it reads back. It checks that the event fits the state before it
// changes anything, so an error leaves the room as it was. Events of other
// types or of another sale are errors. The decisions take the same two
// steps, check and change, with the log's acceptance in between (emit).
func (r *Room) Apply(ev *wal.Event) error {
	if err := r.checkEvent(ev); err != nil {
		return err
	}
	r.change(ev)
	return nil
}

// checkEvent reports whether ev applies to the room as it is; it changes
// nothing.
func (r *Room) checkEvent(ev *wal.Event) error {
	if ev.Sale != r.sale {
		return fmt.Errorf("%w: %s for sale %q in sale %q", ErrEvent, ev.Type, ev.Sale, r.sale)
	}
	switch ev.Type {
	case wal.TypeQueueJoined:
		return r.checkJoined(ev)
	case wal.TypeQueueDrawn:
		return r.checkDrawn(ev)
	case wal.TypeQueueAdmitted:
		return r.checkAdmitted(ev)
	case wal.TypeQueueLeft:
		return r.checkLeft(ev)
	case wal.TypeQueueDone:
		return r.checkDone(ev)
	}
	return fmt.Errorf("%w: %s is not a queue event", ErrEvent, ev.Type)
}

// change applies an event that checkEvent accepted.
func (r *Room) change(ev *wal.Event) {
	switch ev.Type {
	case wal.TypeQueueJoined:
		r.addTicket(Ticket{QueueID: ev.Hold, Buyer: ev.Buyer, Num: ev.Num, JoinedAt: ev.At, State: TicketWaiting})
	case wal.TypeQueueDrawn:
		r.changeDrawn(ev)
	case wal.TypeQueueAdmitted:
		r.changeAdmitted(ev)
	case wal.TypeQueueLeft:
		r.changeLeft(ev)
	case wal.TypeQueueDone:
		r.changeDone(ev)
	default:
		panic(fmt.Sprintf("waiting room %q: change %s, which checkEvent refuses", r.sale, ev.Type))
	}
	r.clock = max(r.clock, ev.At)
}

func roomEventErr(ev *wal.Event, format string, args ...any) error {
	return fmt.Errorf("%w: %s at %d: %s", ErrEvent, ev.Type, ev.At, fmt.Sprintf(format, args...))
}

func (r *Room) checkJoined(ev *wal.Event) error {
	switch {
	case !roomValidID(ev.Buyer) || !roomValidID(ev.Hold):
		return roomEventErr(ev, "bad buyer %q or queue id %q", ev.Buyer, ev.Hold)
	case r.tickets.len() >= r.ticketsMax:
		return roomEventErr(ev, "%v", ErrLineFull)
	case ev.Num == 0 && r.drawn:
		return roomEventErr(ev, "pre-queue ticket %q after the draw", ev.Hold)
	case ev.Num == 0 && len(r.preQueue) >= r.preQueueMax:
		return roomEventErr(ev, "%v", ErrLineFull)
	case ev.Num != 0 && (!r.drawn || ev.Num != uint64(len(r.byNum))+1):
		return roomEventErr(ev, "ticket %q numbered %d, next is %d (drawn %v)",
			ev.Hold, ev.Num, len(r.byNum)+1, r.drawn)
	}
	if _, ok := r.byID.get(ev.Hold); ok {
		return roomEventErr(ev, "queue id %q in use", ev.Hold)
	}
	if prev, ok := r.byBuyer.get(ev.Buyer); ok && r.tickets.at(prev).StateAt(ev.At) != TicketExpired {
		return roomEventErr(ev, "buyer %q already has ticket %q", ev.Buyer, r.tickets.at(prev).QueueID)
	}
	return nil
}

// addTicket stores a new waiting ticket and indexes it: in the line when
// numbered (t.Num is the next number), else in the pre-queue.
func (r *Room) addTicket(t Ticket) {
	i := r.tickets.add(t)
	r.byID.put(t.QueueID, i)
	r.byBuyer.put(t.Buyer, i)
	defer r.changed(r.tickets.at(i))
	if t.Num != 0 {
		r.byNum = append(r.byNum, i)
		r.line.push(1)
		r.lineWaiting++
		return
	}
	r.preQueue = append(r.preQueue, i)
	r.preWaiting++
}

// changed tells the OnChange function of a ticket that an event changed.
func (r *Room) changed(t *Ticket) {
	if r.onChange != nil {
		r.onChange(t)
	}
}

func (r *Room) checkDrawn(ev *wal.Event) error {
	if r.drawn {
		return roomEventErr(ev, "drawn twice")
	}
	// Every id a waiting pre-queue ticket, none twice, all of them there.
	seen := make([]uint64, (r.tickets.len()+63)/64)
	var k int64
	err := roomEachID(ev.Blob, func(id []byte) error {
		i, ok := r.byID.getBytes(id)
		if !ok {
			return roomEventErr(ev, "unknown queue id %q", id)
		}
		if t := r.tickets.at(i); t.Num != 0 || t.State != TicketWaiting {
			return roomEventErr(ev, "queue id %q is not waiting in the pre-queue", id)
		}
		if seen[i/64]&(1<<(i%64)) != 0 {
			return roomEventErr(ev, "queue id %q drawn twice", id)
		}
		seen[i/64] |= 1 << (i % 64)
		k++
		return nil
	})
	if err != nil {
		return err
	}
	if k != r.preWaiting {
		return roomEventErr(ev, "order has %d of the %d waiting in the pre-queue", k, r.preWaiting)
	}
	return nil
}

func (r *Room) changeDrawn(ev *wal.Event) {
	var k int64
	err := roomEachID(ev.Blob, func(id []byte) error {
		i, _ := r.byID.getBytes(id)
		r.byNum = append(r.byNum, i)
		r.tickets.at(i).Num = uint64(len(r.byNum))
		r.line.push(1)
		r.changed(r.tickets.at(i))
		k++
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("waiting room %q: draw order decoded once, not twice: %v", r.sale, err))
	}
	r.drawn, r.drawCount = true, uint64(k)
	r.lineWaiting, r.preWaiting, r.preQueue = k, 0, nil
}

func (r *Room) checkAdmitted(ev *wal.Event) error {
	if !r.drawn {
		return roomEventErr(ev, "admission before the draw")
	}
	if ev.Expires <= ev.At {
		return roomEventErr(ev, "access expires at %d", ev.Expires)
	}
	// Waiting, numbered, in line order (which also rules out the same id
	// twice).
	var n int
	var last uint64
	err := roomEachID(ev.Blob, func(id []byte) error {
		i, ok := r.byID.getBytes(id)
		if !ok {
			return roomEventErr(ev, "unknown queue id %q", id)
		}
		t := r.tickets.at(i)
		if t.State != TicketWaiting || t.Num <= last {
			return roomEventErr(ev, "queue id %q (number %d, state %d) is not next in line after %d",
				id, t.Num, t.State, last)
		}
		last = t.Num
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n == 0 || n > roomAdmitBatchMax {
		return roomEventErr(ev, "%d admissions in one event", n)
	}
	return nil
}

func (r *Room) changeAdmitted(ev *wal.Event) {
	var n int64
	err := roomEachID(ev.Blob, func(id []byte) error {
		i, _ := r.byID.getBytes(id)
		t := r.tickets.at(i)
		t.State, t.AdmittedAt, t.AccessExpires, t.active = TicketAdmitted, ev.At, ev.Expires, true
		r.line.add(t.Num, -1)
		r.gone.set(t.Num)
		r.access.push(i)
		r.noteFresh(i)
		r.changed(t)
		n++
		return nil
	})
	if err != nil {
		panic(fmt.Sprintf("waiting room %q: admission decoded once, not twice: %v", r.sale, err))
	}
	r.lineWaiting -= n
	r.shopping += n
	r.admittedTotal += n
	r.advanceHead()
}

func (r *Room) checkLeft(ev *wal.Event) error {
	i, ok := r.byID.get(ev.Hold)
	if !ok {
		return roomEventErr(ev, "unknown queue id %q", ev.Hold)
	}
	if r.tickets.at(i).State == TicketExpired {
		return roomEventErr(ev, "queue id %q already expired", ev.Hold)
	}
	return nil
}

func (r *Room) changeLeft(ev *wal.Event) {
	i, _ := r.byID.get(ev.Hold)
	t := r.tickets.at(i)
	switch {
	case t.State == TicketWaiting && t.Num == 0:
		r.preWaiting--
	case t.State == TicketWaiting:
		r.line.add(t.Num, -1)
		r.gone.set(t.Num)
		r.lineWaiting--
	case t.State == TicketAdmitted:
		// Leaving gives up the admission: the buyer's access token, valid
		// until it expires, is refused from now on.
		r.revoked = r.revoked.with(t.QueueID)
		if t.active {
			t.active = false
			r.shopping--
			r.leftShopping(t)
		}
	}
	t.State = TicketExpired
	r.changed(t)
	r.advanceHead()
}

func (r *Room) checkDone(ev *wal.Event) error {
	i, ok := r.byID.get(ev.Hold)
	if !ok {
		return roomEventErr(ev, "unknown queue id %q", ev.Hold)
	}
	if t := r.tickets.at(i); t.State != TicketAdmitted || t.Done {
		return roomEventErr(ev, "queue id %q is not shopping (state %d, done %v)", ev.Hold, t.State, t.Done)
	}
	return nil
}

func (r *Room) changeDone(ev *wal.Event) {
	i, _ := r.byID.get(ev.Hold)
	t := r.tickets.at(i)
	t.Done = true
	if t.active {
		t.active = false
		r.shopping--
		r.leftShopping(t)
	}
	r.changed(t)
}

// advanceHead moves the head past numbers that no longer wait.
func (r *Room) advanceHead() {
	for r.head <= uint64(len(r.byNum)) && r.tickets.at(r.byNum[r.head-1]).State != TicketWaiting {
		r.head++
	}
}

// AppendQueueIDs appends a list of queue ids to dst in the encoding of the
// Blob of queue_admitted and queue_drawn events: a uvarint count, then each
// id as a uvarint length and its bytes.
func AppendQueueIDs(dst []byte, ids []string) []byte {
	n := binary.MaxVarintLen64
	for _, id := range ids {
		n += 1 + len(id)
	}
	dst = slices.Grow(dst, n)
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, uint64(len(id)))
		dst = append(dst, id...)
	}
	return dst
}

// QueueIDs decodes a Blob written by AppendQueueIDs: the queue ids that a
// queue_admitted event admitted, or the order a queue_drawn event drew.
func QueueIDs(blob []byte) ([]string, error) {
	var ids []string
	err := roomEachID(blob, func(id []byte) error {
		ids = append(ids, string(id))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// roomEachID calls fn with each id of an AppendQueueIDs blob, in order, and
// stops at fn's first error. The id slice aliases blob. Strict: every id is
// 1..roomIDBytesMax bytes and nothing trails.
func roomEachID(blob []byte, fn func(id []byte) error) error {
	count, k := binary.Uvarint(blob)
	if k <= 0 {
		return fmt.Errorf("%w: queue id list: bad count", ErrEvent)
	}
	b := blob[k:]
	if count > uint64(len(b))/2 { // every id takes at least two bytes
		return fmt.Errorf("%w: queue id list: %d ids in %d bytes", ErrEvent, count, len(b))
	}
	for range count {
		n, k := binary.Uvarint(b)
		if k <= 0 || n == 0 || n > roomIDBytesMax || n > uint64(len(b)-k) {
			return fmt.Errorf("%w: queue id list: bad id length", ErrEvent)
		}
		if err := fn(b[k : k+int(n)]); err != nil {
			return err
		}
		b = b[k+int(n):]
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: queue id list: %d trailing bytes", ErrEvent, len(b))
	}
	return nil
}
