//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// --- the write stream ---

// stream runs the workers, kills the server at a random moment and waits
// for the workers to notice.
func (r *crashRun) stream(c *crashCycle) {
	var stop atomic.Bool
	var wg sync.WaitGroup
	for _, w := range r.workers {
		w.out = crashOut{}
		wg.Go(func() { w.run(r, &stop) })
	}
	c.killAfter = crashKillMin + time.Duration(r.rng.Int64N(int64(crashKillSpan)+1))
	// The delay is the experiment, not a wait for a condition: the kill must
	// land at an arbitrary point of the stream.
	time.Sleep(c.killAfter)
	stop.Store(true)
	r.srv.kill()
	wg.Wait()
	for _, w := range r.workers {
		o := &w.out
		c.holds = append(c.holds, o.holds...)
		c.buyers = append(c.buyers, o.buyers...)
		c.touched = append(c.touched, o.touched...)
		c.pending = append(c.pending, o.pending...)
		c.releases += o.releases
		c.checkouts += o.checkouts
		c.inFlight += o.inFlight
	}
	r.adopt(c)
}

// adopt adds what a cycle acknowledged to the model.
func (r *crashRun) adopt(c *crashCycle) {
	for _, h := range c.holds {
		if h.key != "" {
			c.idemHolds++
		}
	}
	r.holds = append(r.holds, c.holds...)
	r.buyers = append(r.buyers, c.buyers...)
}

// crashWorker streams writes over one keep-alive connection. Between
// cycles only the test goroutine touches it.
type crashWorker struct {
	id     int
	rng    *rand.Rand
	seq    int
	buyer  *crashBuyer  // the buyer it shops as now
	active []*crashHold // its holds that are active as far as it knows
	out    crashOut     // this cycle's results
}

type crashOut struct {
	holds     []*crashHold
	buyers    []*crashBuyer
	touched   []*crashHold
	pending   []crashPending
	releases  int
	checkouts int
	inFlight  int
}

func (w *crashWorker) run(r *crashRun, stop *atomic.Bool) {
	for !stop.Load() {
		if !w.step(r, stop) {
			return
		}
	}
}

// step sends one request; false when the server is gone.
func (w *crashWorker) step(r *crashRun, stop *atomic.Bool) bool {
	if w.buyer == nil || w.buyer.used > crashMaxPerBuyer-8 {
		return w.join(r, stop)
	}
	idem := w.rng.IntN(2) == 0
	switch p := w.rng.IntN(100); {
	case p < 25:
		return w.hold(r, stop, "ga", 1+w.rng.IntN(4), nil, idem)
	case p < 45:
		n := 1 + w.rng.IntN(3)
		row, first := 1+w.rng.IntN(crashResRows), 1+w.rng.IntN(crashResSeats-n+1)
		seats := make([]string, n)
		for i := range seats {
			seats[i] = fmt.Sprintf("R%d-%d", row, first+i)
		}
		return w.hold(r, stop, "res", n, seats, idem)
	case p < 55:
		return w.hold(r, stop, "res", 1+w.rng.IntN(3), nil, idem)
	case p < 70 && len(w.active) > 0:
		return w.release(r, stop)
	case p < 93 && len(w.active) > 0:
		return w.checkout(r, stop, w.rng.IntN(10) < 7)
	case p >= 93:
		return w.join(r, stop)
	}
	return w.hold(r, stop, "ga", 1+w.rng.IntN(4), nil, idem)
}

func (w *crashWorker) key(r *crashRun) string {
	w.seq++
	return fmt.Sprintf("k-%d-%d-%d", r.cycle, w.id, w.seq)
}

// gone handles a transport error: after the kill it is the kill (the
// outcome is unknown); before it, a failure of its own.
func (w *crashWorker) gone(r *crashRun, stop *atomic.Bool, what string, err error) {
	w.out.inFlight++
	if !stop.Load() {
		r.errorf("cycle %d: worker %d: %s failed before the kill: %v", r.cycle, w.id, what, err)
	}
}

