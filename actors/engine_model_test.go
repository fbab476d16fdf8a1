package actors

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/actors/seats"
)

// TestEngineModel drives one small, crowded zone from many goroutines with
// random holds, releases, checkouts, cancels and reads, then checks every
// answer against a sequential model replayed in the zone actor's mailbox
// order (Result.zseq), and the final state and the log against the model.
//
// Time moves only between rounds: the goroutines run a round at a frozen
// instant, then the clock jumps and the test waits until the engine has
// expired every hold the model says is due. So within a round the model is
// exact, and expiries sit between rounds.

// Shape of the run: 18 seats, 8 buyers of at most 4 seats each, so named
// seats clash and the zone sells out often.
const (
	mdlRows        = 3
	mdlRowSeats    = 6
	mdlSeats       = mdlRows * mdlRowSeats
	mdlMaxPerBuyer = 4
	mdlBuyers      = 8
	mdlTTL         = 30 * time.Second
	mdlStep        = 11 * time.Second // clock jump between rounds: a hold lasts 3 rounds
	mdlPrice       = 1000
	mdlWorkers     = 12
	mdlRounds      = 20
	mdlOpsPerRound = 15 // per worker
)

type mdlKind uint8

const (
	mdlHold mdlKind = iota + 1
	mdlRelease
	mdlGet
	mdlCheckout
	mdlCancel
)

func (k mdlKind) String() string {
	return [...]string{"?", "hold", "release", "get", "checkout", "cancel"}[k]
}

// mdlOp is one request and its answer.
type mdlOp struct {
	kind   mdlKind
	worker int
	req    HoldRequest // hold
	holdID string      // release, get, checkout
	buyer  string      // release, get, checkout
	admin  bool        // release, get
	token  string      // checkout
	order  string      // cancel
	res    Result
}

func (o *mdlOp) String() string {
	switch o.kind {
	case mdlHold:
		return fmt.Sprintf("#%d hold %+v by worker %d -> %s", o.res.zseq, o.req, o.worker, describe(o.res))
	case mdlCancel:
		return fmt.Sprintf("#%d cancel %s by worker %d -> %s", o.res.zseq, o.order, o.worker, describe(o.res))
	}
	return fmt.Sprintf("#%d %s %s buyer=%q admin=%v token=%q by worker %d -> %s",
		o.res.zseq, o.kind, o.holdID, o.buyer, o.admin, o.token, o.worker, describe(o.res))
}

// mdlHoldRec is the model's record of one hold and its order.
type mdlHoldRec struct {
	id, buyer   string
	seats       []uint32
	state       seats.HoldState
	created     int64
	expires     int64
	order       string
	paidAt      int64
	cancelled   bool
	cancelledAt int64
}

// engineModel is the sequential model: a state per seat, the holds and
// orders, and each buyer's seats held plus bought.
type engineModel struct {
	rows   []int
	seats  []seats.SeatState
	holds  map[string]*mdlHoldRec
	orders map[string]*mdlHoldRec
	count  map[string]int
}

func mdlSeatName(i uint32) string {
	return fmt.Sprintf("%c-%d", 'A'+rune(i/mdlRowSeats), i%mdlRowSeats+1)
}

func mdlSeatNames(seats []uint32) []string {
	out := make([]string, len(seats))
	for i, s := range seats {
		out[i] = mdlSeatName(s)
	}
	return out
}

func mdlSeatIndex(name string) uint32 {
	var row rune
	var n uint32
	if _, err := fmt.Sscanf(name, "%c-%d", &row, &n); err != nil {
		panic("bad seat name " + name)
	}
	return uint32(row-'A')*mdlRowSeats + n - 1
}

func (m *engineModel) allFree(list []uint32) bool {
	for _, s := range list {
		if m.seats[s] != seats.SeatFree {
			return false
		}
	}
	return true
}

func (m *engineModel) set(list []uint32, from, to seats.SeatState) {
	for _, s := range list {
		if m.seats[s] != from {
			panic(fmt.Sprintf("model: seat %s is %s, want %s", mdlSeatName(s), m.seats[s], from))
		}
		m.seats[s] = to
	}
}

