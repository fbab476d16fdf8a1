package actors

// Placing, refusing, releasing and reading holds, and the per-buyer limit.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/wal"
)

func TestEngineHoldQuantityGA(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	now := h.clock.Ms()

	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 3})
	requireTrue(t, strings.HasPrefix(v.ID, "h_"), "hold id %q", v.ID)
	requireEqual(t, *v, HoldView{ID: v.ID, Sale: "final", Zone: "ga", Buyer: "b1", Seats: []string{"1", "2", "3"},
		State: "active", CreatedAt: now, ExpiresAt: now + stdTTL.Milliseconds(), Amount: 3 * 4500})

	v2 := mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 2})
	requireEqual(t, v2.Seats, []string{"4", "5"})
	requireNotEqual(t, v2.ID, v.ID)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 15, Held: 5})
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20})
	requireEqual(t, s.Stats().HoldsPlaced, int64(2))

	// The hold reads back as it was answered.
	g := requireHold(t, h.e.GetHold(v.ID, "b1", false))
	requireEqual(t, *g, *v)
}

func TestEngineHoldQuantityReserved(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b0", Zone: "vip", Seats: []string{"A-2"}})

	cases := []struct {
		buyer string
		n     int
		want  []string
	}{
		// Row A is A-1 free, A-2 held, A-3..A-10 free: A-1 alone cannot
		// seat 3, the run of 8 can without leaving a single.
		{"b1", 3, []string{"A-3", "A-4", "A-5"}},
		// Row A now has runs of 1 and 5: 6 together only fit in row B.
		{"b2", 6, []string{"B-1", "B-2", "B-3", "B-4", "B-5", "B-6"}},
		// The run A-6..A-10 is exactly 5.
		{"b3", 5, []string{"A-6", "A-7", "A-8", "A-9", "A-10"}},
	}
	for _, c := range cases {
		v := mustHold(t, s, HoldRequest{Buyer: c.buyer, Zone: "vip", Quantity: c.n})
		requireEqual(t, v.Seats, c.want, "best %d seats", c.n)
		requireTrue(t, adjacentInOneRow(v.Seats), "%v adjacent in one row", v.Seats)
		requireEqual(t, v.Amount, int64(c.n)*25000)
	}
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 5, Held: 15})
	st := seatStates(t, s, "vip")
	for _, name := range []string{"A-1", "B-7", "B-8", "B-9", "B-10"} {
		requireEqual(t, st[name], "free", name)
	}
	requireEqual(t, st["A-2"], "held")
}

func TestEngineHoldNamedSeats(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"B-4", "B-3"}})
	requireEqual(t, v.Seats, []string{"B-4", "B-3"}, "the seats as named")
	requireEqual(t, v.Amount, int64(2*25000))
	st := seatStates(t, s, "vip")
	requireEqual(t, [3]string{st["B-2"], st["B-3"], st["B-4"]}, [3]string{"free", "held", "held"})
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})

	// Bad names and seats in a general-admission zone change nothing.
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"C-1"}}), CodeBadRequest)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-1", "A-1"}}), CodeBadRequest)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "ga", Seats: []string{"1"}}), CodeBadRequest)
	requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "nope", Quantity: 1}), CodeBadRequest)
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 20})
}

func TestEngineHoldSeatsTaken(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-3", "A-4"}})

	e := requireCode(t, s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-4", "A-5"}}), CodeSeatsTaken)
	// Free now: A-1..A-2, A-5..A-10, row B. The named seats are left out,
	// and each set is the best of what the earlier sets left.
	requireEqual(t, e.Alternatives, [][]string{{"A-1", "A-2"}, {"A-6", "A-7"}, {"B-1", "B-2"}})
	st := seatStates(t, s, "vip")
	seen := map[string]bool{}
	for _, alt := range e.Alternatives {
		requireEqual(t, len(alt), 2, "same size as asked")
		for _, name := range alt {
			requireEqual(t, st[name], "free", "alternative seat %s", name)
			requireFalse(t, seen[name] || name == "A-3" || name == "A-4", "seat %s offered twice or taken", name)
			seen[name] = true
		}
	}
	// The refusal changed nothing: b2 may still take all 6 seats.
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "ga", Quantity: 6})

	// A seat this buyer holds already is taken too.
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-3"}}), CodeSeatsTaken)

	// A zone with nothing free offers no alternative: an empty list.
	h2 := h.createSale(SaleDef{ID: "tiny", MaxPerBuyer: 6, Zones: []ZoneDef{{ID: "box", Rows: []RowDef{{Row: "A", Seats: 2}}}}})
	mustHold(t, h2, HoldRequest{Buyer: "b1", Zone: "box", Quantity: 2})
	e = requireCode(t, h2.Hold(HoldRequest{Buyer: "b2", Zone: "box", Seats: []string{"A-1"}}), CodeSeatsTaken)
	requireEqual(t, len(e.Alternatives), 0)
}

