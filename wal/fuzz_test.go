package wal

import (
	"bytes"
	"testing"
)

func FuzzDecodeRecord(f *testing.F) {
	full := fullEvent()
	f.Add(AppendRecord(nil, 1, &full))
	for ty := Type(1); ty <= typeMax; ty++ {
		ev := Event{Type: ty, Sale: "s", At: int64(ty)}
		f.Add(AppendRecord(nil, uint64(ty)*1000, &ev))
	}
	h := holdEvent(12345)
	rec := AppendRecord(nil, 99, &h)
	f.Add(rec)
	f.Add(rec[:len(rec)-3])
	f.Add(rec[:recordHeaderSize])
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, ev, err := DecodeRecord(b)
		if err != nil {
			return
		}
		if again := AppendRecord(nil, seq, &ev); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v (seq %d) re-encodes to\n%x\nnot\n%x", ev, seq, again, b)
		}
	})
}

func FuzzEventUnmarshal(f *testing.F) {
	full := fullEvent()
	f.Add(full.AppendBinary(nil))
	for ty := Type(0); ty <= typeMax+1; ty++ {
		ev := Event{Type: ty, Seats: []uint32{5, 2, 9}, Blob: []byte{0}}
		f.Add(ev.AppendBinary(nil))
	}
	h := holdEvent(7)
	b := h.AppendBinary(nil)
	f.Add(b[:len(b)/2])
	f.Add(append(b, 0))
	f.Add([]byte{byte(TypeMarker), 0, 0, 0, 0, 0, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev Event
		if err := ev.UnmarshalBinary(b); err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("decoded event fails Validate: %v", err)
		}
		if again := ev.AppendBinary(nil); !bytes.Equal(again, b) {
			t.Fatalf("decoded %+v re-encodes to\n%x\nnot\n%x", ev, again, b)
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	for _, data := range [][]byte{nil, []byte("state"), bytes.Repeat([]byte{0xab}, 300)} {
		f.Add(append(snapshotHeader(42, data), data...))
	}
	f.Add([]byte("OSNP"))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, data, err := decodeSnapshot(b, "fuzz.snap")
		if err != nil {
			return
		}
		if again := append(snapshotHeader(seq, data), data...); !bytes.Equal(again, b) {
			t.Fatalf("snapshot re-encodes to\n%x\nnot\n%x", again, b)
		}
	})
}
