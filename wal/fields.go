package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// FieldReader reads the fields of a binary format in order and keeps the
// first error: after an error every read returns a zero value, so a decoder
// reads a run of fields and checks Err once. It is the reader side of the
// encodings our formats share: uvarints, zigzag varints (encoding/binary),
// strings and byte slices as a uvarint length then the bytes (AppendString),
// floats as 8 bytes of IEEE 754 bits, little-endian.
//
// NewFieldReader gives a lenient reader that reports damage with errors of
// its own; the event decoder uses a strict one (see fieldRules). A
// FieldReader is not safe for concurrent use.
type FieldReader struct {
	b     []byte
	err   error
	rules *fieldRules // nil: lenientRules
}

// fieldRules say what a FieldReader reports for each kind of damage and
// whether it refuses varints that are not in their shortest form.
type fieldRules struct {
	short  error // the input ends inside a field
	varint error // a varint of more than 64 bits, or a long form (minimal)
	bounds error // a length over the caller's limit
	// minimal refuses a longer form of a shorter number: for a format that
	// must have exactly one encoding of each value.
	minimal bool
}

// Errors of a lenient FieldReader. They are not sentinels of the package:
// the snapshot decoders that use one wrap whatever it returns in their own.
var (
	errFieldShort  = errors.New("ends early")
	errFieldVarint = errors.New("malformed varint")
	errFieldBounds = errors.New("field over its limit")
)

var (
	lenientRules = fieldRules{short: errFieldShort, varint: errFieldVarint, bounds: errFieldBounds}
	eventRules   = fieldRules{short: ErrEventShort, varint: ErrEventVarint, bounds: ErrEventBounds, minimal: true}
)

// NewFieldReader returns a reader of b. It accepts a varint in any form
// encoding/binary reads, and reports damage with errors that say what is
// wrong but are not meant for errors.Is. It does not copy b; String and
// Bytes return copies.
func NewFieldReader(b []byte) FieldReader {
	return FieldReader{b: b, rules: &lenientRules}
}

func (r *FieldReader) rule() *fieldRules {
	if r.rules == nil {
		return &lenientRules
	}
	return r.rules
}

// Fail records err unless an error is already recorded.
func (r *FieldReader) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// Failf records fmt.Errorf(format, args...) unless an error is already
// recorded.
func (r *FieldReader) Failf(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// Err returns the first error recorded, or nil.
func (r *FieldReader) Err() error { return r.err }

// Len returns how many bytes are left unread: for trailing-byte checks, and
// to refuse a count that the rest of the input cannot fill before
// allocating for it.
func (r *FieldReader) Len() int { return len(r.b) }

// Byte reads one byte.
func (r *FieldReader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.Fail(r.rule().short)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (r *FieldReader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if !r.skipVarint(n) {
		return 0
	}
	return v
}

// Varint reads a zigzag varint.
func (r *FieldReader) Varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if !r.skipVarint(n) {
		return 0
	}
	return v
}

// skipVarint moves past a varint whose length n binary.Uvarint or
// binary.Varint reported, or records why it cannot and returns false.
func (r *FieldReader) skipVarint(n int) bool {
	rules := r.rule()
	switch {
	case n == 0:
		r.Fail(rules.short)
		return false
	case n < 0:
		r.Fail(rules.varint) // more than 64 bits
		return false
	case rules.minimal && n > 1 && r.b[n-1] == 0:
		// A longer form of a shorter number: the encoder never writes it,
		// and accepting it would give one value two encodings.
		r.Fail(rules.varint)
		return false
	}
	r.b = r.b[n:]
	return true
}

// Float64 reads 8 bytes of IEEE 754 bits, little-endian.
func (r *FieldReader) Float64() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.Fail(r.rule().short)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// Bytes reads a uvarint length of at most max, then that many bytes, and
// returns a copy of them; nil for none.
func (r *FieldReader) Bytes(max int) []byte {
	n, ok := r.length(max)
	if !ok || n == 0 {
		return nil
	}
	out := make([]byte, n)
	copy(out, r.b[:n])
	r.b = r.b[n:]
	return out
}

// String reads a uvarint length of at most max, then that many bytes.
func (r *FieldReader) String(max int) string {
	n, ok := r.length(max)
	if !ok {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// length reads the length of a string or byte slice and checks it against
// max and against the bytes left.
func (r *FieldReader) length(max int) (int, bool) {
	n := r.Uvarint()
	if r.err != nil {
		return 0, false
	}
	if n > uint64(max) {
		r.Fail(fmt.Errorf("%w: a length of %d bytes (max %d)", r.rule().bounds, n, max))
		return 0, false
	}
	if n > uint64(len(r.b)) {
		r.Fail(r.rule().short)
		return 0, false
	}
	return int(n), true
}

// AppendString appends s as FieldReader.String reads it: a uvarint length,
// then the bytes.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}