func TestEngineHoldAcceptAlternative(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-3", "A-4"}})

	// Every named seat taken, and some named seats still free: either way
	// the hold is the first alternative a seats_taken answer offers for
	// the same request at that moment.
	for _, named := range [][]string{{"A-3", "A-4"}, {"A-4", "A-5"}, {"A-2", "A-3", "A-9"}} {
		probe := requireCode(t, s.Hold(HoldRequest{Buyer: "probe", Zone: "vip", Seats: named}), CodeSeatsTaken)
		requireTrue(t, len(probe.Alternatives) > 0, "alternatives for %v", named)
		buyer := "alt-" + strings.Join(named, "")
		v := mustHold(t, s, HoldRequest{Buyer: buyer, Zone: "vip", Seats: named, AcceptAlternative: true})
		requireEqual(t, v.Seats, probe.Alternatives[0], "hold for %v with accept_alternative", named)
	}
	// Free named seats are simply held, alternative or not.
	v := mustHold(t, s, HoldRequest{Buyer: "b9", Zone: "vip", Seats: []string{"B-9", "B-10"}, AcceptAlternative: true})
	requireEqual(t, v.Seats, []string{"B-9", "B-10"})

	// No alternative at all: sold_out, naming the zones with seats free.
	tiny := h.createSale(SaleDef{ID: "tiny", MaxPerBuyer: 6, Zones: []ZoneDef{
		{ID: "box", Rows: []RowDef{{Row: "A", Seats: 3}}}, {ID: "ga", Capacity: 7},
	}})
	mustHold(t, tiny, HoldRequest{Buyer: "b1", Zone: "box", Seats: []string{"A-1", "A-3"}})
	e := requireCode(t, tiny.Hold(HoldRequest{Buyer: "b2", Zone: "box", Seats: []string{"A-1", "A-2"}, AcceptAlternative: true}), CodeSoldOut)
	requireEqual(t, e.Zones, []ZoneFree{{ID: "ga", Free: 7}})
	requireEqual(t, counts(tiny, "box"), ZoneCounts{ID: "box", Free: 1, Held: 2})
}

func TestEngineHoldSoldOut(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(SaleDef{ID: "small", MaxPerBuyer: 6, Zones: []ZoneDef{
		{ID: "ga", Capacity: 4},
		{ID: "vip", Rows: []RowDef{{Row: "A", Seats: 2}}},
		{ID: "box", Rows: []RowDef{{Row: "A", Seats: 2}}},
	}})
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 4})
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "box", Quantity: 2})

	e := requireCode(t, s.Hold(HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 1}), CodeSoldOut)
	requireEqual(t, e.Zones, []ZoneFree{{ID: "vip", Free: 2}}, "other zones with seats free")
	e = requireCode(t, s.Hold(HoldRequest{Buyer: "b3", Zone: "vip", Quantity: 3}), CodeSoldOut)
	requireEqual(t, len(e.Zones), 0, "no other zone has seats free")
	// The refusals took nothing from b3's allowance.
	mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "vip", Quantity: 2})
	requireEqual(t, s.ledger.count("b3"), 2)
}

func TestEngineHoldLimitExceeded(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 4})

	e := requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 3}), CodeLimitExceeded)
	requireTrue(t, e.Remaining != nil && *e.Remaining == 2, "remaining %v, want 2", e.Remaining)
	mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Quantity: 2})
	e = requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1}), CodeLimitExceeded)
	requireTrue(t, e.Remaining != nil && *e.Remaining == 0, "remaining %v, want 0", e.Remaining)

	// Limits come before availability: a taken seat over the limit is
	// limit_exceeded, not seats_taken.
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"B-10"}})
	requireCode(t, s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"B-10"}}), CodeLimitExceeded)
	requireEqual(t, s.ledger.count("b1"), 6)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 16, Held: 4})
}

