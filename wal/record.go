package wal

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record framing; doc.go has the byte format.
const (
	recordVersion = 1 // the only version written and read so far

	recordOffVersion = 0
	recordOffType    = 1
	recordOffLength  = 2
	recordOffSeq     = 6
	recordOffCRC     = 14
	recordHeaderSize = 18 // version 1 + type 1 + length 4 + sequence 8 + CRC 4

	// recordBodyBytesMax holds the largest valid event (a 64 MiB blob plus
	// 2,000,000 seats at up to 5 bytes each) and bounds what one Append may
	// queue.
	recordBodyBytesMax = 80 << 20
)

// castagnoli is the CRC32C table; the standard library uses the CPU's CRC32
// instruction for it where there is one.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// zeroHeader reserves a header in front of a body without an allocation.
var zeroHeader [recordHeaderSize]byte

// AppendRecord appends the record of ev with sequence seq to dst: the header
// then the whole of ev.AppendBinary. ev must pass Validate; a body over
// recordBodyBytesMax is a broken invariant and panics.
func AppendRecord(dst []byte, seq uint64, ev *Event) []byte {
	start := len(dst)
	dst = appendUnsealed(dst, ev)
	sealRecord(dst[start:], seq)
	return dst
}

// appendUnsealed appends ev's record with the version, type and length
// filled in and the sequence and CRC left zero: Append encodes on the
// caller's goroutine, and only the writer knows the sequence.
func appendUnsealed(dst []byte, ev *Event) []byte {
	start := len(dst)
	dst = append(dst, zeroHeader[:]...)
	dst = ev.AppendBinary(dst)
	n := len(dst) - start - recordHeaderSize
	if n > recordBodyBytesMax {
		panic(fmt.Sprintf("wal: record body of %d bytes is over the %d byte limit; Validate should have refused the event", n, recordBodyBytesMax))
	}
	rec := dst[start:]
	rec[recordOffVersion] = recordVersion
	rec[recordOffType] = byte(ev.Type)
	binary.LittleEndian.PutUint32(rec[recordOffLength:], uint32(n))
	return dst
}

// sealRecord writes seq and the CRC into an unsealed record.
func sealRecord(rec []byte, seq uint64) {
	binary.LittleEndian.PutUint64(rec[recordOffSeq:], seq)
	binary.LittleEndian.PutUint32(rec[recordOffCRC:], recordCRC(rec))
}

// recordCRC is the CRC32C of the header bytes before the CRC field, then of
// the body.
func recordCRC(rec []byte) uint32 {
	c := crc32.Update(0, castagnoli, rec[:recordOffCRC])
	return crc32.Update(c, castagnoli, rec[recordHeaderSize:])
}

// DecodeRecord decodes one record written by AppendRecord. It checks the
// frame (version, length, CRC, type) before it decodes the body. The event
// does not share memory with b.
func DecodeRecord(b []byte) (seq uint64, ev Event, err error) {
	seq, body, err := checkRecord(b)
	if err != nil {
		return 0, Event{}, err
	}
	if err := ev.UnmarshalBinary(body); err != nil {
		return 0, Event{}, fmt.Errorf("wal: record %d: %w", seq, err)
	}
	return seq, ev, nil
}

// checkRecord checks a record's frame and returns its sequence and body
// without decoding the body. Replay and the tail repair use it alone where
// the event is not needed.
func checkRecord(b []byte) (seq uint64, body []byte, err error) {
	if len(b) < recordHeaderSize {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrRecordShort, len(b))
	}
	if b[recordOffVersion] != recordVersion {
		return 0, nil, fmt.Errorf("%w: %d", ErrRecordVersion, b[recordOffVersion])
	}
	n := binary.LittleEndian.Uint32(b[recordOffLength:])
	if n > recordBodyBytesMax {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrRecordTooLarge, n)
	}
	if uint64(n) != uint64(len(b)-recordHeaderSize) {
		return 0, nil, fmt.Errorf("%w: header says %d body bytes, frame holds %d", ErrRecordLength, n, len(b)-recordHeaderSize)
	}
	if got, want := recordCRC(b), binary.LittleEndian.Uint32(b[recordOffCRC:]); got != want {
		return 0, nil, fmt.Errorf("%w: computed %08x, stored %08x", ErrRecordChecksum, got, want)
	}
	body = b[recordHeaderSize:]
	if len(body) == 0 || body[0] != b[recordOffType] {
		// The CRC passed, so the writer itself framed a body of another
		// type: a bug, not damage.
		return 0, nil, fmt.Errorf("%w: header %d", ErrRecordType, b[recordOffType])
	}
	return binary.LittleEndian.Uint64(b[recordOffSeq:]), body, nil
}