func (w *crashWorker) hold(r *crashRun, stop *atomic.Bool, zone string, n int, seats []string, idem bool) bool {
	b := w.buyer
	var body []byte
	if seats != nil {
		body = crashJSON(map[string]any{"zone": zone, "seats": seats})
	} else {
		body = crashJSON(map[string]any{"zone": zone, "quantity": n})
	}
	key := ""
	if idem {
		key = w.key(r)
	}
	st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", b.token, key, body)
	if err != nil {
		w.gone(r, stop, "POST holds "+string(body), err)
		w.out.pending = append(w.out.pending, crashPending{buyer: b, zone: zone, n: n, seats: seats, key: key, body: body})
		b.used += n
		return false
	}
	switch st {
	case 201:
		h, ok := r.newHold(fmt.Sprintf("worker %d", w.id), b, zone, n, seats, key, body, resp)
		if ok {
			w.out.holds = append(w.out.holds, h)
			w.active = append(w.active, h)
			b.used += n
		}
	case 409:
	case 422:
		if crashCode(resp) != "limit_exceeded" {
			r.errorf("cycle %d: worker %d: POST holds %s answered 422 %s", r.cycle, w.id, body, resp)
		}
		b.used = crashMaxPerBuyer // in-flight holds of earlier kills count too: take a new buyer
	default:
		r.errorf("cycle %d: worker %d: POST holds %s answered %d %s", r.cycle, w.id, body, st, resp)
	}
	return true
}

// newHold checks a 201 answer to a hold request and makes its model.
func (r *crashRun) newHold(who string, b *crashBuyer, zone string, n int, seats []string, key string, body, resp []byte) (*crashHold, bool) {
	var hb crashHoldBody
	if err := json.Unmarshal(resp, &hb); err != nil {
		r.errorf("cycle %d: %s: hold answer %q: %v", r.cycle, who, resp, err)
		return nil, false
	}
	exp, err := time.Parse(time.RFC3339Nano, hb.ExpiresAt)
	switch {
	case err != nil:
		r.errorf("cycle %d: %s: hold answer %s: expires_at: %v", r.cycle, who, resp, err)
		return nil, false
	case hb.HoldID == "" || hb.Sale != crashSaleID || hb.Zone != zone || hb.State != "active" || len(hb.Seats) != n || (seats != nil && !slices.Equal(hb.Seats, seats)):
		r.errorf("cycle %d: %s: asked %s for %d seats %v, got hold %s", r.cycle, who, zone, n, seats, resp)
		return nil, false
	}
	return &crashHold{id: hb.HoldID, zone: zone, seats: hb.Seats, buyer: b, cycle: r.cycle, key: key, body: body,
		expires: exp, state: "active", stateCycle: r.cycle}, true
}

func (w *crashWorker) release(r *crashRun, stop *atomic.Bool) bool {
	i := w.rng.IntN(len(w.active))
	h := w.active[i]
	st, resp, err := r.cl.call("DELETE", "/v1/holds/"+h.id, h.buyer.token, "", nil)
	if err != nil {
		w.gone(r, stop, "DELETE /v1/holds/"+h.id, err)
		h.pending = "release"
		w.out.touched = append(w.out.touched, h)
		return false
	}
	var hb crashHoldBody
	if st != 200 || json.Unmarshal(resp, &hb) != nil || hb.State != "released" || hb.HoldID != h.id {
		r.errorf("cycle %d: worker %d: release of %s answered %d %s", r.cycle, w.id, h, st, resp)
		return true
	}
	h.state, h.stateCycle = "released", r.cycle
	h.buyer.used -= len(h.seats)
	w.active = slices.Delete(w.active, i, i+1)
	w.out.touched = append(w.out.touched, h)
	w.out.releases++
	return true
}

func (w *crashWorker) checkout(r *crashRun, stop *atomic.Bool, idem bool) bool {
	i := w.rng.IntN(len(w.active))
	h := w.active[i]
	key := ""
	if idem {
		key = w.key(r)
	}
	st, resp, err := r.cl.call("POST", "/v1/holds/"+h.id+"/checkout", h.buyer.token, key, crashPayBody)
	if err != nil {
		w.gone(r, stop, "checkout of "+h.id, err)
		h.pending, h.pendingKey = "checkout", key
		w.out.touched = append(w.out.touched, h)
		return false
	}
	o, ok := r.order(st, resp, h)
	if !ok {
		r.errorf("cycle %d: worker %d: checkout of %s answered %d %s", r.cycle, w.id, h, st, resp)
		return true
	}
	h.state, h.stateCycle, h.orderID, h.payKey = "purchased", r.cycle, o.OrderID, key
	w.active = slices.Delete(w.active, i, i+1)
	w.out.touched = append(w.out.touched, h)
	w.out.checkouts++
	return true
}

var crashPayBody = []byte(`{"payment":{"token":"tok_visa"}}`)