func TestEngineReleaseHold(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-1", "A-2"}})

	requireCode(t, h.e.ReleaseHold(v.ID, "b2", false), CodeNotFound, "another buyer's hold")
	r := requireHold(t, h.e.ReleaseHold(v.ID, "b1", false))
	requireEqual(t, r.State, "released")
	requireEqual(t, r.Seats, []string{"A-1", "A-2"})
	// Free at once, for anyone.
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 20})
	requireEqual(t, s.ledger.count("b1"), 0)
	mustHold(t, s, HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-1", "A-2"}})

	// Releasing again is fine and changes nothing.
	again := requireHold(t, h.e.ReleaseHold(v.ID, "b1", false))
	requireEqual(t, again.State, "released")
	requireEqual(t, counts(s, "vip"), ZoneCounts{ID: "vip", Free: 18, Held: 2})

	// The admin may release anyone's hold.
	v2 := mustHold(t, s, HoldRequest{Buyer: "b3", Zone: "ga", Quantity: 2})
	requireEqual(t, requireHold(t, h.e.ReleaseHold(v2.ID, "", true)).State, "released")

	// A purchased hold cannot be released.
	v3 := mustHold(t, s, HoldRequest{Buyer: "b4", Zone: "ga", Quantity: 1})
	requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v3.ID, Buyer: "b4", PaymentToken: tokOK}, p))
	requireCode(t, h.e.ReleaseHold(v3.ID, "b4", false), CodeHoldNotActive)
	requireEqual(t, counts(s, "ga"), ZoneCounts{ID: "ga", Free: 19, Sold: 1})

	// Nor an expired one.
	v4 := mustHold(t, s, HoldRequest{Buyer: "b5", Zone: "ga", Quantity: 1})
	h.clock.Advance(stdTTL)
	waitFor(t, "hold expiry", func() bool { return h.e.GetHold(v4.ID, "b5", false).Hold.State == "expired" })
	requireCode(t, h.e.ReleaseHold(v4.ID, "b5", false), CodeHoldNotActive)
}

func TestEngineHoldVisibility(t *testing.T) {
	h := newHarness(t)
	s := h.createSale(stdSaleDef())
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1})

	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).ID, v.ID)
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "", true)).Buyer, "b1", "the admin sees every hold")
	requireCode(t, h.e.GetHold(v.ID, "b2", false), CodeNotFound, "another buyer")
	requireCode(t, h.e.GetHold(v.ID, "", false), CodeNotFound, "nobody")

	// Ids that cannot exist, or do not.
	for _, id := range []string{"", "h_", "h_short", "o" + v.ID[1:], newID('h', s.idx, 0), newID('h', s.idx, 9), newID('h', 999, 0)} {
		requireCode(t, h.e.GetHold(id, "b1", true), CodeNotFound, "hold %q", id)
		requireCode(t, h.e.ReleaseHold(id, "b1", true), CodeNotFound, "release %q", id)
		requireCode(t, h.e.Checkout(CheckoutRequest{HoldID: id, Buyer: "b1", PaymentToken: tokOK}, newFakePayer()), CodeNotFound, "checkout %q", id)
	}
	requireEqual(t, requireHold(t, h.e.GetHold(v.ID, "b1", false)).State, "active")
}

