package wal

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestFieldReaderRoundTrip(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = binary.AppendUvarint(b, 1<<40)
	b = binary.AppendVarint(b, -12345)
	b = AppendString(b, "hello")
	b = AppendString(b, "")
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(2.5))
	b = AppendString(b, "blob")
	b = append(b, 0xEE) // left for Len

	d := NewFieldReader(b)
	requireEqual(t, d.Byte(), 7, "byte")
	requireEqual(t, d.Uvarint(), 1<<40, "uvarint")
	requireEqual(t, d.Varint(), -12345, "varint")
	requireEqual(t, d.String(5), "hello", "string")
	requireEqual(t, d.String(5), "", "empty string")
	requireEqual(t, d.Float64(), 2.5, "float")
	blob := d.Bytes(4)
	requireEqual(t, string(blob), "blob", "bytes")
	requireNoErr(t, d.Err())
	requireEqual(t, d.Len(), 1, "bytes left")
	blob[0] = 'X'
	requireEqual(t, string(b[len(b)-5:len(b)-1]), "blob", "Bytes copies")
}

func TestFieldReaderDamage(t *testing.T) {
	long := []byte{0x80, 0x00}                                                 // 0 in two bytes
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f} // over 64 bits
	cases := []struct {
		name  string
		b     []byte
		read  func(d *FieldReader)
		event error // from a reader with the event rules; nil: accepted
		snap  bool  // a lenient reader refuses it too
	}{
		{"empty byte", nil, func(d *FieldReader) { d.Byte() }, ErrEventShort, true},
		{"cut uvarint", []byte{0x80}, func(d *FieldReader) { d.Uvarint() }, ErrEventShort, true},
		{"cut varint", []byte{0x80}, func(d *FieldReader) { d.Varint() }, ErrEventShort, true},
		{"huge uvarint", huge, func(d *FieldReader) { d.Uvarint() }, ErrEventVarint, true},
		{"huge varint", huge, func(d *FieldReader) { d.Varint() }, ErrEventVarint, true},
		{"long uvarint", long, func(d *FieldReader) { d.Uvarint() }, ErrEventVarint, false},
		{"long varint", long, func(d *FieldReader) { d.Varint() }, ErrEventVarint, false},
		{"long string length", []byte{0x81, 0x00, 'a'}, func(d *FieldReader) { d.String(5) }, ErrEventVarint, false},
		{"string over max", AppendString(nil, "abcdef"), func(d *FieldReader) { d.String(5) }, ErrEventBounds, true},
		{"bytes over max", AppendString(nil, "abcdef"), func(d *FieldReader) { d.Bytes(5) }, ErrEventBounds, true},
		{"cut string", AppendString(nil, "abcdef")[:4], func(d *FieldReader) { d.String(10) }, ErrEventShort, true},
		{"cut bytes", AppendString(nil, "abcdef")[:4], func(d *FieldReader) { d.Bytes(10) }, ErrEventShort, true},
		{"cut float", make([]byte, 7), func(d *FieldReader) { d.Float64() }, ErrEventShort, true},
	}
	for _, c := range cases {
		strict := FieldReader{b: c.b, rules: &eventRules}
		c.read(&strict)
		requireErrIs(t, strict.Err(), c.event)

		lenient := NewFieldReader(c.b)
		c.read(&lenient)
		requireTrue(t, (lenient.Err() != nil) == c.snap, "%s: lenient reader gives %v", c.name, lenient.Err())

		// After an error every read gives a zero value and the first error
		// stays.
		first := strict.Err()
		requireEqual(t, strict.Byte(), 0, c.name+": byte after an error")
		requireEqual(t, strict.Uvarint(), 0, c.name+": uvarint after an error")
		requireEqual(t, strict.String(100), "", c.name+": string after an error")
		strict.Failf("later")
		requireEqual(t, strict.Err(), first, c.name+": first error")
	}

	// The zero value reads nothing and does not panic.
	var zero FieldReader
	zero.Varint()
	requireTrue(t, zero.Err() != nil, "zero FieldReader reads a varint")
}
