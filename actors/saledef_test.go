package actors

import (
	"regexp"
	"strings"
	"testing"

	"onsale/actors/line"
)

// TestNormalizeRoomRanges: the waiting room's ranges are checked once, by
// Normalize, against the room's own limits. Every definition it accepts at
// the edges makes a room that line.New accepts (it panics otherwise), and one
// past an edge is refused with the field's name.
func TestNormalizeRoomRanges(t *testing.T) {
	def := func(w WaitingRoomDef) SaleDef {
		return SaleDef{ID: "s", WaitingRoom: w, Zones: []ZoneDef{{ID: "ga", Capacity: 10}}}
	}
	for _, w := range []WaitingRoomDef{
		{ActiveLimit: 1, AdmitPerS: 0, AccessTTLS: 1},
		{ActiveLimit: line.ActiveLimitMax, AdmitPerS: line.AdmitPerSMax, AccessTTLS: line.AccessTTLMax / 1000},
		{}, // defaults
	} {
		d := def(w)
		if err := d.Normalize(testBase); err != nil {
			t.Fatalf("%+v: %v", w, err)
		}
		line.New(d.ID, roomConfigOf(d.WaitingRoom, testBase.UnixMilli(), [32]byte{}))
	}
	for _, c := range []struct {
		w     WaitingRoomDef
		field string
	}{
		{WaitingRoomDef{ActiveLimit: line.ActiveLimitMax + 1}, "waiting_room.active_limit"},
		{WaitingRoomDef{ActiveLimit: -1}, "waiting_room.active_limit"},
		{WaitingRoomDef{AdmitPerS: line.AdmitPerSMax + 1}, "waiting_room.admit_per_s"},
		{WaitingRoomDef{AdmitPerS: -1}, "waiting_room.admit_per_s"},
		{WaitingRoomDef{AccessTTLS: line.AccessTTLMax/1000 + 1}, "waiting_room.access_ttl_s"},
		{WaitingRoomDef{AccessTTLS: -1}, "waiting_room.access_ttl_s"},
	} {
		d := def(c.w)
		err := d.Normalize(testBase)
		requireTrue(t, err != nil && err.Code == CodeBadRequest && strings.HasPrefix(err.Message, c.field),
			"%+v: %v", c.w, err)
	}
}

// TestNormalizeRefusesControlCharacters: a display name with a C0 control,
// DEL or a C1 control is refused with the field's name; other text,
// accents and emoji included, is kept as given.
func TestNormalizeRefusesControlCharacters(t *testing.T) {
	def := func(saleName, zoneName string) SaleDef {
		return SaleDef{ID: "s", Name: saleName, Zones: []ZoneDef{{ID: "ga", Name: zoneName, Capacity: 10}}}
	}
	for _, c := range []struct {
		sale, zone string
		field      string // "" for accepted
	}{
		{"Cup Final", "Tribune Nord", ""},
		{"Finale — Coupe d’Été 🏆", "Zone «A»", ""},
		{"Cup\x00Final", "ga", "name"},
		{"Cup\nFinal", "ga", "name"},
		{"Cup\tFinal", "ga", "name"},
		{"\x1b[31mred", "ga", "name"},
		{"Cup\x1fFinal", "ga", "name"},
		{"Cup\x7fFinal", "ga", "name"},
		{"Cup\u0080Final", "ga", "name"},
		{"Cup\u009bFinal", "ga", "name"},
		{"Cup\u00a0Final", "ga", ""}, // no-break space: just after C1
		{"Cup Final", "Stand\rA", "zones[0].name"},
		{"Cup Final", "Stand\u0085A", "zones[0].name"},
	} {
		d := def(c.sale, c.zone)
		err := d.Normalize(testBase)
		if c.field == "" {
			requireTrue(t, err == nil, "%q/%q: %v", c.sale, c.zone, err)
			requireEqual(t, d.Name, c.sale, "sale name kept")
			requireEqual(t, d.Zones[0].Name, c.zone, "zone name kept")
			continue
		}
		requireTrue(t, err != nil && err.Code == CodeBadRequest &&
			err.Message == c.field+": must not contain control characters", "%q/%q: %v", c.sale, c.zone, err)
	}
}

// TestValidIDMatchesPattern holds the hand-written ValidID to the pattern
// API.md gives, on every short string over a telling alphabet.
func TestValidIDMatchesPattern(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	alphabet := []byte("aZ09._-/ é\x00")
	var check func(prefix []byte, depth int)
	check = func(prefix []byte, depth int) {
		if got, want := ValidID(string(prefix)), re.MatchString(string(prefix)); got != want {
			t.Fatalf("ValidID(%q) = %v, the pattern says %v", prefix, got, want)
		}
		if depth == 0 {
			return
		}
		for _, c := range alphabet {
			check(append(prefix, c), depth-1)
		}
	}
	check(nil, 3)
	for _, s := range []string{strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63)} {
		if ValidID(s) != re.MatchString(s) {
			t.Fatalf("ValidID(%d bytes) disagrees with the pattern", len(s))
		}
	}
}