func TestEngineMaxPerBuyerConcurrent(t *testing.T) {
	const (
		zones       = 4
		maxPerBuyer = 10
		buyers      = 3
	)
	h := newHarness(t)
	def := SaleDef{ID: "limits", MaxPerBuyer: maxPerBuyer}
	for i := range zones {
		def.Zones = append(def.Zones, ZoneDef{ID: fmt.Sprintf("z%d", i), Capacity: 1000, PriceCents: 100})
	}
	s := h.createSale(def)
	p := newFakePayer()
	buyer := func(i int) string { return fmt.Sprintf("b%d", i%buyers) }

	// Phase 1: a burst of holds in every zone at once, nothing given back:
	// what the answers granted is what each buyer holds, and it is within
	// the limit.
	const burst = 48
	answers := make([]Result, burst)
	asked := make([]int, burst)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range burst {
		asked[i] = 1 + (i/buyers)%3
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = s.Hold(HoldRequest{Buyer: buyer(i), Zone: fmt.Sprintf("z%d", (i/buyers)%zones), Quantity: asked[i]})
		}()
	}
	close(start)
	wg.Wait()
	granted := map[string]int{}
	for i, r := range answers {
		if r.Err == nil {
			granted[buyer(i)] += len(requireHold(t, r).Seats)
			continue
		}
		e := requireCode(t, r, CodeLimitExceeded)
		requireTrue(t, e.Remaining != nil && *e.Remaining >= 0 && *e.Remaining < asked[i], "remaining %v for %d", e.Remaining, asked[i])
	}
	for i := range buyers {
		b := buyer(i)
		requireTrue(t, granted[b] <= maxPerBuyer, "buyer %s granted %d", b, granted[b])
		requireTrue(t, granted[b] > maxPerBuyer-3, "buyer %s granted only %d of %d asked", b, granted[b], maxPerBuyer)
		requireEqual(t, s.ledger.count(b), granted[b], "ledger of %s", b)
	}

	// Giving everything back brings every allowance back to zero.
	for _, r := range answers {
		if r.Err == nil {
			requireNoError(t, resultErr(h.e.ReleaseHold(r.Hold.ID, r.Hold.Buyer, false)))
		}
	}
	for i := range buyers {
		requireEqual(t, s.ledger.count(buyer(i)), 0, "ledger of %s after the releases", buyer(i))
	}

	// Phase 2: holds, releases, checkouts and cancels in every zone from
	// many goroutines; the log is audited afterwards.
	const (
		workers = 24
		steps   = 150
	)
	seed := testSeed(t)
	var holds, limits, releases, buys, cancels atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			b := buyer(w)
			var mine []*HoldView
			var orders []string
			for range steps {
				k := rng.IntN(20)
				switch {
				case k >= 17 && len(orders) == 0, k >= 9 && k < 17 && len(mine) == 0:
					k = 0 // nothing of that kind to act on: hold instead
				}
				switch {
				case k < 9:
					r := s.Hold(HoldRequest{Buyer: b, Zone: fmt.Sprintf("z%d", rng.IntN(zones)), Quantity: 1 + rng.IntN(3)})
					switch {
					case r.Err == nil:
						mine = append(mine, r.Hold)
						holds.Add(1)
					case r.Err.Code == CodeLimitExceeded:
						limits.Add(1)
					default:
						t.Errorf("hold: %s", describe(r))
						return
					}
				case k < 14:
					i := rng.IntN(len(mine))
					if r := h.e.ReleaseHold(mine[i].ID, b, false); r.Err != nil {
						t.Errorf("release: %s", describe(r))
						return
					}
					mine = slices.Delete(mine, i, i+1)
					releases.Add(1)
				case k < 17:
					i := rng.IntN(len(mine))
					r := h.e.Checkout(CheckoutRequest{HoldID: mine[i].ID, Buyer: b, PaymentToken: tokOK}, p)
					if r.Err != nil {
						t.Errorf("checkout: %s", describe(r))
						return
					}
					mine = slices.Delete(mine, i, i+1)
					orders = append(orders, r.Order.ID)
					buys.Add(1)
				default:
					i := rng.IntN(len(orders))
					if r := h.e.CancelOrder(orders[i], p); r.Err != nil {
						t.Errorf("cancel: %s", describe(r))
						return
					}
					orders = slices.Delete(orders, i, i+1)
					cancels.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d holds, %d refused over the limit, %d releases, %d checkouts, %d cancels",
		holds.Load(), limits.Load(), releases.Load(), buys.Load(), cancels.Load())
	requireTrue(t, limits.Load() > 0 && releases.Load() > 0 && buys.Load() > 0 && cancels.Load() > 0, "every kind of request ran")
	final := map[string]int{}
	for i := range buyers {
		b := buyer(i)
		final[b] = s.ledger.count(b)
		requireTrue(t, final[b] <= maxPerBuyer, "buyer %s counts %d", b, final[b])
	}
	h.close()
	got := logAudit(t, h.dir, map[string]int{"limits": maxPerBuyer})
	for b, n := range final {
		requireEqual(t, got["limits"][b], n, "buyer %s: the log's count and the ledger's", b)
	}
	h.open()
	for b, n := range final {
		requireEqual(t, h.sale("limits").ledger.count(b), n, "buyer %s after recovery", b)
	}
}

// TestSeatsTakenWaitsForTheHold: a refusal read from a hold whose record is
// still on its way to the disk waits for it: were the record lost (a crash,
// or a cluster leader deposed before it committed), seats_taken would have
// been a lie. With its fsync held back, the second buyer gets no answer;
// once it goes through, seats_taken.
func TestSeatsTakenWaitsForTheHold(t *testing.T) {
	ffs := wal.NewFaultFS(nil)
	h := &harness{t: t, dir: t.TempDir(), clock: &fakeClock{}, logFS: ffs, sync: true}
	h.open()
	defer h.close()
	s := h.createSale(stdSaleDef())
	ffs.BlockSyncs()
	first := make(chan Result, 1)
	go func() { first <- s.Hold(HoldRequest{Buyer: "b1", Zone: "vip", Seats: []string{"A-1"}}) }()
	waitFor(t, "the first hold's fsync is held back", func() bool { return ffs.SyncsBlocked() > 0 })
	second := make(chan Result, 1)
	go func() { second <- s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-1"}}) }()
	select {
	case r := <-second:
		ffs.Heal()
		t.Fatalf("answered before the hold it was read from was durable: %s", describe(r))
	case <-time.After(300 * time.Millisecond):
	}
	ffs.Heal()
	requireHold(t, <-first)
	requireCode(t, <-second, CodeSeatsTaken)
}
