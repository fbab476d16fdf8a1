package wal

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// fullEvent sets every field of Event.
func fullEvent() Event {
	return Event{
		Type:     TypeIdemResult,
		Sale:     "sale-1",
		Zone:     "zone-b",
		Hold:     "hold-7",
		Order:    "order-3",
		Buyer:    "buyer-42",
		Seats:    []uint32{9, 3, 1 << 31, 0, 4294967295, 17},
		At:       -1767225600000,
		Expires:  1767225660000,
		Amount:   -125,
		IdemKey:  "key-\x00-\xff",
		IdemHash: 1<<64 - 1,
		Num:      1 << 63,
		Blob:     []byte("{\"id\":\"sale-1\"}"),
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := testRand(t)
	cases := map[string]Event{"full": fullEvent()}
	for ty := Type(1); ty <= typeMax; ty++ {
		cases["empty "+ty.String()] = Event{Type: ty}
	}
	for i := range 200 {
		cases[fmt.Sprintf("random %d", i)] = randEvent(r)
	}
	for name, ev := range cases {
		seq := uint64(len(name)) * 1e9
		rec := AppendRecord([]byte("prefix"), seq, &ev)
		requireEqual(t, string(rec[:6]), "prefix", name+": dst kept")
		gotSeq, got, err := DecodeRecord(rec[6:])
		requireNoErr(t, err)
		requireEqual(t, gotSeq, seq, name+": sequence")
		requireEvent(t, &got, &ev, name)
		requireEqual(t, string(AppendRecord(nil, gotSeq, &got)), string(rec[6:]), name+": re-encoded")
	}
}

// TestEventEveryField changes one field at a time, so that a field the
// encoder forgets cannot hide behind the others.
func TestEventEveryField(t *testing.T) {
	full := fullEvent()
	set := map[string]func(e *Event){
		"Sale":     func(e *Event) { e.Sale = full.Sale },
		"Zone":     func(e *Event) { e.Zone = full.Zone },
		"Hold":     func(e *Event) { e.Hold = full.Hold },
		"Order":    func(e *Event) { e.Order = full.Order },
		"Buyer":    func(e *Event) { e.Buyer = full.Buyer },
		"Seats":    func(e *Event) { e.Seats = full.Seats },
		"At":       func(e *Event) { e.At = full.At },
		"Expires":  func(e *Event) { e.Expires = full.Expires },
		"Amount":   func(e *Event) { e.Amount = full.Amount },
		"IdemKey":  func(e *Event) { e.IdemKey = full.IdemKey },
		"IdemHash": func(e *Event) { e.IdemHash = full.IdemHash },
		"Num":      func(e *Event) { e.Num = full.Num },
		"Blob":     func(e *Event) { e.Blob = full.Blob },
	}
	for name, f := range set {
		ev := Event{Type: TypeMarker}
		f(&ev)
		var got Event
		requireNoErr(t, got.UnmarshalBinary(ev.AppendBinary(nil)))
		requireEvent(t, &got, &ev, name)
	}
}

func TestDecodeRecordRejectsDamage(t *testing.T) {
	ev := fullEvent()
	rec := AppendRecord(nil, 77, &ev)

	// Every single bit flipped, every byte zeroed.
	for i := range rec {
		for bit := range 8 {
			b := append([]byte(nil), rec...)
			b[i] ^= 1 << bit
			if _, _, err := DecodeRecord(b); err == nil {
				t.Fatalf("bit %d of byte %d flipped: decoded without error", bit, i)
			}
		}
		if rec[i] != 0 {
			b := append([]byte(nil), rec...)
			b[i] = 0
			if _, _, err := DecodeRecord(b); err == nil {
				t.Fatalf("byte %d zeroed: decoded without error", i)
			}
		}
	}
	// Every truncation, and a trailing byte.
	for n := range len(rec) {
		if _, _, err := DecodeRecord(rec[:n]); err == nil {
			t.Fatalf("cut to %d of %d bytes: decoded without error", n, len(rec))
		}
	}
	if _, _, err := DecodeRecord(append(append([]byte(nil), rec...), 0)); err == nil {
		t.Fatal("trailing byte: decoded without error")
	}

	// Each check has its own error.
	reseal := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[recordOffCRC:], recordCRC(b))
		return b
	}
	cases := []struct {
		name string
		rec  func() []byte
		want error
	}{
		{"short", func() []byte { return rec[:recordHeaderSize-1] }, ErrRecordShort},
		{"version", func() []byte {
			b := append([]byte(nil), rec...)
			b[recordOffVersion] = 2
			return reseal(b)
		}, ErrRecordVersion},
		{"length", func() []byte { return rec[:len(rec)-1] }, ErrRecordLength},
		{"too large", func() []byte {
			b := append([]byte(nil), rec...)
			binary.LittleEndian.PutUint32(b[recordOffLength:], recordBodyBytesMax+1)
			return b
		}, ErrRecordTooLarge},
		{"checksum", func() []byte {
			b := append([]byte(nil), rec...)
			b[len(b)-1] ^= 0x40
			return b
		}, ErrRecordChecksum},
		{"type", func() []byte {
			b := append([]byte(nil), rec...)
			b[recordOffType] = byte(TypeHoldPlaced)
			return reseal(b)
		}, ErrRecordType},
		{"empty body", func() []byte {
			b := append([]byte(nil), rec[:recordHeaderSize]...)
			binary.LittleEndian.PutUint32(b[recordOffLength:], 0)
			return reseal(b)
		}, ErrRecordType},
		{"body", func() []byte {
			b := append([]byte(nil), rec...)
			b = append(b, 1) // a trailing byte in the body, sealed
			binary.LittleEndian.PutUint32(b[recordOffLength:], uint32(len(b)-recordHeaderSize))
			return reseal(b)
		}, ErrEventTrailing},
	}
	for _, c := range cases {
		_, _, err := DecodeRecord(c.rec())
		if err == nil || !strings.Contains(err.Error(), c.want.Error()) {
			t.Fatalf("%s: error %v, want %v", c.name, err, c.want)
		}
		requireErrIs(t, err, c.want)
	}
}

