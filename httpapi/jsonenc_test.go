package httpapi

import (
	"encoding/json"
	"testing"
)

// FuzzAppendJSONString: the hand-written string encoder writes exactly what
// encoding/json writes.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "h_abc", `q"uo\te`, "\x00\x01\b\f\n\r\t\x1f", "<a>&", "é€𝄞", "\u2028\u2029", "\xff\xfe", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, encoding/json writes %s", s, got, want)
		}
	})
}

// TestHoldAppendJSON: the hand-written hold body equals encoding/json's.
func TestHoldAppendJSON(t *testing.T) {
	for _, h := range []holdJSON{
		{HoldID: "h_x", Sale: "s", Zone: "vip", Seats: []string{"A-1", "A-2"}, State: "active", ExpiresAt: "2026-12-01T10:00:00.000Z", ExpiresInS: 600, Amount: 50000},
		{HoldID: "h_y", Sale: "s.2", Zone: "ga", Seats: []string{}, State: "purchased", ExpiresAt: "x", OrderID: "o_z"},
		{HoldID: "h_z", Sale: "s", Zone: "ga", Seats: nil, State: "released"},
	} {
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if h.Seats == nil {
			// encoding/json writes null for a nil slice; the hand-written
			// encoder always writes a list, as API.md's seats field is one.
			want = []byte(`{"hold_id":"h_z","sale":"s","zone":"ga","seats":[],"state":"released","expires_at":"","expires_in_s":0,"amount_cents":0}`)
		}
		if got := h.appendJSON(nil); string(got) != string(want)+"\n" {
			t.Fatalf("appendJSON:\n got %s\nwant %s", got, want)
		}
	}
}
