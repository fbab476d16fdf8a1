package seats

import (
	"encoding/binary"
	"fmt"

	"onsale/wal"
)

// Zone snapshot format, version 2 (version 1 is read too: it ends after the
// holds, with no payments or cancels). Numbers are uvarints unless said
// otherwise; "varint" is a zigzag varint; a string is a uvarint length then
// its bytes.
//
//	version   byte (1)
//	zone id   string, must equal the definition's
//	size      number of seats, must equal the definition's
//	free, held, sold   the counts, checked against the rebuilt seats
//	holds     count, then each hold kept (not dropped), in the order placed:
//	  id, buyer       string
//	  state           byte (HoldState)
//	  flags           byte: bit 0 = order cancelled; other bits zero
//	  seats           count (1..100), first index, then varint deltas
//	  created, expires, amount, ended, paid, cancelled   varint each
//	  order id, hold idempotency key, checkout idempotency key   string
//	  hold key hash, checkout key hash   uvarint
//	payments  count, then each open payment attempt by hold id:
//	  hold, order, buyer   string
//	  amount, started      varint each
//	  idempotency key      string
//	  key hash             uvarint
//	cancels   count, then each open cancel by order id:
//	  order     string
//	  started   varint
//
// Seat states are not stored: they follow from the holds (active: held;
// purchased and not cancelled: sold; else free), so a snapshot cannot hold a
// seat that no hold explains. The record around it carries the checksum.

const (
	zoneSnapVersion = 2
	// zoneSnapVersionNoMoney is the version before payments and cancels
	// were recorded: still read.
	zoneSnapVersionNoMoney = 1
	// zoneSnapPaymentBytesMin and zoneSnapCancelBytesMin are the fewest
	// bytes an open payment (three one-byte ids, two numbers, an empty key,
	// a hash) and an open cancel take.
	zoneSnapPaymentBytesMin = 9
	zoneSnapCancelBytesMin  = 3
	// zoneSnapHoldBytesMin is the fewest bytes one hold takes (two one-byte
	// ids, state, flags, one seat, six times, three empty strings, two
	// hashes): a count that the rest of the input cannot fill is refused
	// before anything is allocated for it.
	zoneSnapHoldBytesMin  = 19
	zoneSnapFlagCancelled = 1
)

// AppendSnapshot appends the zone's whole state to dst; RestoreZone reads it
// back. The bytes depend only on the state, so equal zones give equal bytes.
func (z *Zone) AppendSnapshot(dst []byte) []byte {
	if z.blocked != 0 {
		panic("zone snapshot during Alternatives")
	}
	dst = append(dst, zoneSnapVersion)
	dst = wal.AppendString(dst, z.def.ID)
	dst = binary.AppendUvarint(dst, uint64(len(z.seats)))
	dst = binary.AppendUvarint(dst, uint64(z.free))
	dst = binary.AppendUvarint(dst, uint64(z.held))
	dst = binary.AppendUvarint(dst, uint64(z.sold))
	dst = binary.AppendUvarint(dst, uint64(len(z.holds)))
	for _, h := range z.list {
		if h.dropped {
			continue
		}
		dst = wal.AppendString(dst, h.ID)
		dst = wal.AppendString(dst, h.Buyer)
		var flags byte
		if h.OrderCancelled {
			flags |= zoneSnapFlagCancelled
		}
		dst = append(dst, byte(h.State), flags)
		dst = binary.AppendUvarint(dst, uint64(len(h.Seats)))
		for i, s := range h.Seats {
			if i == 0 {
				dst = binary.AppendUvarint(dst, uint64(s))
			} else {
				dst = binary.AppendVarint(dst, int64(s)-int64(h.Seats[i-1]))
			}
		}
		for _, t := range [...]int64{h.CreatedAt, h.ExpiresAt, h.Amount, h.EndedAt, h.PaidAt, h.CancelledAt} {
			dst = binary.AppendVarint(dst, t)
		}
		dst = wal.AppendString(dst, h.OrderID)
		dst = wal.AppendString(dst, h.IdemKey)
		dst = wal.AppendString(dst, h.PayKey)
		dst = binary.AppendUvarint(dst, h.IdemHash)
		dst = binary.AppendUvarint(dst, h.PayHash)
	}
	pays := z.OpenPayments()
	dst = binary.AppendUvarint(dst, uint64(len(pays)))
	for _, p := range pays {
		dst = wal.AppendString(dst, p.Hold)
		dst = wal.AppendString(dst, p.Order)
		dst = wal.AppendString(dst, p.Buyer)
		dst = binary.AppendVarint(dst, p.Amount)
		dst = binary.AppendVarint(dst, p.StartedAt)
		dst = wal.AppendString(dst, p.IdemKey)
		dst = binary.AppendUvarint(dst, p.IdemHash)
	}
	cancels := z.OpenCancels()
	dst = binary.AppendUvarint(dst, uint64(len(cancels)))
	for _, o := range cancels {
		dst = wal.AppendString(dst, o)
		dst = binary.AppendVarint(dst, z.cancels[o])
	}
	return dst
}

