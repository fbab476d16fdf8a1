package wal

import (
	"encoding/binary"
	"fmt"
)

// Type names what an event records. The numbers are written to disk: never
// renumber one, only add.
type Type uint8

const (
	TypeSaleCreated    Type = 1  // Blob: the sale definition (JSON); Num: unused
	TypeHoldPlaced     Type = 2  // Sale, Zone, Hold, Buyer, Seats, At, Expires, Amount, IdemKey, IdemHash
	TypeHoldReleased   Type = 3  // Sale, Zone, Hold, At
	TypeHoldExpired    Type = 4  // Sale, Zone, Hold, At
	TypeOrderPaid      Type = 5  // Sale, Zone, Hold, Order, At, Amount, IdemKey, IdemHash
	TypeOrderCancelled Type = 6  // Sale, Zone, Hold, Order, At
	TypeIdemResult     Type = 7  // Sale, Zone, Buyer, IdemKey, IdemHash, Num (scope), At, Blob (stored answer)
	TypeQueueJoined    Type = 8  // Sale, Buyer, Hold (queue id), Num (ticket number, 0 before the draw), At
	TypeQueueAdmitted  Type = 9  // Sale, Blob (list of queue ids), At, Expires (access expiry)
	TypeQueueLeft      Type = 10 // Sale, Hold (queue id), At
	TypeSalePaused     Type = 11 // Sale, At
	TypeSaleResumed    Type = 12 // Sale, At
	TypeQueueDrawn     Type = 13 // Sale, At, Blob (drawn order of queue ids)
	TypeQueueDone      Type = 14 // Sale, Hold (queue id), At: the buyer completed a checkout
	TypeMarker         Type = 15 // no state change: a snapshot barrier
	// Money is recorded before it moves (DESIGN.md, Payments): an attempt
	// is durable before the gateway is charged, and one of order_paid,
	// payment_failed or payment_refunded closes it; a cancel's intent is
	// durable before the refund, and order_cancelled closes it.
	TypePaymentStarted  Type = 16 // Sale, Zone, Hold, Order, Buyer, At, Amount, IdemKey, IdemHash
	TypePaymentFailed   Type = 17 // Sale, Zone, Hold, Order, At: no money was taken
	TypePaymentRefunded Type = 18 // Sale, Zone, Hold, Order, At: the money was taken and given back
	TypeCancelStarted   Type = 19 // Sale, Zone, Hold, Order, At: the order's refund may be under way
	typeMax             Type = 19
)

