package actors

import (
	"strings"
	"testing"
	"time"

	"onsale/actors/seats"
	"onsale/wal"
)

// TestSeatCodesAreTheAPIs: the seat core's refusal codes are passed through
// as they are, so each must be the API's code of the same name.
func TestSeatCodesAreTheAPIs(t *testing.T) {
	pairs := []struct{ core, api string }{
		{seats.CodeBadRequest, CodeBadRequest},
		{seats.CodeNotFound, CodeNotFound},
		{seats.CodeSeatsTaken, CodeSeatsTaken},
		{seats.CodeSoldOut, CodeSoldOut},
		{seats.CodeLimitExceeded, CodeLimitExceeded},
		{seats.CodeSalePaused, CodeSalePaused},
		{seats.CodeHoldNotActive, CodeHoldNotActive},
		{seats.CodeHoldExpired, CodeHoldExpired},
		{seats.CodeUnavailable, CodeUnavailable},
	}
	for _, p := range pairs {
		requireEqual(t, p.core, p.api)
	}
}

// TestRefusalError: a refusal of the core becomes the engine's error field
// for field, and a transient one is never stored.
func TestRefusalError(t *testing.T) {
	rem := 2
	r := &seats.Refusal{Code: seats.CodeLimitExceeded, Message: "m", Remaining: &rem,
		Alternatives: [][]string{{"A-1"}}, Zones: []seats.ZoneFree{{ID: "ga", Free: 3}}, Transient: true}
	e := refusalError(r)
	requireEqual(t, *e, Error{Code: CodeLimitExceeded, Message: "m", Remaining: &rem,
		Alternatives: [][]string{{"A-1"}}, Zones: []ZoneFree{{ID: "ga", Free: 3}}, transient: true})
}

// TestSeatTimesAreTheAPIs: times in the core's messages are written as the
// API writes them.
func TestSeatTimesAreTheAPIs(t *testing.T) {
	z := seats.NewZone("s", ZoneDef{ID: "ga", PriceCents: 100, Capacity: 10})
	const at, expires = 1_700_000_000_000, 1_700_000_000_123
	requireNoError(t, z.Apply(&wal.Event{Type: wal.TypeHoldPlaced, Hold: "h1", Buyer: "b1", Seats: []uint32{0},
		At: at, Expires: expires, Amount: 100}))
	requireNoError(t, z.Apply(&wal.Event{Type: wal.TypeHoldExpired, Hold: "h1", At: expires}))
	d := z.DecideCheckoutBegin(seats.CheckoutBegin{Access: seats.Access{HoldID: "h1", Buyer: "b1"}, OrderID: "o1"}, expires)
	requireTrue(t, d.Refusal != nil && strings.Contains(d.Refusal.Message, FormatTime(time.UnixMilli(expires))),
		"refusal %+v", d.Refusal)
}