// RestoreZone rebuilds a zone of sale and definition def from AppendSnapshot's bytes.
// It is strict: every length is bounded, every hold checked as Apply would
// have made it, seats checked against each other, the counts compared, and
// trailing bytes refused. Garbage gives an error wrapping ErrZoneSnapshot,
// never a panic.
func RestoreZone(sale string, def ZoneDef, data []byte) (*Zone, error) {
	if err := CheckZoneLayout(def); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrZoneSnapshot, err)
	}
	z := newZone(sale, def)
	d := wal.NewFieldReader(data)
	v := d.Byte()
	if d.Err() == nil && v != zoneSnapVersion && v != zoneSnapVersionNoMoney {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrZoneSnapshot, v, zoneSnapVersion)
	}
	if id := d.String(zoneKeyBytesMax); d.Err() == nil && id != def.ID {
		return nil, fmt.Errorf("%w: zone %q, want %q", ErrZoneSnapshot, id, def.ID)
	}
	if size := d.Uvarint(); d.Err() == nil && size != uint64(len(z.seats)) {
		return nil, fmt.Errorf("%w: %d seats, zone %q has %d", ErrZoneSnapshot, size, def.ID, len(z.seats))
	}
	free, held, sold := d.Uvarint(), d.Uvarint(), d.Uvarint()
	count := d.Uvarint()
	if d.Err() == nil && (count > zoneSnapHoldsMax || count > uint64(d.Len()/zoneSnapHoldBytesMin)) {
		return nil, fmt.Errorf("%w: %d holds in %d bytes", ErrZoneSnapshot, count, d.Len())
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrZoneSnapshot, err)
	}
	z.list = make([]*Hold, 0, count)
	z.holds = make(map[string]*Hold, count)
	for i := range count {
		h := readHold(&d)
		if err := d.Err(); err != nil {
			return nil, fmt.Errorf("%w: hold %d of %d: %w", ErrZoneSnapshot, i+1, count, err)
		}
		if err := z.restoreHold(h); err != nil {
			return nil, fmt.Errorf("%w: hold %d of %d (%q): %w", ErrZoneSnapshot, i+1, count, h.ID, err)
		}
	}
	if v == zoneSnapVersion {
		if err := z.restoreMoney(&d); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrZoneSnapshot, err)
		}
	}
	if d.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last hold", ErrZoneSnapshot, d.Len())
	}
	if free != uint64(z.free) || held != uint64(z.held) || sold != uint64(z.sold) {
		return nil, fmt.Errorf("%w: counts free/held/sold %d/%d/%d, the holds give %d/%d/%d",
			ErrZoneSnapshot, free, held, sold, z.free, z.held, z.sold)
	}
	z.advanceCursor()
	z.expiryHeapify()
	z.endedHeapify()
	z.holdsPeak = len(z.holds)
	return z, nil
}

// restoreHold checks one decoded hold against the rules Apply enforces and
// adds it to z. Active holds go into the expiry heap, released and expired
// ones into the ended heap (each heapified once at the end).
func (z *Zone) restoreHold(h *Hold) error {
	n := len(h.Seats)
	purchased := h.State == HoldPurchased
	switch {
	case h.ID == "" || h.Buyer == "":
		return fmt.Errorf("empty hold or buyer id")
	case h.State < HoldActive || h.State > HoldPurchased:
		return fmt.Errorf("state %d", h.State)
	case n < 1 || n > HoldSeatsMax:
		return fmt.Errorf("%d seats, want 1..%d", n, HoldSeatsMax)
	case h.ExpiresAt <= h.CreatedAt:
		return fmt.Errorf("expires at %d, not after %d", h.ExpiresAt, h.CreatedAt)
	case h.Amount != int64(n)*z.def.PriceCents:
		return fmt.Errorf("amount %d, want %d seats × %d", h.Amount, n, z.def.PriceCents)
	case h.State == HoldActive && h.EndedAt != 0:
		return fmt.Errorf("active but ended at %d", h.EndedAt)
	case purchased && h.OrderID == "":
		return fmt.Errorf("purchased without an order id")
	case !purchased && (h.OrderID != "" || h.PaidAt != 0 || h.PayKey != "" || h.PayHash != 0 || h.OrderCancelled):
		return fmt.Errorf("%s but carries order data", h.State)
	case !h.OrderCancelled && h.CancelledAt != 0:
		return fmt.Errorf("not cancelled but cancelled at %d", h.CancelledAt)
	case z.holds[h.ID] != nil:
		return fmt.Errorf("hold id used twice")
	case purchased && z.orders[h.OrderID] != nil:
		return fmt.Errorf("order id %q used twice", h.OrderID)
	}
	for _, s := range h.Seats {
		if int(s) >= len(z.seats) {
			return fmt.Errorf("seat index %d, zone has %d seats", s, len(z.seats))
		}
	}
	if d, ok := duplicateSeat(h.Seats); ok {
		return fmt.Errorf("seat %s twice", z.SeatName(d))
	}
	var st SeatState
	switch {
	case h.State == HoldActive:
		st = SeatHeld
	case purchased && !h.OrderCancelled:
		st = SeatSold
	}
	if st != SeatFree {
		for _, s := range h.Seats {
			if z.seats[s] != uint8(SeatFree) {
				return fmt.Errorf("seat %s is also %s by an earlier hold", z.SeatName(s), SeatState(z.seats[s]))
			}
		}
		z.take(h.Seats, st)
		if st == SeatHeld {
			z.held += n
		} else {
			z.sold += n
		}
	}
	z.holds[h.ID] = h
	z.list = append(z.list, h)
	if purchased {
		z.orders[h.OrderID] = h
	}
	switch h.State {
	case HoldActive:
		z.active++
		z.expiry = append(z.expiry, h)
	case HoldReleased, HoldExpired:
		z.ended = append(z.ended, h)
	}
	return nil
}

