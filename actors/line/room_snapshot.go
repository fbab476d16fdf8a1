package line

import (
	"encoding/binary"
	"fmt"
	"math"

	"onsale/wal"
)

// Snapshot format (version 1). Numbers are uvarints, signed ones zigzag
// varints, strings a uvarint length and bytes, floats 8 bytes of IEEE 754
// bits little-endian:
//
//	version      byte, 1
//	sale         string
//	flags        uvarint: 1 drawn, 2 paused, 4 bucketOn, 8 sampleOn,
//	             16 sampleLine, 32 rateOn
//	clock        varint
//	drawCount    uvarint
//	admitted     uvarint: admissions ever
//	tokens       float
//	refilledAt   varint
//	sampledAt    varint
//	sampledTotal uvarint
//	rate         float
//	count        uvarint: tickets, then each in join order:
//	  queue id, buyer  string
//	  num              uvarint
//	  state            byte (TicketState)
//	  flags            byte: 1 done, 2 active
//	  joinedAt, admittedAt, accessExpires  varint
//
// Everything else (indexes, the line, the head, the expiry heap, counts) is
// derived again on restore, which checks every invariant it can.
const roomSnapshotVersion = 1

const (
	roomSnapDrawn = 1 << iota
	roomSnapPaused
	roomSnapBucketOn
	roomSnapSampleOn
	roomSnapSampleLine
	roomSnapRateOn
	roomSnapFlagsAll = 1<<iota - 1
)

const (
	roomSnapTicketDone = 1 << iota
	roomSnapTicketActive
	roomSnapTicketAll = 1<<iota - 1
)

// roomSnapTicketBytesMin is the smallest encoded ticket: two one-byte ids
// with their lengths, num, state, flags and three times.
const roomSnapTicketBytesMin = 4 + 1 + 1 + 1 + 3

// AppendSnapshot appends the room's whole state, soft state included, to dst.
func (r *Room) AppendSnapshot(dst []byte) []byte {
	dst = append(dst, roomSnapshotVersion)
	dst = wal.AppendString(dst, r.sale)
	var flags uint64
	for _, f := range [...]struct {
		on  bool
		bit uint64
	}{{r.drawn, roomSnapDrawn}, {r.paused, roomSnapPaused}, {r.bucketOn, roomSnapBucketOn},
		{r.sampleOn, roomSnapSampleOn}, {r.sampleLine, roomSnapSampleLine}, {r.rateOn, roomSnapRateOn}} {
		if f.on {
			flags |= f.bit
		}
	}
	dst = binary.AppendUvarint(dst, flags)
	dst = binary.AppendVarint(dst, r.clock)
	dst = binary.AppendUvarint(dst, r.drawCount)
	dst = binary.AppendUvarint(dst, uint64(r.admittedTotal))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.tokens))
	dst = binary.AppendVarint(dst, r.refilledAt)
	dst = binary.AppendVarint(dst, r.sampledAt)
	dst = binary.AppendUvarint(dst, uint64(r.sampledTotal))
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(r.rate))
	dst = binary.AppendUvarint(dst, uint64(r.tickets.len()))
	for i := range uint32(r.tickets.len()) {
		t := r.tickets.at(i)
		dst = wal.AppendString(dst, t.QueueID)
		dst = wal.AppendString(dst, t.Buyer)
		dst = binary.AppendUvarint(dst, t.Num)
		var tf byte
		if t.Done {
			tf |= roomSnapTicketDone
		}
		if t.active {
			tf |= roomSnapTicketActive
		}
		dst = append(dst, byte(t.State), tf)
		dst = binary.AppendVarint(dst, t.JoinedAt)
		dst = binary.AppendVarint(dst, t.AdmittedAt)
		dst = binary.AppendVarint(dst, t.AccessExpires)
	}
	return dst
}

// Restore rebuilds a room from AppendSnapshot's bytes. It is strict:
// anything that is not a snapshot of a consistent room of this sale is an
// error wrapping ErrSnapshot, and no input makes it panic or allocate
// much beyond what the input's size justifies.
func Restore(sale string, cfg Config, data []byte) (*Room, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := newRoom(sale, cfg)
	if err := r.restore(data); err != nil {
		return nil, fmt.Errorf("%w: sale %q: %v", ErrSnapshot, sale, err)
	}
	r.rebuildFresh()
	return r, nil
}

