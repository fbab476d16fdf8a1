package actors

import (
	"encoding/binary"
	"testing"

	"onsale/actors/seats"
)

// FuzzZoneSnapshotFile feeds the zone snapshot container (version, core
// length, core, stored refusals) arbitrary bytes: it must refuse garbage
// without panicking, and whatever it accepts must restore a consistent zone.
func FuzzZoneSnapshotFile(f *testing.F) {
	def := ZoneDef{ID: "vip", PriceCents: 100, Rows: []RowDef{{Row: "A", Seats: 4}, {Row: "B", Seats: 4}}}
	z := seats.NewZone("fuzz", def)
	core := z.AppendSnapshot(nil)
	valid := []byte{zoneSnapshotVersion}
	valid = binary.AppendUvarint(valid, uint64(len(core)))
	valid = append(valid, core...)
	valid = append(valid, `[{"b":"b1","s":1,"k":"k1","h":7,"t":1,"e":{"code":"seats_taken","message":"m"}}]`...)
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte{zoneSnapshotVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(append([]byte{zoneSnapshotVersion, 0}, "null"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		zh := &zoneHandle{def: &def}
		if err := zh.restore("fuzz", data); err != nil {
			return
		}
		free, held, sold := zh.core.Counts()
		if free+held+sold != zh.core.Size() {
			t.Fatalf("restored zone counts %d+%d+%d != %d seats", free, held, sold, zh.core.Size())
		}
	})
}