func TestEventRejectsLongVarints(t *testing.T) {
	// Type marker, five empty strings, then a seat count of 0 written in two
	// bytes instead of one.
	b := []byte{byte(TypeMarker), 0, 0, 0, 0, 0, 0x80, 0x00}
	var ev Event
	requireErrIs(t, ev.UnmarshalBinary(b), ErrEventVarint)
	// More than 64 bits.
	b = []byte{byte(TypeMarker), 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	requireErrIs(t, ev.UnmarshalBinary(b), ErrEventVarint)
}

func TestEventValidate(t *testing.T) {
	ok := fullEvent()
	requireNoErr(t, ok.Validate())
	cases := []struct {
		name string
		ev   Event
		want error
	}{
		{"no type", Event{}, ErrEventType},
		{"unknown type", Event{Type: typeMax + 1}, ErrEventType},
		{"long string", Event{Type: TypeMarker, IdemKey: strings.Repeat("k", eventStringBytesMax+1)}, ErrEventBounds},
		{"too many seats", Event{Type: TypeHoldPlaced, Seats: make([]uint32, eventSeatsMax+1)}, ErrEventBounds},
		{"large blob", Event{Type: TypeSaleCreated, Blob: make([]byte, eventBlobBytesMax+1)}, ErrEventBounds},
	}
	for _, c := range cases {
		err := c.ev.Validate()
		requireErrIs(t, err, c.want)
		// What Validate refuses, the decoder refuses too.
		var got Event
		if c.ev.Type != 0 && c.ev.Type <= typeMax {
			requireErrIs(t, got.UnmarshalBinary(c.ev.AppendBinary(nil)), c.want)
		}
	}
	// The largest valid event fits a record.
	big := Event{Type: TypeQueueDrawn, Seats: make([]uint32, eventSeatsMax), Blob: make([]byte, eventBlobBytesMax)}
	for i := range big.Seats {
		big.Seats[i] = uint32(i) * 2000 // deltas of 3 bytes
	}
	requireNoErr(t, big.Validate())
	rec := AppendRecord(nil, 1, &big)
	_, got, err := DecodeRecord(rec)
	requireNoErr(t, err)
	requireEqual(t, len(got.Blob), eventBlobBytesMax, "blob length")
}

// The payment records carry the fields their constants list; each must come
// back as written, or recovery would finish the wrong payment.
func TestRecordPaymentTypes(t *testing.T) {
	cases := map[string]Event{
		"payment_started": {Type: TypePaymentStarted, Sale: "s1", Zone: "ga", Hold: "h1", Order: "o1", Buyer: "b1",
			At: 1_700_000_000_000, Amount: 12_500, IdemKey: "idem-1", IdemHash: 1<<64 - 1},
		"payment_failed":   {Type: TypePaymentFailed, Sale: "s1", Zone: "ga", Hold: "h1", Order: "o1", At: 1_700_000_000_001},
		"payment_refunded": {Type: TypePaymentRefunded, Sale: "s1", Zone: "ga", Hold: "h1", Order: "o1", At: 1_700_000_000_002},
		"cancel_started":   {Type: TypeCancelStarted, Sale: "s1", Zone: "ga", Hold: "h1", Order: "o1", At: 1_700_000_000_003},
	}
	for name, ev := range cases {
		requireEqual(t, ev.Type.String(), name, "name")
		requireNoErr(t, ev.Validate())
		rec := AppendRecord(nil, 42, &ev)
		seq, got, err := DecodeRecord(rec)
		requireNoErr(t, err)
		requireEqual(t, seq, uint64(42), name+": sequence")
		requireEvent(t, &got, &ev, name)
	}
}