func (t Type) String() string {
	switch t {
	case TypeSaleCreated:
		return "sale_created"
	case TypeHoldPlaced:
		return "hold_placed"
	case TypeHoldReleased:
		return "hold_released"
	case TypeHoldExpired:
		return "hold_expired"
	case TypeOrderPaid:
		return "order_paid"
	case TypeOrderCancelled:
		return "order_cancelled"
	case TypeIdemResult:
		return "idem_result"
	case TypeQueueJoined:
		return "queue_joined"
	case TypeQueueAdmitted:
		return "queue_admitted"
	case TypeQueueLeft:
		return "queue_left"
	case TypeSalePaused:
		return "sale_paused"
	case TypeSaleResumed:
		return "sale_resumed"
	case TypeQueueDrawn:
		return "queue_drawn"
	case TypeQueueDone:
		return "queue_done"
	case TypeMarker:
		return "marker"
	case TypePaymentStarted:
		return "payment_started"
	case TypePaymentFailed:
		return "payment_failed"
	case TypePaymentRefunded:
		return "payment_refunded"
	case TypeCancelStarted:
		return "cancel_started"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Event is one state change of a sale. It is a flat union: each type uses the
// fields listed beside its constant and leaves the others zero. Times are Unix
// milliseconds.
type Event struct {
	Type     Type
	Sale     string
	Zone     string
	Hold     string // hold id, or queue id for queue events
	Order    string
	Buyer    string
	Seats    []uint32 // seat indexes within the zone
	At       int64
	Expires  int64
	Amount   int64 // cents
	IdemKey  string
	IdemHash uint64
	Num      uint64
	Blob     []byte
}

// Limits of a decoded event body. They bound what a corrupt or hostile record
// can make the decoder allocate.
const (
	eventStringBytesMax = 1 << 10  // ids and keys are at most 128 bytes; 1 KiB is generous
	eventSeatsMax       = 1 << 21  // a sale has at most 2,000,000 seats
	eventBlobBytesMax   = 64 << 20 // a drawn order of 1,000,000 queue ids fits
)

// Validate reports whether e can be written and read back: a known type and
// every field within the limits that UnmarshalBinary enforces. A log record
// that the decoder refuses would stop every later replay, so Log.Append
// checks this before it queues anything.
func (e *Event) Validate() error {
	if e.Type == 0 || e.Type > typeMax {
		return fmt.Errorf("%w: %d", ErrEventType, uint8(e.Type))
	}
	for _, s := range [...]string{e.Sale, e.Zone, e.Hold, e.Order, e.Buyer, e.IdemKey} {
		if len(s) > eventStringBytesMax {
			return fmt.Errorf("%w: a string of %d bytes (max %d)", ErrEventBounds, len(s), eventStringBytesMax)
		}
	}
	if len(e.Seats) > eventSeatsMax {
		return fmt.Errorf("%w: %d seats (max %d)", ErrEventBounds, len(e.Seats), eventSeatsMax)
	}
	if len(e.Blob) > eventBlobBytesMax {
		return fmt.Errorf("%w: a blob of %d bytes (max %d)", ErrEventBounds, len(e.Blob), eventBlobBytesMax)
	}
	return nil
}

// AppendBinary appends the compact body encoding of e to dst: the type byte,
// then every field in declaration order, strings and blobs as uvarint length
// plus bytes, numbers as uvarints (signed ones zigzag), seats as a uvarint
// count plus uvarint deltas from the previous seat.
func (e *Event) AppendBinary(dst []byte) []byte {
	dst = append(dst, byte(e.Type))
	dst = AppendString(dst, e.Sale)
	dst = AppendString(dst, e.Zone)
	dst = AppendString(dst, e.Hold)
	dst = AppendString(dst, e.Order)
	dst = AppendString(dst, e.Buyer)
	dst = binary.AppendUvarint(dst, uint64(len(e.Seats)))
	var prev uint32
	for i, s := range e.Seats {
		if i == 0 {
			dst = binary.AppendUvarint(dst, uint64(s))
		} else {
			// Zigzag so that unsorted seat lists still encode.
			dst = binary.AppendVarint(dst, int64(s)-int64(prev))
		}
		prev = s
	}
	dst = binary.AppendVarint(dst, e.At)
	dst = binary.AppendVarint(dst, e.Expires)
	dst = binary.AppendVarint(dst, e.Amount)
	dst = AppendString(dst, e.IdemKey)
	dst = binary.AppendUvarint(dst, e.IdemHash)
	dst = binary.AppendUvarint(dst, e.Num)
	dst = binary.AppendUvarint(dst, uint64(len(e.Blob)))
	dst = append(dst, e.Blob...)
	return dst
}

// UnmarshalBinary decodes a body written by AppendBinary into e. It copies
// out of b, so b may be reused afterwards. Damage gives ErrEventShort,
// ErrEventVarint (a varint not in its shortest form included), ErrEventBounds,
// ErrEventType or ErrEventTrailing.
func (e *Event) UnmarshalBinary(b []byte) error {
	d := FieldReader{b: b, rules: &eventRules}
	*e = Event{}
	t := d.Byte()
	if d.Err() == nil && (t == 0 || Type(t) > typeMax) {
		return fmt.Errorf("%w: %d", ErrEventType, t)
	}
	e.Type = Type(t)
	e.Sale = d.String(eventStringBytesMax)
	e.Zone = d.String(eventStringBytesMax)
	e.Hold = d.String(eventStringBytesMax)
	e.Order = d.String(eventStringBytesMax)
	e.Buyer = d.String(eventStringBytesMax)
	n := d.Uvarint()
	if d.Err() == nil && n > eventSeatsMax {
		d.Fail(ErrEventBounds)
	}
	if d.Err() == nil && n > 0 {
		if n > uint64(d.Len()) { // each seat takes at least one byte
			d.Fail(ErrEventShort)
		} else {
			e.Seats = make([]uint32, n)
			var prev int64
			for i := range e.Seats {
				var v int64
				if i == 0 {
					v = int64(d.Uvarint())
				} else {
					v = prev + d.Varint()
				}
				if v < 0 || v > 1<<32-1 {
					d.Fail(ErrEventBounds)
				}
				e.Seats[i] = uint32(v)
				prev = v
			}
		}
	}
	e.At = d.Varint()
	e.Expires = d.Varint()
	e.Amount = d.Varint()
	e.IdemKey = d.String(eventStringBytesMax)
	e.IdemHash = d.Uvarint()
	e.Num = d.Uvarint()
	e.Blob = d.Bytes(eventBlobBytesMax)
	if err := d.Err(); err != nil {
		return err
	}
	if d.Len() != 0 {
		return ErrEventTrailing
	}
	return nil
}
