package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
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

// TestSimulatorJournal: with a journal the simulator remembers its keys
// across a restart, as a real provider does, and the journal says what money
// moved: one line per charge, one per refund, however often each is asked.
func TestSimulatorJournal(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/journal"
	s := &Simulator{}
	requireNoErr(t, s.OpenJournal(path), "open")
	paid := actors.Payment{OrderID: "o1", HoldID: "h1", AmountCents: 100, Token: "tok_visa"}
	requireNoErr(t, s.Charge(ctx, paid), "charge")
	requireNoErr(t, s.Charge(ctx, paid), "the same key again")
	kept := actors.Payment{OrderID: "o2", HoldID: "h2", AmountCents: 200, Token: "tok_visa"}
	requireNoErr(t, s.Charge(ctx, kept), "charge")
	requireNoErr(t, s.Refund(ctx, paid), "refund")
	requireNoErr(t, s.Refund(ctx, paid), "the same refund again")

	r := &Simulator{}
	requireNoErr(t, r.OpenJournal(path), "reopen")
	st, err := r.Lookup(ctx, paid)
	requireNoErr(t, err, "lookup")
	requireEqual(t, st, actors.ChargeRefunded, "refunded before the restart")
	st, _ = r.Lookup(ctx, kept)
	requireEqual(t, st, actors.ChargePaid, "paid before the restart")
	requireNoErr(t, r.Charge(ctx, kept), "a retry after the restart")

	requireEqual(t, journalOps(t, path), []string{"charge o1", "charge o2", "refund o1"})
}

// TestSimulatorSharedJournal: simulators of several processes sharing one
// journal act as one provider, as a cluster's nodes need: a key charged
// through one is paid for the others, charged once however many race for
// it, and a refund through another gives it back once.
func TestSimulatorSharedJournal(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/journal"
	nodes := make([]*Simulator, 3)
	for i := range nodes {
		nodes[i] = &Simulator{}
		requireNoErr(t, nodes[i].OpenJournal(path), "open")
	}
	pay := func(order string) actors.Payment {
		return actors.Payment{OrderID: order, HoldID: "h-" + order, AmountCents: 100, Token: "tok_visa"}
	}
	requireNoErr(t, nodes[0].Charge(ctx, pay("o1")), "charge through node 0")
	st, err := nodes[1].Lookup(ctx, pay("o1"))
	requireNoErr(t, err, "lookup")
	requireEqual(t, st, actors.ChargePaid, "node 1 sees node 0's charge")

	// Racing charges of one key through every node: one charge.
	var wg sync.WaitGroup
	for range 4 {
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				requireNoErr(t, n.Charge(ctx, pay("o2")), "racing charge")
			}()
		}
	}
	wg.Wait()
	requireNoErr(t, nodes[2].Refund(ctx, pay("o1")), "refund through node 2")
	requireNoErr(t, nodes[0].Refund(ctx, pay("o1")), "the same refund through node 0")
	st, _ = nodes[1].Lookup(ctx, pay("o1"))
	requireEqual(t, st, actors.ChargeRefunded, "node 1 sees the refund")

	b, err := os.ReadFile(path)
	requireNoErr(t, err, "read")
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e JournalEntry
		requireNoErr(t, json.Unmarshal([]byte(line), &e), line)
		count[e.Op+" "+e.Order]++
	}
	requireEqual(t, count, map[string]int{"charge o1": 1, "charge o2": 1, "refund o1": 1})
}

// TestSimulatorVoid: a key closed by Void through one node of a shared
// journal takes no charge through another, even after a restart; a key
// that was charged answers its charge and stays as it is.
func TestSimulatorVoid(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/journal"
	a, b := &Simulator{}, &Simulator{}
	requireNoErr(t, a.OpenJournal(path), "open")
	requireNoErr(t, b.OpenJournal(path), "open")
	pay := func(order string) actors.Payment {
		return actors.Payment{OrderID: order, HoldID: "h-" + order, AmountCents: 100, Token: "tok_visa"}
	}
	st, err := a.Void(ctx, pay("o1"))
	requireNoErr(t, err, "void")
	requireEqual(t, st, actors.ChargeNone, "a key never used is closed")
	err = b.Charge(ctx, pay("o1"))
	requireTrue(t, errors.Is(err, ErrGatewayDown), "a charge with a closed key fails")
	st, _ = b.Lookup(ctx, pay("o1"))
	requireEqual(t, st, actors.ChargeNone, "nothing was taken")
	st, err = b.Void(ctx, pay("o1"))
	requireNoErr(t, err, "void again")
	requireEqual(t, st, actors.ChargeNone, "closed still")

	requireNoErr(t, a.Charge(ctx, pay("o2")), "charge")
	st, err = b.Void(ctx, pay("o2"))
	requireNoErr(t, err, "void of a charged key")
	requireEqual(t, st, actors.ChargePaid, "a charged key answers its charge")
	requireNoErr(t, a.Charge(ctx, pay("o2")), "the charge's retry still stands")

	r := &Simulator{}
	requireNoErr(t, r.OpenJournal(path), "reopen")
	requireTrue(t, errors.Is(r.Charge(ctx, pay("o1")), ErrGatewayDown), "closed after a restart")

	requireEqual(t, journalOps(t, path), []string{"void o1", "charge o2"})
}