func (m *engineModel) counts() ZoneCounts {
	c := ZoneCounts{ID: "z"}
	for _, s := range m.seats {
		switch s {
		case seats.SeatFree:
			c.Free++
		case seats.SeatHeld:
			c.Held++
		case seats.SeatSold:
			c.Sold++
		}
	}
	return c
}

func (m *engineModel) view(h *mdlHoldRec) HoldView {
	return HoldView{ID: h.id, Sale: "m", Zone: "z", Buyer: h.buyer, Seats: mdlSeatNames(h.seats), State: h.state.String(),
		CreatedAt: h.created, ExpiresAt: h.expires, Amount: int64(len(h.seats)) * mdlPrice, OrderID: h.order}
}

func (m *engineModel) orderView(h *mdlHoldRec) OrderView {
	v := OrderView{ID: h.order, HoldID: h.id, Sale: "m", Zone: "z", Buyer: h.buyer, Seats: mdlSeatNames(h.seats),
		Amount: int64(len(h.seats)) * mdlPrice, Currency: CurrencyDefault, State: "paid", PaidAt: h.paidAt}
	if h.cancelled {
		v.State, v.CancelledAt = "cancelled", h.cancelledAt
	}
	return v
}

// refusal is the comparable part of an answer's error: everything but the
// sentence for people.
func refusal(e *Error) Error {
	c := *e
	c.Message = ""
	return c
}

// check replays one answered request on the model at time now and returns
// why the answer is not the model's, or "".
func (m *engineModel) check(o *mdlOp, now int64) string {
	r := o.res
	wantErr := func(want Error) string {
		if r.Err == nil {
			return fmt.Sprintf("got %s, the model refuses with %+v", describe(r), want)
		}
		if got := refusal(r.Err); !sameAnswer(got, want) {
			return fmt.Sprintf("got refusal %+v, the model says %+v", got, want)
		}
		return ""
	}
	switch o.kind {
	case mdlHold:
		var named []uint32
		n := o.req.Quantity
		for _, name := range o.req.Seats {
			named = append(named, mdlSeatIndex(name))
		}
		if named != nil {
			n = len(named)
		}
		buyer := o.req.Buyer
		if c := m.count[buyer]; c+n > mdlMaxPerBuyer {
			rem := max(mdlMaxPerBuyer-c, 0)
			return wantErr(Error{Code: CodeLimitExceeded, Remaining: &rem})
		}
		var chosen []uint32
		switch {
		case named != nil && m.allFree(named):
			chosen = named
		case named != nil && !o.req.AcceptAlternative:
			alts := [][]string{}
			for _, a := range modelAlternatives(m.rows, m.seats, n, mdlAltsShown, named) {
				alts = append(alts, mdlSeatNames(a))
			}
			return wantErr(Error{Code: CodeSeatsTaken, Alternatives: alts})
		case named != nil:
			alts := modelAlternatives(m.rows, m.seats, n, 1, named)
			if len(alts) == 0 {
				return wantErr(Error{Code: CodeSoldOut, Zones: []ZoneFree{}})
			}
			chosen = alts[0]
		default:
			pick, ok := modelPick(m.rows, m.seats, n)
			if !ok {
				return wantErr(Error{Code: CodeSoldOut, Zones: []ZoneFree{}})
			}
			chosen = pick
		}
		if r.Err != nil || r.Hold == nil {
			return fmt.Sprintf("got %s, the model holds %v", describe(r), mdlSeatNames(chosen))
		}
		if m.holds[r.Hold.ID] != nil {
			return "hold id " + r.Hold.ID + " answered twice"
		}
		h := &mdlHoldRec{id: r.Hold.ID, buyer: buyer, seats: chosen, state: seats.HoldActive, created: now, expires: now + mdlTTL.Milliseconds()}
		if want := m.view(h); !sameAnswer(*r.Hold, want) {
			return fmt.Sprintf("got hold %+v, the model's is %+v", *r.Hold, want)
		}
		m.set(chosen, seats.SeatFree, seats.SeatHeld)
		m.holds[h.id] = h
		m.count[buyer] += n
		return ""

	case mdlRelease, mdlGet:
		h := m.holds[o.holdID]
		if h == nil || (!o.admin && h.buyer != o.buyer) {
			return wantErr(Error{Code: CodeNotFound})
		}
		want := m.view(h)
		if o.kind == mdlRelease {
			switch h.state {
			case seats.HoldActive:
				h.state = seats.HoldReleased
				m.set(h.seats, seats.SeatHeld, seats.SeatFree)
				m.count[h.buyer] -= len(h.seats)
				want.State = h.state.String()
			case seats.HoldReleased:
			default:
				return wantErr(Error{Code: CodeHoldNotActive})
			}
		}
		if r.Err != nil || r.Hold == nil || !sameAnswer(*r.Hold, want) {
			return fmt.Sprintf("got %s, the model says %+v", describe(r), want)
		}
		return ""

	case mdlCheckout:
		h := m.holds[o.holdID]
		if h == nil || h.buyer != o.buyer {
			return wantErr(Error{Code: CodeNotFound})
		}
		// The answer's position is the end of the checkout; its start,
		// which checked the hold, came earlier, and only a release by
		// another worker can come between the two.
		payFail := ""
		switch o.token {
		case tokDecline:
			payFail = CodePaymentDecline
		case tokError:
			payFail = CodePaymentDown
		}
		switch h.state {
		case seats.HoldExpired:
			return wantErr(Error{Code: CodeHoldExpired})
		case seats.HoldPurchased:
			return wantErr(Error{Code: CodeHoldNotActive})
		case seats.HoldReleased:
			if payFail != "" && r.Err != nil && r.Err.Code == payFail {
				return wantErr(Error{Code: payFail})
			}
			return wantErr(Error{Code: CodeHoldNotActive})
		}
		if payFail != "" {
			return wantErr(Error{Code: payFail})
		}
		if r.Err != nil || r.Order == nil {
			return fmt.Sprintf("got %s, the model buys hold %s", describe(r), h.id)
		}
		if m.orders[r.Order.ID] != nil {
			return "order id " + r.Order.ID + " answered twice"
		}
		h.state, h.order, h.paidAt = seats.HoldPurchased, r.Order.ID, now
		if want := m.orderView(h); !sameAnswer(*r.Order, want) {
			return fmt.Sprintf("got order %+v, the model's is %+v", *r.Order, want)
		}
		m.set(h.seats, seats.SeatHeld, seats.SeatSold)
		m.orders[h.order] = h
		return ""

	case mdlCancel:
		h := m.orders[o.order]
		if h == nil {
			return wantErr(Error{Code: CodeNotFound})
		}
		if !h.cancelled {
			h.cancelled, h.cancelledAt = true, now
			m.set(h.seats, seats.SeatSold, seats.SeatFree)
			m.count[h.buyer] -= len(h.seats)
		}
		if want := m.orderView(h); r.Err != nil || r.Order == nil || !sameAnswer(*r.Order, want) {
			return fmt.Sprintf("got %s, the model says %+v", describe(r), want)
		}
		return ""
	}
	return "unknown operation"
}