// readHold decodes one hold; seat indexes are only range-checked against
// uint32 here, the zone checks the rest.
func readHold(d *wal.FieldReader) *Hold {
	h := &Hold{ID: d.String(zoneKeyBytesMax), Buyer: d.String(zoneKeyBytesMax)}
	h.State = HoldState(d.Byte())
	flags := d.Byte()
	if d.Err() == nil && flags&^zoneSnapFlagCancelled != 0 {
		d.Failf("unknown flags %#x", flags)
	}
	h.OrderCancelled = flags&zoneSnapFlagCancelled != 0
	n := d.Uvarint()
	if d.Err() == nil && (n < 1 || n > HoldSeatsMax || n > uint64(d.Len())) {
		d.Failf("%d seats", n)
	}
	if d.Err() != nil {
		return h
	}
	h.Seats = make([]uint32, n)
	var prev int64
	for i := range h.Seats {
		var v int64
		if i == 0 {
			u := d.Uvarint()
			if u > 1<<32-1 {
				d.Failf("seat index %d", u)
			}
			v = int64(u)
		} else {
			delta := d.Varint()
			if delta < -(1<<32) || delta > 1<<32 {
				d.Failf("seat delta %d", delta)
			}
			v = prev + delta
		}
		if v < 0 || v > 1<<32-1 {
			d.Failf("seat index %d", v)
		}
		if d.Err() != nil {
			return h
		}
		h.Seats[i] = uint32(v)
		prev = v
	}
	h.CreatedAt, h.ExpiresAt, h.Amount = d.Varint(), d.Varint(), d.Varint()
	h.EndedAt, h.PaidAt, h.CancelledAt = d.Varint(), d.Varint(), d.Varint()
	h.OrderID = d.String(zoneKeyBytesMax)
	h.IdemKey = d.String(zoneKeyBytesMax)
	h.PayKey = d.String(zoneKeyBytesMax)
	h.IdemHash, h.PayHash = d.Uvarint(), d.Uvarint()
	return h
}

// restoreMoney reads the open payments and cancels of a version 2 snapshot
// and checks each as Apply would have made it.
func (z *Zone) restoreMoney(d *wal.FieldReader) error {
	n := d.Uvarint()
	if d.Err() == nil && n > uint64(d.Len()/zoneSnapPaymentBytesMin) {
		return fmt.Errorf("%d payments in %d bytes", n, d.Len())
	}
	for i := range n {
		p := &Payment{Hold: d.String(zoneKeyBytesMax), Order: d.String(zoneKeyBytesMax), Buyer: d.String(zoneKeyBytesMax)}
		p.Amount, p.StartedAt = d.Varint(), d.Varint()
		p.IdemKey = d.String(zoneKeyBytesMax)
		p.IdemHash = d.Uvarint()
		if err := d.Err(); err != nil {
			return fmt.Errorf("payment %d of %d: %w", i+1, n, err)
		}
		h := z.holds[p.Hold]
		switch {
		case h == nil:
			return fmt.Errorf("payment %d of %d: unknown hold %q", i+1, n, p.Hold)
		case p.Order == "" || z.orders[p.Order] != nil:
			return fmt.Errorf("payment %d of %d: order id %q empty or used", i+1, n, p.Order)
		case p.Buyer != h.Buyer || p.Amount != h.Amount:
			return fmt.Errorf("payment %d of %d: buyer or amount not the hold's", i+1, n)
		case z.payments[p.Hold] != nil:
			return fmt.Errorf("payment %d of %d: hold %q has two", i+1, n, p.Hold)
		}
		z.payments[p.Hold] = p
	}
	n = d.Uvarint()
	if d.Err() == nil && n > uint64(d.Len()/zoneSnapCancelBytesMin) {
		return fmt.Errorf("%d cancels in %d bytes", n, d.Len())
	}
	for i := range n {
		o, at := d.String(zoneKeyBytesMax), d.Varint()
		if err := d.Err(); err != nil {
			return fmt.Errorf("cancel %d of %d: %w", i+1, n, err)
		}
		h := z.orders[o]
		switch {
		case h == nil || h.OrderCancelled:
			return fmt.Errorf("cancel %d of %d: order %q unknown or cancelled", i+1, n, o)
		case at <= 0 || z.cancels[o] != 0:
			return fmt.Errorf("cancel %d of %d: order %q started at %d, or twice", i+1, n, o, at)
		}
		z.cancels[o] = at
	}
	return d.Err()
}