// TestBulkheadClosedKey: a charge refused because its key was closed
// tells the buyer so, and counts apart from the gateway's failures (the
// payment error rate alert).
func TestBulkheadClosedKey(t *testing.T) {
	m := NewMetrics()
	b := newBulkhead(&Simulator{}, 4, m)
	p := actors.Payment{OrderID: "o1", HoldID: "h1", AmountCents: 100, Token: "tok_visa"}
	st, err := b.Void(p)
	requireTrue(t, err == nil && st == actors.ChargeNone, "void: %v %v", st, err)
	cerr := b.Charge(p)
	requireTrue(t, cerr != nil && cerr.Code == actors.CodePaymentDown && strings.Contains(cerr.Message, "settled as unpaid"), "the late charge: %+v", cerr)
	requireEqual(t, m.paymentsClosed.Get(), uint64(1))
	requireEqual(t, m.paymentErrors.Get(), uint64(0), "not a gateway failure")
}

// TestSimulatorJournalTornLine: a writer that died mid-line leaves a torn
// line; the next charge must not be joined to it and lost to the others.
func TestSimulatorJournalTornLine(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/journal"
	requireNoErr(t, os.WriteFile(path, []byte(`{"op":"charge","key":"onsale-charge-o0","ord`), 0o600), "torn line")
	a, b := &Simulator{}, &Simulator{}
	requireNoErr(t, a.OpenJournal(path), "open a")
	requireNoErr(t, b.OpenJournal(path), "open b")
	o1 := actors.Payment{OrderID: "o1", HoldID: "h1", AmountCents: 100, Token: "tok_visa"}
	requireNoErr(t, a.Charge(ctx, o1), "charge through a")
	st, err := b.Lookup(ctx, o1)
	requireNoErr(t, err, "lookup through b")
	requireEqual(t, st, actors.ChargePaid, "b sees a's charge after the torn line")
	requireNoErr(t, b.Charge(ctx, o1), "the same key through b")
	data, err := os.ReadFile(path)
	requireNoErr(t, err, "read")
	requireEqual(t, strings.Count(string(data), `"op":"charge","key":"onsale-charge-o1"`), 1, "charges of o1")
}

// TestBulkheadFreeTicket: a zone priced 0 checks out and cancels without
// the provider, which would refuse the amount; asking about it still goes
// to the provider, which knows no charge.
func TestBulkheadFreeTicket(t *testing.T) {
	g := &flakyGateway{}
	g.down.Store(true)
	b := newBulkhead(g, 4, NewMetrics())
	free := actors.Payment{OrderID: "o1", HoldID: "h1", AmountCents: 0, Token: "tok_visa"}
	requireTrue(t, b.Charge(free) == nil, "a free charge needs no provider")
	requireTrue(t, b.Refund(free) == nil, "a free refund needs no provider")
	_, err := b.Void(free)
	requireTrue(t, err != nil, "a void still asks the provider (down here)")
	g.down.Store(false)
	st, err := b.Void(free)
	requireTrue(t, err == nil && st == actors.ChargeNone, "the provider knows no charge: %v %v", st, err)
	paid := free
	paid.AmountCents = 100
	g.down.Store(true)
	requireTrue(t, b.Charge(paid) != nil, "a priced charge asks the provider")
}

// journalOps is the simulator journal's lines in order, as "op order".
func journalOps(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	requireNoErr(t, err, "read")
	var ops []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e JournalEntry
		requireNoErr(t, json.Unmarshal([]byte(line), &e), line)
		ops = append(ops, e.Op+" "+e.Order)
	}
	return ops
}

// TestChargeConfirmsItsOwnLeadership: the payer of one leadership's engine
// confirms that leadership before it charges, whatever leadership is
// current: a charge of a dropped engine is not sent on a later one's
// confirmation.
func TestChargeConfirmsItsOwnLeadership(t *testing.T) {
	b := newBulkhead(&Simulator{}, 4, NewMetrics())
	current := uint64(9)
	var asked []uint64
	confirm := func(epoch uint64) error {
		asked = append(asked, epoch)
		if epoch != current {
			return errNotConfirmed
		}
		return nil
	}
	b.confirm.Store(&confirm)
	p := actors.Payment{OrderID: "o1", HoldID: "h1", AmountCents: 100, Token: "tok_visa"}
	err := b.inEpoch(7).Charge(p)
	requireTrue(t, err != nil, "a charge of leadership 7 went out while 9 leads")
	requireNoErr(t, asErr(b.inEpoch(9).Charge(actors.Payment{OrderID: "o2", HoldID: "h2", AmountCents: 100, Token: "tok_visa"})), "a charge of the current leadership")
	requireEqual(t, asked, []uint64{7, 9})
}

func asErr(e *actors.Error) error {
	if e == nil {
		return nil
	}
	return e
}