// expire ends every active hold due at now, as the engine's ticks do
// between rounds, and returns their ids.
func (m *engineModel) expire(now int64) []string {
	var due []string
	for id, h := range m.holds {
		if h.state == seats.HoldActive && h.expires <= now {
			h.state = seats.HoldExpired
			m.set(h.seats, seats.SeatHeld, seats.SeatFree)
			m.count[h.buyer] -= len(h.seats)
			due = append(due, id)
		}
	}
	sort.Strings(due)
	return due
}

func sameAnswer[T any](got, want T) bool { return reflect.DeepEqual(got, want) }

// mdlRegistry is what every worker may act on: all holds and orders
// answered so far. Guarded by mu.
type mdlRegistry struct {
	mu     sync.Mutex
	holds  []*HoldView
	orders []string
}

func (g *mdlRegistry) addHold(v *HoldView) {
	g.mu.Lock()
	g.holds = append(g.holds, v)
	g.mu.Unlock()
}

func (g *mdlRegistry) addOrder(id string) {
	g.mu.Lock()
	g.orders = append(g.orders, id)
	g.mu.Unlock()
}

func (g *mdlRegistry) randomHold(rng *rand.Rand) *HoldView {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.holds) == 0 {
		return nil
	}
	return g.holds[rng.IntN(len(g.holds))]
}