// order checks a 201 answer to a checkout of h.
func (r *crashRun) order(st int, resp []byte, h *crashHold) (crashOrderBody, bool) {
	var o crashOrderBody
	if st != 201 || json.Unmarshal(resp, &o) != nil {
		return o, false
	}
	return o, o.OrderID != "" && o.HoldID == h.id && o.State == "paid" && o.Zone == h.zone && slices.Equal(o.Seats, h.seats)
}

func (w *crashWorker) join(r *crashRun, stop *atomic.Bool) bool {
	w.seq++
	name := fmt.Sprintf("c%d-w%d-b%d", r.cycle, w.id, w.seq)
	b, err := r.join(name, stop)
	if b != nil {
		w.out.buyers = append(w.out.buyers, b)
		if b.token != "" {
			w.buyer = b
		}
	}
	if err != nil {
		w.gone(r, stop, "join of "+name, err)
		return false
	}
	return true
}

// join puts a new buyer in line and waits for the admission. Nobody waits
// in this sale, so it normally comes at once; but a join in flight at a kill
// can be recovered as joined and not yet admitted, and then newcomers queue
// behind it until a tick admits it.
//
// The buyer is nil when the join was not acknowledged; its token is empty
// when the admission did not come. The error is a transport error (outcome
// unknown); a wrong answer is reported.
func (r *crashRun) join(name string, stop *atomic.Bool) (*crashBuyer, error) {
	st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/queue", "", "", crashJSON(map[string]string{"buyer": name}))
	if err != nil {
		return nil, err
	}
	var tk crashTicketBody
	if st != 200 || json.Unmarshal(resp, &tk) != nil || tk.QueueID == "" || (tk.State != "admitted" && tk.State != "waiting") {
		r.errorf("cycle %d: buyer %s joined the line and got %d %s; want 200 admitted or waiting", r.cycle, name, st, resp)
		return nil, nil
	}
	b := &crashBuyer{name: name, queueID: tk.QueueID, cycle: r.cycle}
	deadline := time.Now().Add(crashAdmitTimeout)
	for tk.State == "waiting" && !stop.Load() && time.Now().Before(deadline) {
		time.Sleep(crashAdmitPoll)
		st, resp, err = r.cl.call("GET", "/v1/sales/"+crashSaleID+"/queue/"+tk.QueueID, "", "", nil)
		if err != nil {
			return b, err
		}
		if st != 200 || json.Unmarshal(resp, &tk) != nil {
			r.errorf("cycle %d: buyer %s waits for admission; GET of its place answered %d %s", r.cycle, name, st, resp)
			return b, nil
		}
	}
	switch {
	case tk.State == "admitted" && tk.AccessToken != "":
		b.token = tk.AccessToken
	case !stop.Load():
		r.errorf("cycle %d: buyer %s not admitted within %v of joining a line that should move at once: %s", r.cycle, name, crashAdmitTimeout, resp)
	}
	return b, nil
}

// --- the contention cycle ---

// crashWave is one burst: every duel buyer asks for the same seats at once.
type crashWave struct {
	seats   []string
	results []crashDuelResult
	// resolved counts retries after the restart that won the seats;
	// unknownNoKey is set when a request without a key was in flight.
	resolved     int
	unknownNoKey bool
}

type crashDuelResult struct {
	buyer  *crashBuyer
	key    string
	body   []byte
	status int
	resp   []byte
	err    error
	hold   *crashHold
}

func (w *crashWave) winner() *crashHold {
	for _, res := range w.results {
		if res.hold != nil {
			return res.hold
		}
	}
	return nil
}

