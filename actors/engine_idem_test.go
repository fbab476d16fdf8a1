package actors

// Idempotency keys: stored answers, reuse, and both across restarts.

import (
	"sync"
	"testing"
)

func TestEngineIdempotentHold(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	req := HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 2, IdemKey: "k1"}
	first := mustHold(t, s, req)
	again := mustHold(t, s, req)
	requireEqual(t, *again, *first, "the first answer again")
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2}, "no second hold")

	// Another request under the same key is refused and holds nothing.
	for _, other := range []HoldRequest{
		{Buyer: "b1", Zone: "vip", Quantity: 3, IdemKey: "k1"},
		{Buyer: "b1", Zone: "ga", Quantity: 2, IdemKey: "k1"},
		{Buyer: "b1", Zone: "vip", Quantity: 2, AcceptAlternative: true, IdemKey: "k1"},
		{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}, IdemKey: "k1"},
	} {
		requireCode(t, s.Hold(other), CodeIdemReused, "%+v", other)
	}
	requireEqual(t, s.ledger.count("b1"), 2)

	// The key belongs to one buyer and one endpoint.
	other := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Quantity: 2, IdemKey: "k1"})
	requireNotEqual(t, other.ID, first.ID)
	p := newFakePayer()
	requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: first.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k1"}, p))

	// Duplicates that arrive together all wait for the one request.
	const dups = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	answers := make([]Result, dups)
	dreq := HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 3, IdemKey: "together"}
	for i := range dups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = s.Hold(dreq)
		}()
	}
	close(start)
	wg.Wait()
	one := requireHold(t, answers[0])
	for _, r := range answers {
		requireEqual(t, *requireHold(t, r), *one)
	}
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 17, Held: 3})
	requireEqual(t, s.Stats().HoldsPlaced, int64(3))

	// A paused sale's refusal is not stored: after the resume the same
	// key runs.
	requireNoError(t, resultErr(s.SetPaused(true)))
	preq := HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1, IdemKey: "p1"}
	requireCode(t, s.Hold(preq), CodeSalePaused)
	requireNoError(t, resultErr(s.SetPaused(false)))
	mustHold(t, s, preq)
}

// sameRefusal compares two refusals as a client sees them: an empty list
// and an absent one read the same once encoded.
func sameRefusal(t testing.TB, got, want *Error, context ...any) {
	t.Helper()
	norm := func(e *Error) Error {
		c := *e
		if len(c.Alternatives) == 0 {
			c.Alternatives = nil
		}
		if len(c.Zones) == 0 {
			c.Zones = nil
		}
		return c
	}
	requireTrue(t, got != nil, "%sgot no refusal", contextPrefix(context))
	requireEqual(t, norm(got), norm(want), context...)
}

func TestEngineIdempotentRefusal(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	blocker := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}})

	taken := HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-2", "A-3"}, IdemKey: "t1"}
	first := requireCode(t, s.Hold(taken), CodeSeatsTaken)
	requireNoError(t, resultErr(h.e.ReleaseHold(blocker.ID, "b1", false)))
	// The seats are free now, and the stored answer still says taken.
	sameRefusal(t, requireCode(t, s.Hold(taken), CodeSeatsTaken), first)

	mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 6})
	over := HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1, IdemKey: "l1"}
	limit := requireCode(t, s.Hold(over), CodeLimitExceeded)

	check := func(when string) {
		t.Helper()
		sameRefusal(t, requireCode(t, s.Hold(taken), CodeSeatsTaken, when), first, when)
		sameRefusal(t, requireCode(t, s.Hold(over), CodeLimitExceeded, when), limit, when)
		other := taken
		other.Seats = []string{"A-3"}
		requireCode(t, s.Hold(other), CodeIdemReused, when)
		requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20}, when)
	}
	check("live")
	h.restart()
	s = h.sale("final")
	check("after a restart")

	requireNoError(t, h.e.Snapshot())
	requireTrue(t, h.e.log.FirstSeq() > 1, "the snapshot truncated the log (first record %d)", h.e.log.FirstSeq())
	mustHold(t, s, HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1})
	h.restart()
	s = h.sale("final")
	check("after a snapshot and a restart")
}

func TestEngineIdempotencyAcrossRestarts(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	hreq := HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3, IdemKey: "hk"}
	hv := mustHold(t, s, hreq)
	creq := CheckoutRequest{HoldID: hv.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "ck"}
	ov := requireOrder(t, h.e.Checkout(creq, p))
	hreq2 := HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2, IdemKey: "hk"}
	hv2 := mustHold(t, s, hreq2)
	dreq := CheckoutRequest{HoldID: hv2.ID, Buyer: "b2", PaymentToken: tokDecline, IdemKey: "dk"}
	decl := requireCode(t, h.e.Checkout(dreq, p), CodePaymentDecline)
	attempts := p.chargeAttempts()

	check := func(when string) {
		t.Helper()
		s := h.sale("final")
		// The first answers, though the hold is purchased by now.
		requireEqual(t, *mustHold(t, s, hreq), *hv, when)
		requireEqual(t, *mustHold(t, s, hreq2), *hv2, when)
		requireEqual(t, *requireOrder(t, h.e.Checkout(creq, p), when), *ov, when)
		sameRefusal(t, requireCode(t, h.e.Checkout(dreq, p), CodePaymentDecline, when), decl, when)
		requireEqual(t, p.chargeAttempts(), attempts, when)
		requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 4, IdemKey: "hk"}), CodeIdemReused, when)
		requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: hv.ID, Buyer: "b1", PaymentToken: "tok_other", IdemKey: "ck"}, p), CodeIdemReused, when)
		requireEqual(t, s.Counts(), []ZoneCounts{{ID: "ga", Free: 18, Held: 2}, {ID: "vip", Free: 17, Sold: 3}}, when)
	}
	check("live")
	h.restart()
	check("after a restart")
	requireNoError(t, h.e.Snapshot())
	requireTrue(t, h.e.log.FirstSeq() > 1, "the snapshot truncated the log")
	h.restart()
	check("after a snapshot and a restart")
	// Still the same after writes that follow the snapshot.
	requireNoError(t, h.e.Snapshot())
	mustHold(t, h.sale("final"), HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1, IdemKey: "x"})
	h.restart()
	requireEqual(t, h.sale("final").Counts(), []ZoneCounts{{ID: "ga", Free: 17, Held: 3}, {ID: "vip", Free: 17, Sold: 3}})
}