// recentOrder picks one of the latest orders, most of which are still paid.
func (g *mdlRegistry) recentOrder(rng *rand.Rand) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.orders) == 0 {
		return ""
	}
	return g.orders[len(g.orders)-1-rng.IntN(min(len(g.orders), 8))]
}

// mdlWorker is one goroutine's state across rounds.
type mdlWorker struct {
	id   int
	rng  *rand.Rand
	mine []*HoldView // holds this worker placed; only it checks them out
	keys int
	ops  []*mdlOp
}

func (w *mdlWorker) key() string {
	w.keys++
	return fmt.Sprintf("w%d-%d", w.id, w.keys)
}

// drop forgets a hold that ended, mostly: the rest keep asking about ended
// holds.
func (w *mdlWorker) drop(v *HoldView) {
	if w.rng.IntN(5) == 0 {
		return
	}
	if i := slices.Index(w.mine, v); i >= 0 {
		w.mine = slices.Delete(w.mine, i, i+1)
	}
}

func mdlBuyer(i int) string { return fmt.Sprintf("m%d", i) }

// randomSeats names 1..3 distinct seats: usually side by side in one row,
// sometimes anywhere.
func randomSeats(rng *rand.Rand) []string {
	n := 1 + rng.IntN(3)
	var seats []uint32
	if rng.IntN(10) < 6 {
		row, start := rng.IntN(mdlRows), rng.IntN(mdlRowSeats-n+1)
		for i := range n {
			seats = append(seats, uint32(row*mdlRowSeats+start+i))
		}
	} else {
		for _, s := range rng.Perm(mdlSeats)[:n] {
			seats = append(seats, uint32(s))
		}
	}
	return mdlSeatNames(seats)
}

// step makes one random request and records it (and, for a retry with the
// same idempotency key, checks that the stored answer comes back).
func (w *mdlWorker) step(t *testing.T, e *Engine, s *Sale, p *fakePayer, reg *mdlRegistry) {
	rng := w.rng
	record := func(o *mdlOp) { w.ops = append(w.ops, o) }
	retry := func(o *mdlOp, again Result) {
		if storable(o.res) {
			a, b := o.res, again
			if o.res.Err != nil && o.res.Err.Code == CodeNotFound {
				a.zseq, b.zseq = 0, 0 // answered before the request reached the zone
			}
			if !sameAnswer(a, b) {
				t.Errorf("retry of %s with the same key answered %s", o, describe(again))
			}
			return
		}
		o2 := *o
		o2.res = again
		record(&o2)
	}
	switch k := rng.IntN(100); {
	case k < 50:
		req := HoldRequest{Buyer: mdlBuyer(rng.IntN(mdlBuyers)), Zone: "z"}
		if k < 30 {
			req.Quantity = 1 + rng.IntN(3)
		} else {
			req.Seats = randomSeats(rng)
			req.AcceptAlternative = rng.IntN(2) == 0
		}
		keyed := rng.IntN(10) < 3
		if keyed {
			req.IdemKey = w.key()
		}
		o := &mdlOp{kind: mdlHold, worker: w.id, req: req, res: s.Hold(req)}
		record(o)
		if o.res.Err == nil && o.res.Hold != nil {
			reg.addHold(o.res.Hold)
			if rng.IntN(3) > 0 { // else the buyer walks away and the hold expires
				w.mine = append(w.mine, o.res.Hold)
			}
		}
		if keyed && rng.IntN(3) == 0 {
			retry(o, s.Hold(req))
		}
	case k < 62:
		v := reg.randomHold(rng)
		if len(w.mine) > 0 && rng.IntN(10) < 7 {
			v = w.mine[len(w.mine)-1-rng.IntN(min(len(w.mine), 6))]
		}
		if v == nil {
			return
		}
		o := &mdlOp{kind: mdlRelease, worker: w.id, holdID: v.ID, buyer: v.Buyer}
		switch rng.IntN(20) {
		case 0:
			o.buyer = mdlBuyer(rng.IntN(mdlBuyers))
		case 1:
			o.buyer, o.admin = "", true
		}
		o.res = e.ReleaseHold(o.holdID, o.buyer, o.admin)
		record(o)
		if o.res.Err == nil || o.res.Err.Code == CodeHoldNotActive {
			w.drop(v)
		}
	case k < 80:
		if len(w.mine) == 0 {
			return
		}
		v := w.mine[len(w.mine)-1-rng.IntN(min(len(w.mine), 6))]
		req := CheckoutRequest{HoldID: v.ID, Buyer: v.Buyer, PaymentToken: tokOK}
		switch x := rng.IntN(20); {
		case x < 4:
			req.PaymentToken = tokDecline
		case x < 6:
			req.PaymentToken = tokError
		case x < 7:
			req.Buyer = mdlBuyer(rng.IntN(mdlBuyers))
		}
		keyed := rng.IntN(2) == 0
		if keyed {
			req.IdemKey = w.key()
		}
		o := &mdlOp{kind: mdlCheckout, worker: w.id, holdID: v.ID, buyer: req.Buyer, token: req.PaymentToken, res: e.Checkout(req, p)}
		record(o)
		if o.res.Err == nil && o.res.Order != nil {
			reg.addOrder(o.res.Order.ID)
		}
		if o.res.Err == nil || o.res.Err.Code == CodeHoldNotActive || o.res.Err.Code == CodeHoldExpired {
			w.drop(v)
		}
		if keyed && rng.IntN(3) == 0 {
			retry(o, e.Checkout(req, p))
		}
	case k < 88:
		id := reg.recentOrder(rng)
		if id == "" {
			return
		}
		record(&mdlOp{kind: mdlCancel, worker: w.id, order: id, res: e.CancelOrder(id, p)})
	default:
		v := reg.randomHold(rng)
		if v == nil {
			return
		}
		o := &mdlOp{kind: mdlGet, worker: w.id, holdID: v.ID, buyer: v.Buyer}
		switch rng.IntN(4) {
		case 0:
			o.buyer = mdlBuyer(rng.IntN(mdlBuyers))
		case 1:
			o.buyer, o.admin = "", true
		}
		o.res = e.GetHold(o.holdID, o.buyer, o.admin)
		record(o)
	}
}

