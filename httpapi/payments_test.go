package httpapi

import (
	"context"
	"errors"
	"testing"

	"onsale/actors"
)

// TestSimulatorKeys: the simulator keeps each charge key's outcome as a
// provider does: a retried charge stands, a declined one says none, a
// refund shows, an unknown key was never charged.
func TestSimulatorKeys(t *testing.T) {
	ctx := context.Background()
	s := &Simulator{}
	paid := actors.Payment{OrderID: "o1", AmountCents: 100, Token: "tok_visa"}
	requireNoErr(t, s.Charge(ctx, paid), "charge")
	requireNoErr(t, s.Charge(ctx, paid), "the same key again")
	st, err := s.Lookup(ctx, paid)
	requireNoErr(t, err, "lookup")
	requireEqual(t, st, actors.ChargePaid, "a charge made")

	declined := actors.Payment{OrderID: "o2", AmountCents: 100, Token: "tok_decline"}
	requireTrue(t, errors.Is(s.Charge(ctx, declined), ErrDeclined), "declined")
	st, _ = s.Lookup(ctx, declined)
	requireEqual(t, st, actors.ChargeNone, "a declined charge took nothing")

	requireNoErr(t, s.Refund(ctx, paid), "refund")
	st, _ = s.Lookup(ctx, paid)
	requireEqual(t, st, actors.ChargeRefunded, "refunded")
	st, _ = s.Lookup(ctx, actors.Payment{OrderID: "never"})
	requireEqual(t, st, actors.ChargeNone, "a key never used")
	requireEqual(t, paid.ChargeKey() != paid.RefundKey(), true, "charge and refund keys differ")
}