// duel kills the server during bursts of holds by many buyers on the same
// seats: exactly one may win each seat, and that one must persist.
func (r *crashRun) duel(c *crashCycle) {
	buyers := make([]*crashBuyer, 0, crashDuelBuyers)
	var never atomic.Bool // no kill while the duel buyers join
	for i := range crashDuelBuyers {
		b, err := r.join(fmt.Sprintf("duel-c%d-%d", c.n, i), &never)
		if err != nil {
			r.t.Fatalf("cycle %d: join of a duel buyer: %v", c.n, err)
		}
		if b == nil || b.token == "" {
			r.t.FailNow()
		}
		buyers = append(buyers, b)
	}
	c.buyers = append(c.buyers, buyers...)

	c.killAfter = crashDuelKillMin + time.Duration(r.rng.Int64N(int64(crashDuelKillSpan)+1))
	r.waves(c, buyers, time.Now().Add(c.killAfter))

	for wi, w := range c.waves {
		var winners []string
		complete, limited := true, 0
		for i := range w.results {
			res := &w.results[i]
			switch {
			case res.err != nil:
				complete = false
				c.inFlight++
				c.pending = append(c.pending, crashPending{buyer: res.buyer, zone: "duel", n: len(w.seats), seats: w.seats, key: res.key, body: res.body, wave: w})
			case res.status == 201:
				h, ok := r.newHold("duel buyer "+res.buyer.name, res.buyer, "duel", len(w.seats), w.seats, res.key, res.body, res.resp)
				if ok {
					res.hold = h
					c.holds = append(c.holds, h)
					winners = append(winners, res.buyer.name+" "+h.id)
				}
			case res.status == 409 && crashCode(res.resp) == "seats_taken":
			case res.status == 422 && crashCode(res.resp) == "limit_exceeded":
				// A buyer who won many bursts reached max_per_buyer: a
				// right answer, and the others may still win these seats.
				limited++
			default:
				r.errorf("cycle %d: contention burst %d on %v: %s got %d %s; want 201, 409 seats_taken or 422 limit_exceeded", c.n, wi, w.seats, res.buyer.name, res.status, res.resp)
			}
		}
		switch {
		case len(winners) > 1:
			r.errorf("cycle %d: contention burst %d: seats %v were acknowledged to %d buyers: %v", c.n, wi, w.seats, len(winners), winners)
		case complete && len(winners) == 0 && limited < len(w.results):
			r.errorf("cycle %d: contention burst %d: all %d buyers got an answer for free seats %v and none won", c.n, wi, len(w.results), w.seats)
		}
	}
	r.adopt(c)
}

// waves runs bursts, odd ones racing for one seat, even ones for the same
// pair, each on fresh seats of the duel zone. The first burst that starts
// after killAt is the last: the server is killed a random part of a burst's
// mean duration after it starts, so the kill lands in the middle of the race
// (answers come in groups, one per log commit, so waiting for some of them
// would mostly kill after the race).
func (r *crashRun) waves(c *crashCycle, buyers []*crashBuyer, killAt time.Time) {
	var took time.Duration // all bursts so far
	for wi := 0; ; wi++ {
		size := 1 + wi%2
		if r.duelNext+size-1 > crashDuelSeats {
			r.duelRow, r.duelNext = r.duelRow+1, 1
		}
		if r.duelRow > crashDuelRows {
			r.t.Fatalf("cycle %d: the duel zone ran out of seats; make it larger", c.n)
		}
		// The last burst: past the kill time, or the seats would run out.
		last := time.Now().After(killAt) || (r.duelRow == crashDuelRows && r.duelNext+size+2 > crashDuelSeats)
		w := &crashWave{results: make([]crashDuelResult, len(buyers))}
		for i := range size {
			w.seats = append(w.seats, fmt.Sprintf("D%d-%d", r.duelRow, r.duelNext+i))
		}
		r.duelNext += size
		body := crashJSON(map[string]any{"zone": "duel", "seats": w.seats})
		gate := make(chan struct{})
		var wg sync.WaitGroup
		for i, b := range buyers {
			key := ""
			if i%2 == 0 {
				key = fmt.Sprintf("duel-%d-%d-%d", c.n, wi, i)
			}
			wg.Go(func() {
				<-gate // all at once: the point is the race
				st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", b.token, key, body)
				w.results[i] = crashDuelResult{buyer: b, key: key, body: body, status: st, resp: resp, err: err}
			})
		}
		began := time.Now()
		close(gate)
		if last {
			if wi > 0 {
				// The experiment, not a wait for a condition. Answers come
				// near the end of a burst, so the kill falls in its first
				// three quarters.
				time.Sleep(time.Duration(r.rng.Int64N(int64(took)*3/4/int64(wi) + 1)))
			}
			r.srv.kill()
		}
		wg.Wait()
		took += time.Since(began)
		c.waves = append(c.waves, w)
		if last {
			for _, res := range w.results {
				if res.err == nil {
					c.lastAnswered++
				}
			}
			return
		}
		for _, res := range w.results {
			if res.err != nil {
				r.errorf("cycle %d: contention burst %d: request of %s failed before the kill: %v", c.n, wi, res.buyer.name, res.err)
			}
		}
	}
}