func TestEngineModel(t *testing.T) {
	seed := testSeed(t)
	h := newHarness(t)
	def := SaleDef{ID: "m", HoldTTLS: int(mdlTTL / time.Second), MaxPerBuyer: mdlMaxPerBuyer,
		Zones: []ZoneDef{{ID: "z", PriceCents: mdlPrice}}}
	m := &engineModel{seats: make([]seats.SeatState, mdlSeats), holds: map[string]*mdlHoldRec{},
		orders: map[string]*mdlHoldRec{}, count: map[string]int{}}
	for i := range mdlRows {
		def.Zones[0].Rows = append(def.Zones[0].Rows, RowDef{Row: string(rune('A' + i)), Seats: mdlRowSeats})
		m.rows = append(m.rows, mdlRowSeats)
	}
	s := h.createSale(def)
	p := newFakePayer()
	reg := &mdlRegistry{}

	// The observer reads the published counts while the workers run; every
	// reading must add up to the zone's size.
	var (
		stop     = make(chan struct{})
		observed sync.WaitGroup
		readings atomic.Int64
		torn     atomic.Pointer[ZoneCounts]
	)
	observed.Add(1)
	go func() {
		defer observed.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := s.Counts()[0]
			readings.Add(1)
			runtime.Gosched()
			if c.Free+c.Held+c.Sold != mdlSeats || c.Free < 0 || c.Held < 0 || c.Sold < 0 {
				torn.CompareAndSwap(nil, &c)
			}
		}
	}()

	workers := make([]*mdlWorker, mdlWorkers)
	for i := range workers {
		workers[i] = &mdlWorker{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	}
	var lastZseq uint64
	outcomes := map[string]int{} // "kind outcome" -> answers
	expired := 0
	for round := range mdlRounds {
		now := h.clock.Ms()
		var wg sync.WaitGroup
		for _, w := range workers {
			w.ops = w.ops[:0]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range mdlOpsPerRound {
					w.step(t, h.e, s, p, reg)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}

		// The round's answers in mailbox order. An answer shared by
		// several callers (one cancel that others waited for) counts once.
		var ops []*mdlOp
		for _, w := range workers {
			ops = append(ops, w.ops...)
		}
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].res.zseq < ops[j].res.zseq })
		for i, o := range ops {
			if o.res.zseq <= lastZseq {
				t.Fatalf("round %d: %s is not after the previous round (zseq %d)", round, o, lastZseq)
			}
			if i > 0 && ops[i-1].res.zseq == o.res.zseq {
				prev := ops[i-1]
				if prev.kind != mdlCancel || o.kind != mdlCancel || prev.order != o.order || !sameAnswer(prev.res, o.res) {
					t.Fatalf("round %d: two requests answered at one position:\n%s\n%s", round, prev, o)
				}
				continue
			}
			if why := m.check(o, now); why != "" {
				t.Fatalf("round %d: %s\n%s", round, o, why)
			}
			outcome := "ok"
			if o.res.Err != nil {
				outcome = o.res.Err.Code
			}
			outcomes[o.kind.String()+" "+outcome]++
		}
		if len(ops) > 0 {
			lastZseq = ops[len(ops)-1].res.zseq
		}
		requireEqual(t, counts(s, "z"), m.counts(), "round %d: counts", round)

		// Time moves on; the engine must expire what the model says is due.
		h.clock.Advance(mdlStep)
		due := m.expire(h.clock.Ms())
		expired += len(due)
		want := m.counts()
		waitFor(t, fmt.Sprintf("round %d: expiry of %d holds", round, len(due)), func() bool {
			return counts(s, "z") == want
		})
		for _, id := range due {
			requireEqual(t, requireHold(t, h.e.GetHold(id, "", true)).State, "expired", "hold %s", id)
		}
		for b := range mdlBuyers {
			requireEqual(t, s.ledger.count(mdlBuyer(b)), m.count[mdlBuyer(b)], "round %d: ledger of %s", round, mdlBuyer(b))
		}
	}
	close(stop)
	observed.Wait()
	if c := torn.Load(); c != nil {
		t.Fatalf("the published counts read %+v: free+held+sold != %d", *c, mdlSeats)
	}
	total := 0
	for _, n := range outcomes {
		total += n
	}
	t.Logf("%d answers checked against the model, %d holds expired, %d count readings; outcomes %v",
		total, expired, readings.Load(), outcomes)

	// Every charge became an order of the model or was refunded once; every
	// cancelled order was refunded once, and no paid one was.
	for orderID, amount := range p.charged() {
		h := m.orders[orderID]
		switch {
		case h == nil:
			requireEqual(t, p.refunded(orderID), []int64{amount}, "refund of charge %s that bought nothing", orderID)
		case h.cancelled:
			requireEqual(t, p.refunded(orderID), []int64{amount}, "refund of cancelled order %s", orderID)
		default:
			requireEqual(t, len(p.refunded(orderID)), 0, "refunds of paid order %s", orderID)
		}
	}
	for id := range m.orders {
		_, ok := p.charged()[id]
		requireTrue(t, ok, "order %s was charged", id)
	}

	// The log never had a seat twice or a buyer over the limit, and ends
	// where the model does; so does the engine rebuilt from it.
	h.close()
	final := logAudit(t, h.dir, map[string]int{"m": mdlMaxPerBuyer})
	for b := range mdlBuyers {
		requireEqual(t, final["m"][mdlBuyer(b)], m.count[mdlBuyer(b)], "log count of %s", mdlBuyer(b))
	}
	h.open()
	s = h.sale("m")
	requireEqual(t, counts(s, "z"), m.counts(), "counts after recovery")
	for id, mh := range m.holds {
		requireEqual(t, *requireHold(t, h.e.GetHold(id, "", true)), m.view(mh), "hold %s after recovery", id)
	}
	for id, mh := range m.orders {
		requireEqual(t, *requireOrder(t, h.e.GetOrder(id)), m.orderView(mh), "order %s after recovery", id)
	}
	for b := range mdlBuyers {
		requireEqual(t, s.ledger.count(mdlBuyer(b)), m.count[mdlBuyer(b)], "ledger of %s after recovery", mdlBuyer(b))
	}
	seats := seatStates(t, s, "z")
	for i, st := range m.seats {
		requireEqual(t, seats[mdlSeatName(uint32(i))], st.String(), "seat %s", mdlSeatName(uint32(i)))
	}
}