func (r *Room) restore(data []byte) error {
	d := wal.NewFieldReader(data)
	if v := d.Byte(); d.Err() == nil && v != roomSnapshotVersion {
		return fmt.Errorf("version %d", v)
	}
	if s := d.String(roomIDBytesMax); d.Err() == nil && s != r.sale {
		return fmt.Errorf("snapshot of sale %q", s)
	}
	flags := d.Uvarint()
	if d.Err() == nil && flags&^roomSnapFlagsAll != 0 {
		return fmt.Errorf("flags %#x", flags)
	}
	r.drawn = flags&roomSnapDrawn != 0
	r.paused = flags&roomSnapPaused != 0
	r.bucketOn = flags&roomSnapBucketOn != 0
	r.sampleOn = flags&roomSnapSampleOn != 0
	r.sampleLine = flags&roomSnapSampleLine != 0
	r.rateOn = flags&roomSnapRateOn != 0
	r.clock = d.Varint()
	r.drawCount = d.Uvarint()
	admitted := d.Uvarint()
	r.tokens = d.Float64()
	r.refilledAt = d.Varint()
	r.sampledAt = d.Varint()
	sampled := d.Uvarint()
	r.rate = d.Float64()
	count := d.Uvarint()
	if err := d.Err(); err != nil {
		return err
	}
	switch {
	case admitted > roomTicketsMax || sampled > admitted:
		return fmt.Errorf("admissions %d, sampled %d", admitted, sampled)
	case !(r.tokens >= 0 && r.tokens <= AdmitPerSMax):
		return fmt.Errorf("token bucket holds %v", r.tokens)
	case !(r.rate >= 0 && r.rate <= math.MaxInt32):
		return fmt.Errorf("measured rate %v", r.rate)
	case count > uint64(r.ticketsMax) || count > uint64(d.Len()/roomSnapTicketBytesMin):
		return fmt.Errorf("%d tickets in %d bytes", count, d.Len())
	}
	r.admittedTotal, r.sampledTotal = int64(admitted), int64(sampled)

	var numbered uint64
	for i := range uint32(count) {
		t := Ticket{QueueID: d.String(roomIDBytesMax), Buyer: d.String(roomIDBytesMax)}
		t.Num, t.State = d.Uvarint(), TicketState(d.Byte())
		tf := d.Byte()
		t.JoinedAt, t.AdmittedAt, t.AccessExpires = d.Varint(), d.Varint(), d.Varint()
		if err := d.Err(); err != nil {
			return err
		}
		if tf&^roomSnapTicketAll != 0 {
			return fmt.Errorf("ticket %d: flags %#x", i, tf)
		}
		t.Done, t.active = tf&roomSnapTicketDone != 0, tf&roomSnapTicketActive != 0
		if err := r.checkRestoredTicket(&t); err != nil {
			return fmt.Errorf("ticket %d (%q): %w", i, t.QueueID, err)
		}
		if prev, ok := r.byBuyer.get(t.Buyer); ok && r.tickets.at(prev).StateAt(t.JoinedAt) != TicketExpired {
			return fmt.Errorf("ticket %d (%q): buyer %q has two live tickets", i, t.QueueID, t.Buyer)
		}
		r.tickets.add(t)
		r.byID.put(t.QueueID, i)
		r.byBuyer.put(t.Buyer, i)
		if t.Num != 0 {
			numbered++
		} else if !r.drawn {
			r.preQueue = append(r.preQueue, i)
			if t.State == TicketWaiting {
				r.preWaiting++
			}
		}
		if t.active {
			r.shopping++
			r.access.push(i)
		}
	}
	if d.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", d.Len())
	}
	if len(r.preQueue) > r.preQueueMax {
		return fmt.Errorf("pre-queue of %d", len(r.preQueue))
	}
	if r.drawCount > numbered || (!r.drawn && r.drawCount != 0) {
		return fmt.Errorf("draw of %d with %d numbered tickets (drawn %v)", r.drawCount, numbered, r.drawn)
	}

	// Numbers must be exactly 1..numbered, each once.
	const none = math.MaxUint32
	if numbered > 0 {
		r.byNum = make([]uint32, numbered)
	}
	for n := range r.byNum {
		r.byNum[n] = none
	}
	for i := range uint32(count) {
		t := r.tickets.at(i)
		if t.Num == 0 {
			continue
		}
		if t.Num > numbered || r.byNum[t.Num-1] != none {
			return fmt.Errorf("ticket %q: number %d twice or out of 1..%d", t.QueueID, t.Num, numbered)
		}
		r.byNum[t.Num-1] = i
	}
	for n, i := range r.byNum {
		if r.tickets.at(i).State == TicketWaiting {
			r.line.push(1)
			r.lineWaiting++
		} else {
			r.line.push(0)
			r.gone.set(uint64(n) + 1)
		}
	}
	r.advanceHead()
	r.revoked = revokedOf(r)
	return nil
}

// checkRestoredTicket checks what one ticket can say on its own, and that it
// fits the room's drawn flag.
func (r *Room) checkRestoredTicket(t *Ticket) error {
	if !roomValidID(t.QueueID) || !roomValidID(t.Buyer) {
		return fmt.Errorf("bad queue id or buyer %q", t.Buyer)
	}
	if _, ok := r.byID.get(t.QueueID); ok {
		return fmt.Errorf("queue id twice")
	}
	if t.Num != 0 && !r.drawn {
		return fmt.Errorf("number %d before the draw", t.Num)
	}
	if t.Done && (t.Num == 0 || t.State == TicketWaiting) {
		return fmt.Errorf("done but never admitted")
	}
	if t.active && (t.State != TicketAdmitted || t.Done) {
		return fmt.Errorf("counted as shopping in state %d (done %v)", t.State, t.Done)
	}
	switch t.State {
	case TicketWaiting:
		if t.AdmittedAt != 0 || t.AccessExpires != 0 {
			return fmt.Errorf("waiting with an admission")
		}
		if t.Num == 0 && r.drawn {
			return fmt.Errorf("waiting in the pre-queue after the draw")
		}
	case TicketAdmitted:
		if t.Num == 0 || t.AccessExpires <= t.AdmittedAt {
			return fmt.Errorf("admitted with number %d, access %d..%d", t.Num, t.AdmittedAt, t.AccessExpires)
		}
	case TicketExpired:
		if t.Num == 0 && (t.AdmittedAt != 0 || t.AccessExpires != 0) {
			return fmt.Errorf("admitted from the pre-queue")
		}
	default:
		return fmt.Errorf("state %d", t.State)
	}
	return nil
}
