//go:build unix

package main

// The crash test kills a real onsale process with SIGKILL in the middle of a
// stream of writes, restarts it on the same data directory, and checks that
// every write it acknowledged is there and that nothing is half applied
// (API.md: "An acknowledged write ... survives kill -9 of the server right
// after the response").
//
// The test keeps a model of everything the server acknowledged: holds with
// their seats, releases, orders, places in line. A request in flight at the
// kill has an unknown outcome; it counts neither way. After each restart the
// test reads the state back, settles the unknown outcomes from what the
// server says (or, for idempotent requests, by retrying them with the same
// key), and then checks the stock against the model: sold seats equal the
// orders it knows, held seats are those of its active holds plus at most the
// seats of hold requests whose outcome it could not learn, and no seat is in
// two live holds.
//
// Randomized: the seed is printed; SEED=n replays the same choices (the
// timing of the kill relative to the stream is up to the machine).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Shape and limits of the crash test. The sums: eight workers, each one
// request at a time over keep-alive connections, place one to three
// thousand writes per second on two cores under -race; a cycle streams for
// 50-400 ms, so a run of 24 cycles makes some ten to twenty thousand log
// records, which recovery replays in well under a second, and the zones
// below never run out (about 7,000 holds of 1-4 seats at most).
const (
	crashCyclesFull  = 24 // kill/restart cycles in a full run
	crashCyclesShort = 5  // under -short: fewer, still real kills
	crashWorkers     = 8  // goroutines streaming writes, one connection each
	crashKillMin     = 50 * time.Millisecond
	crashKillSpan    = 350 * time.Millisecond // the kill comes crashKillMin + [0, span] into the stream

	crashDuelBuyers   = 24 // buyers racing for the same seats in the contention cycle
	crashDuelKillMin  = 30 * time.Millisecond
	crashDuelKillSpan = 270 * time.Millisecond

	crashReadyTimeout   = 30 * time.Second // start plus recovery; generous for a loaded CI machine
	crashAdmitTimeout   = 15 * time.Second // the line admits at least 50/s in automatic mode
	crashAdmitPoll      = 20 * time.Millisecond
	crashRequestTimeout = 20 * time.Second // well above the server's 5 s call timeout
	crashErrorsMax      = 40               // failures reported before the rest are only counted

	crashOldHoldsSample   = 150 // holds of earlier cycles read back after each restart
	crashOldTicketsSample = 100 // places in line of earlier cycles read back
	crashRejoinSample     = 3   // buyers who join again and must get their queue_id back
	crashIdemRetriesMax   = 8   // acknowledged idempotent holds retried per cycle
	crashPayRetriesMax    = 4   // acknowledged idempotent checkouts retried per cycle

	crashSaleID      = "crash"
	crashAdminToken  = "crash-test-admin-token"
	crashMaxPerBuyer = 100  // API.md's upper bound for max_per_buyer
	crashHoldTTLS    = 3600 // no hold may expire during the run
	crashGACapacity  = 300_000
	crashResRows     = 200 // reserved zone "res": rows R1..R200
	crashResSeats    = 100 // seats per row of "res"
	crashDuelRows    = 20  // reserved zone "duel": rows D1..D20, only for the contention cycle
	crashDuelSeats   = 50
)

// crashCapacity is the number of seats of each zone of the test sale.
var crashCapacity = map[string]int{
	"ga":   crashGACapacity,
	"res":  crashResRows * crashResSeats,
	"duel": crashDuelRows * crashDuelSeats,
}

var crashZones = []string{"ga", "res", "duel"}

func TestCrashKillRestart(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SEED=%d)", seed, seed)
	cycles := crashCyclesFull
	if testing.Short() {
		cycles = crashCyclesShort
	}

	srv := &crashServer{t: t, bin: crashBuild(t), data: filepath.Join(t.TempDir(), "data"), out: &crashLog{}}
	t.Cleanup(srv.stop)
	srv.start()

	r := &crashRun{
		t: t, srv: srv, rng: rand.New(rand.NewPCG(seed, 0)),
		cl: &crashClient{hc: &http.Client{
			Timeout:   crashRequestTimeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: crashWorkers + crashDuelBuyers, DisableCompression: true},
		}},
		extra: make(map[string]int), duelRow: 1, duelNext: 1,
	}
	r.cl.base = srv.base
	r.createSale()
	for i := range crashWorkers {
		r.workers = append(r.workers, &crashWorker{id: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+1))})
	}

	// Contention cycles: one in the middle, and in a full run one more at the
	// end, since a kill does not always catch a burst with answers pending.
	duelCycles := []int{cycles/2 + 1}
	if !testing.Short() {
		duelCycles = append(duelCycles, cycles)
	}
	for n := 1; n <= cycles; n++ {
		c := &crashCycle{n: n, unknown: make(map[string]int)}
		r.cycle = n
		if slices.Contains(duelCycles, n) {
			r.duel(c)
		} else {
			r.stream(c)
		}
		r.cl.hc.Transport.(*http.Transport).CloseIdleConnections()
		c.recovery = srv.start()
		r.cl.base = srv.base
		r.verify(c)
		c.log(t, cycles, len(r.holds))
		if t.Failed() {
			t.Fatalf("cycle %d: stopping after the first cycle with failures (seed %d)", n, seed)
		}
	}
	r.audit()
}

// audit reads back, after the last restart, every hold, order and place in
// line the run knows of: the cycles read back only samples of older ones.
func (r *crashRun) audit() {
	start := time.Now()
	crashEach(r.holds, func(h *crashHold) { r.readHold(h) })
	var bought []*crashHold
	for _, h := range r.holds {
		if h.state == "purchased" {
			bought = append(bought, h)
		}
	}
	crashEach(bought, func(h *crashHold) { r.readOrder(h) })
	crashEach(r.buyers, func(b *crashBuyer) { r.readTicket(b) })
	r.t.Logf("audit after the last restart: read back all %d holds, %d orders and %d places in line in %v",
		len(r.holds), len(bought), len(r.buyers), time.Since(start).Round(time.Millisecond))
}

// crashRun is the test's model of the server and what drives it.
type crashRun struct {
	t       *testing.T
	srv     *crashServer
	cl      *crashClient
	rng     *rand.Rand // the test goroutine's; workers have their own
	cycle   int
	workers []*crashWorker

	holds  []*crashHold  // every hold known: acknowledged, or learnt after a restart
	buyers []*crashBuyer // every acknowledged place in line
	// duelRow and duelNext are the first seat of the duel zone no burst has
	// asked for yet.
	duelRow, duelNext int
	// extra is, per zone, how many held seats no known hold explains: holds
	// whose creation was in flight at a kill and became durable. Such holds
	// are never released (nobody knows their id) and never expire during the
	// run, so extra only grows, and by at most the seats in flight.
	extra map[string]int

	errMu sync.Mutex
	errs  int
}

// errorf reports a failure; past crashErrorsMax they are counted only, so a
// broken server does not bury the first, most telling message.
func (r *crashRun) errorf(format string, args ...any) {
	r.t.Helper()
	r.errMu.Lock()
	r.errs++
	n := r.errs
	r.errMu.Unlock()
	switch {
	case n <= crashErrorsMax:
		r.t.Errorf(format, args...)
	case n == crashErrorsMax+1:
		r.t.Errorf("more failures follow; only the first %d are shown", crashErrorsMax)
	}
}

// crashCycle is what one kill/restart cycle acknowledged and left unknown.
type crashCycle struct {
	n         int
	killAfter time.Duration
	recovery  time.Duration

	holds     []*crashHold   // acknowledged creations
	buyers    []*crashBuyer  // acknowledged joins
	touched   []*crashHold   // acknowledged releases and checkouts, and those in flight at the kill
	pending   []crashPending // hold creations in flight at the kill
	waves     []*crashWave   // the contention cycle's bursts
	unknown   map[string]int // per zone: seats that in-flight hold requests without a key may have taken
	releases  int
	checkouts int
	idemHolds int
	inFlight  int

	checkedHolds, checkedOrders, checkedTickets, retried, resolved int
	// lastAnswered is how many requests of the contention cycle's last
	// burst were answered before the kill.
	lastAnswered int
}

func (c *crashCycle) log(t *testing.T, cycles, known int) {
	t.Helper()
	kind := "stream"
	if c.waves != nil {
		winners := 0
		for _, w := range c.waves {
			if w.winner() != nil {
				winners++
			}
		}
		kind = fmt.Sprintf("contention: %d bursts of %d buyers on the same seats, %d acknowledged winners, %d answers of the last burst before the kill",
			len(c.waves), crashDuelBuyers, winners, c.lastAnswered)
	}
	t.Logf("cycle %2d/%d (%s): killed after %v; acknowledged %d holds (%d idempotent), %d releases, %d checkouts, %d joins; %d in flight; ready again in %v; read back %d holds, %d orders, %d tickets; %d idempotent retries, %d unknown outcomes settled; %d holds known",
		c.n, cycles, kind, c.killAfter.Round(time.Millisecond), len(c.holds), c.idemHolds, c.releases, c.checkouts, len(c.buyers),
		c.inFlight, c.recovery.Round(time.Millisecond), c.checkedHolds, c.checkedOrders, c.checkedTickets, c.retried, c.resolved, known)
}

// crashBuyer is an admitted buyer.
type crashBuyer struct {
	name, queueID, token string
	cycle                int // cycle of the acknowledged join
	used                 int // seats held or bought as far as the owner knows; a lower bound
}

// crashHold is a hold the server acknowledged (or that a retry after a
// restart revealed).
type crashHold struct {
	id, zone string
	seats    []string
	buyer    *crashBuyer
	cycle    int    // cycle of the acknowledgement
	key      string // Idempotency-Key of the creation, "" for none
	body     []byte // the creation's request body, for retries
	expires  time.Time

	// state is "active", "released" or "purchased": as acknowledged, or as
	// read back after a restart when the last request on it had an unknown
	// outcome. Written by the owning worker during a cycle, by the test
	// goroutine between cycles.
	state      string
	stateCycle int    // cycle in which state was acknowledged or learnt
	orderID    string // when purchased
	payKey     string // Idempotency-Key of the acknowledged checkout
	// pending is "release" or "checkout" when that request was in flight at
	// the kill; pendingKey is the checkout's Idempotency-Key.
	pending    string
	pendingKey string
	// read is the hold as read back after the last restart.
	read crashHoldBody
}

func (h *crashHold) String() string {
	s := fmt.Sprintf("hold %s (buyer %s, zone %s, seats %v, acknowledged in cycle %d", h.id, h.buyer.name, h.zone, h.seats, h.cycle)
	switch h.state {
	case "released":
		s += fmt.Sprintf(", released in cycle %d", h.stateCycle)
	case "purchased":
		s += fmt.Sprintf(", bought as order %s in cycle %d", h.orderID, h.stateCycle)
	}
	return s + ")"
}

// crashPending is a hold request in flight at the kill.
type crashPending struct {
	buyer *crashBuyer
	zone  string
	n     int
	seats []string // named seats, nil for a quantity
	key   string
	body  []byte
	wave  *crashWave // the contention wave it belongs to, if any
}

// The server's JSON, as far as the test reads it.
type crashHoldBody struct {
	HoldID    string   `json:"hold_id"`
	Sale      string   `json:"sale"`
	Zone      string   `json:"zone"`
	Seats     []string `json:"seats"`
	State     string   `json:"state"`
	ExpiresAt string   `json:"expires_at"`
	OrderID   string   `json:"order_id"`
}

type crashOrderBody struct {
	OrderID string   `json:"order_id"`
	HoldID  string   `json:"hold_id"`
	Zone    string   `json:"zone"`
	Seats   []string `json:"seats"`
	State   string   `json:"state"`
}

type crashTicketBody struct {
	QueueID     string `json:"queue_id"`
	State       string `json:"state"`
	AccessToken string `json:"access_token"`
}

type crashStock struct {
	Zones []struct {
		ID    string `json:"id"`
		Free  int    `json:"free"`
		Held  int    `json:"held"`
		Sold  int    `json:"sold"`
		Seats []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"seats"`
	} `json:"zones"`
}

type crashErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func crashCode(body []byte) string {
	var e crashErrorBody
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Code
}

func crashJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return b
}

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
		complete := true
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
			default:
				r.errorf("cycle %d: contention burst %d on %v: %s got %d %s; want 201 or 409 seats_taken", c.n, wi, w.seats, res.buyer.name, res.status, res.resp)
			}
		}
		switch {
		case len(winners) > 1:
			r.errorf("cycle %d: contention burst %d: seats %v were acknowledged to %d buyers: %v", c.n, wi, w.seats, len(winners), winners)
		case complete && len(winners) == 0:
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

// --- after the restart ---

func (r *crashRun) verify(c *crashCycle) {
	// Every hold this cycle acknowledged or touched, and a sample of older
	// ones, read back.
	var check, old []*crashHold
	seen := make(map[*crashHold]bool)
	for _, h := range slices.Concat(c.holds, c.touched) {
		if !seen[h] {
			seen[h] = true
			check = append(check, h)
		}
	}
	for _, h := range r.holds {
		if !seen[h] {
			old = append(old, h)
		}
	}
	r.rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	check = append(check, old[:min(len(old), crashOldHoldsSample)]...)
	crashEach(check, func(h *crashHold) { r.readHold(h) })
	c.checkedHolds = len(check)

	r.settle(c)
	var bought []*crashHold
	for _, h := range check {
		if h.state == "purchased" {
			bought = append(bought, h)
		}
	}
	crashEach(bought, func(h *crashHold) { r.readOrder(h) })
	c.checkedOrders = len(bought)

	r.checkTickets(c)
	stock := r.checkStock(c)
	r.retryIdempotent(c, stock)

	for _, w := range r.workers {
		w.active = slices.DeleteFunc(w.active, func(h *crashHold) bool { return h.state != "active" })
	}
}

// readHold reads h back and checks it against what was acknowledged.
func (r *crashRun) readHold(h *crashHold) {
	st, resp, err := r.cl.call("GET", "/v1/holds/"+h.id, crashAdminToken, "", nil)
	if err != nil {
		r.errorf("cycle %d: read %s: %v", r.cycle, h, err)
		return
	}
	if st != 200 {
		r.errorf("cycle %d: %s is lost after the restart: GET /v1/holds/%s answered %d %s", r.cycle, h, h.id, st, resp)
		return
	}
	var hb crashHoldBody
	if err := json.Unmarshal(resp, &hb); err != nil {
		r.errorf("cycle %d: read %s: %q: %v", r.cycle, h, resp, err)
		return
	}
	h.read = hb
	if hb.HoldID != h.id || hb.Zone != h.zone || !slices.Equal(hb.Seats, h.seats) {
		r.errorf("cycle %d: %s reads back as %s", r.cycle, h, resp)
	}
	want := []string{h.state}
	switch h.pending {
	case "release":
		want = []string{"active", "released"}
	case "checkout":
		want = []string{"active", "purchased"}
	}
	switch {
	case hb.State == "expired" && time.Now().Before(h.expires):
		r.errorf("cycle %d: %s reads expired after the restart, but it expires only at %s", r.cycle, h, h.expires.Format(time.RFC3339))
	case hb.State == "expired":
	case !slices.Contains(want, hb.State):
		r.errorf("cycle %d: %s reads %q after the restart; want %s (a release or checkout in flight at the kill: %q)", r.cycle, h, hb.State, strings.Join(want, " or "), h.pending)
	case hb.State == "purchased" && hb.OrderID == "":
		r.errorf("cycle %d: %s reads purchased without an order_id: %s", r.cycle, h, resp)
	case h.state == "purchased" && hb.OrderID != h.orderID:
		r.errorf("cycle %d: %s reads purchased by order %q after the restart", r.cycle, h, hb.OrderID)
	}
}

// settle learns the outcome of requests in flight at the kill: releases and
// checkouts from the read-back state (checkouts with a key by retrying them,
// which must give the order the server already has, if any), hold requests
// with a key by retrying them.
func (r *crashRun) settle(c *crashCycle) {
	var bought []*crashHold
	for _, h := range c.touched {
		if h.pending == "" || h.read.HoldID == "" {
			continue
		}
		c.resolved++
		switch {
		case h.pending == "checkout" && h.pendingKey != "":
			c.retried++
			st, resp, err := r.cl.call("POST", "/v1/holds/"+h.id+"/checkout", h.buyer.token, h.pendingKey, crashPayBody)
			o, ok := r.order(st, resp, h)
			switch {
			case err != nil:
				r.errorf("cycle %d: retry of the checkout of %s in flight at the kill: %v", c.n, h, err)
			case !ok:
				r.errorf("cycle %d: retry (same Idempotency-Key %s) of the checkout of %s in flight at the kill answered %d %s; want 201", c.n, h.pendingKey, h, st, resp)
			case h.read.State == "purchased" && o.OrderID != h.read.OrderID:
				r.errorf("cycle %d: retry (same Idempotency-Key %s) of the checkout of %s made order %s, but the hold was bought as %s before the kill: a second order", c.n, h.pendingKey, h, o.OrderID, h.read.OrderID)
			default:
				h.state, h.orderID, h.payKey = "purchased", o.OrderID, h.pendingKey
				bought = append(bought, h)
			}
		case h.read.State == "purchased":
			h.state, h.orderID = "purchased", h.read.OrderID
		default:
			h.state = h.read.State
		}
		h.stateCycle, h.pending, h.pendingKey = c.n, "", ""
	}
	// Re-read the holds a retried checkout bought.
	crashEach(bought, func(h *crashHold) { r.readHold(h) })

	// Hold requests in flight: retry those with a key; the others may have
	// taken seats nobody will ever know of.
	var learnt []*crashHold
	for _, p := range c.pending {
		if p.key == "" {
			if p.wave == nil {
				c.unknown[p.zone] += p.n
			} else {
				p.wave.unknownNoKey = true
			}
			continue
		}
		c.retried++
		st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", p.buyer.token, p.key, p.body)
		if err != nil {
			r.errorf("cycle %d: retry of hold request %s (key %s) in flight at the kill: %v", c.n, p.body, p.key, err)
			continue
		}
		switch {
		case st == 201:
			h, ok := r.newHold("retry of a hold request in flight at the kill", p.buyer, p.zone, p.n, p.seats, p.key, p.body, resp)
			if !ok {
				continue
			}
			c.resolved++
			learnt = append(learnt, h)
			if p.wave != nil {
				p.wave.resolved++
				if won := p.wave.winner(); won != nil {
					r.errorf("cycle %d: contention: seats %v were acknowledged as %s before the kill, and a retry of another buyer's request (key %s) after it won them again as %s", c.n, p.wave.seats, won, p.key, h.id)
				}
			}
		case st == 409 || (st == 422 && crashCode(resp) == "limit_exceeded"):
			c.resolved++
		default:
			r.errorf("cycle %d: retry of hold request %s (key %s) in flight at the kill answered %d %s", c.n, p.body, p.key, st, resp)
		}
	}
	for _, w := range c.waves {
		switch {
		case w.resolved > 1:
			r.errorf("cycle %d: contention: seats %v in flight at the kill were won by %d retries after the restart", c.n, w.seats, w.resolved)
		case w.resolved == 0 && w.winner() == nil && w.unknownNoKey:
			c.unknown["duel"] += len(w.seats)
		}
	}
	crashEach(learnt, func(h *crashHold) { r.readHold(h) })
	c.holds = append(c.holds, learnt...)
	r.holds = append(r.holds, learnt...)
}

// readOrder reads the order of a purchased hold.
func (r *crashRun) readOrder(h *crashHold) {
	st, resp, err := r.cl.call("GET", "/v1/orders/"+h.orderID, "", "", nil)
	if err != nil {
		r.errorf("cycle %d: read order of %s: %v", r.cycle, h, err)
		return
	}
	var o crashOrderBody
	if st != 200 || json.Unmarshal(resp, &o) != nil {
		r.errorf("cycle %d: order of %s is lost after the restart: GET /v1/orders/%s answered %d %s", r.cycle, h, h.orderID, st, resp)
		return
	}
	if o.OrderID != h.orderID || o.HoldID != h.id || o.State != "paid" || o.Zone != h.zone || !slices.Equal(o.Seats, h.seats) {
		r.errorf("cycle %d: order of %s reads back as %s; want paid, same hold and seats", r.cycle, h, resp)
	}
}

// checkTickets reads back the places in line: this cycle's joins and a
// sample of older ones; a few buyers join again and must keep their place.
func (r *crashRun) checkTickets(c *crashCycle) {
	check := slices.Clone(c.buyers)
	old := slices.DeleteFunc(slices.Clone(r.buyers), func(b *crashBuyer) bool { return b.cycle == c.n })
	r.rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	check = append(check, old[:min(len(old), crashOldTicketsSample)]...)
	crashEach(check, func(b *crashBuyer) { r.readTicket(b) })
	c.checkedTickets = len(check)
	for _, b := range check[:min(len(check), crashRejoinSample)] {
		st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/queue", "", "", crashJSON(map[string]string{"buyer": b.name}))
		var tk crashTicketBody
		if err != nil || st != 200 || json.Unmarshal(resp, &tk) != nil || tk.QueueID != b.queueID {
			r.errorf("cycle %d: buyer %s (queue_id %s) joined again after the restart and got %d %s (err %v); want the same queue_id", c.n, b.name, b.queueID, st, resp, err)
		}
	}
}

// readTicket reads back an acknowledged place in line.
func (r *crashRun) readTicket(b *crashBuyer) {
	st, resp, err := r.cl.call("GET", "/v1/sales/"+crashSaleID+"/queue/"+b.queueID, "", "", nil)
	var tk crashTicketBody
	switch {
	case err != nil:
		r.errorf("cycle %d: read the place in line of %s: %v", r.cycle, b.name, err)
	case st != 200 || json.Unmarshal(resp, &tk) != nil:
		r.errorf("cycle %d: the place in line %s of buyer %s (join acknowledged in cycle %d) is lost after the restart: GET answered %d %s", r.cycle, b.queueID, b.name, b.cycle, st, resp)
	case tk.QueueID != b.queueID || (tk.State != "admitted" && tk.State != "waiting"):
		// Waiting: a buyer still in line when the server was killed.
		r.errorf("cycle %d: the place in line %s of buyer %s (joined in cycle %d) reads back as %s", r.cycle, b.queueID, b.name, b.cycle, resp)
	}
}

// checkStock compares the zones' counts and seat maps with the model.
func (r *crashRun) checkStock(c *crashCycle) map[string][3]int {
	active := make(map[string]int)
	sold := make(map[string]int)
	owner := make(map[string]*crashHold) // zone/seat -> the live hold that has it
	for _, h := range r.holds {
		if h.state != "active" && h.state != "purchased" {
			continue
		}
		if h.state == "active" {
			active[h.zone] += len(h.seats)
		} else {
			sold[h.zone] += len(h.seats)
		}
		for _, s := range h.seats {
			k := h.zone + "/" + s
			if o := owner[k]; o != nil {
				r.errorf("cycle %d: seat %s is in two live holds: %s and %s", c.n, k, o, h)
			}
			owner[k] = h
		}
	}
	counts := r.stock("")
	for _, z := range crashZones {
		got, ok := counts[z]
		if !ok {
			r.errorf("cycle %d: availability has no zone %s", c.n, z)
			continue
		}
		free, held, sld := got[0], got[1], got[2]
		if free+held+sld != crashCapacity[z] {
			r.errorf("cycle %d: zone %s: free %d + held %d + sold %d != capacity %d", c.n, z, free, held, sld, crashCapacity[z])
		}
		if sld != sold[z] {
			r.errorf("cycle %d: zone %s has %d seats sold, but the acknowledged (and settled) orders cover %d", c.n, z, sld, sold[z])
		}
		extra := held - active[z]
		switch {
		case extra < 0:
			r.errorf("cycle %d: zone %s has %d seats held, fewer than the %d of acknowledged active holds: acknowledged holds are lost", c.n, z, held, active[z])
		case extra < r.extra[z]:
			r.errorf("cycle %d: zone %s: held seats that no known hold explains went from %d to %d: holds nobody released vanished", c.n, z, r.extra[z], extra)
		case extra > r.extra[z]+c.unknown[z]:
			r.errorf("cycle %d: zone %s has %d seats held: %d by known active holds, %d by holds of earlier kills, and only %d more can come from requests in flight at this kill: a write was half applied or applied without an answer",
				c.n, z, held, active[z], r.extra[z], c.unknown[z])
		}
		r.extra[z] = max(extra, 0)
	}
	for _, z := range []string{"res", "duel"} {
		seats := r.seatMap(z)
		if seats == nil {
			continue
		}
		n := map[string]int{}
		for id, st := range seats {
			n[st]++
			h := owner[z+"/"+id]
			switch {
			case h == nil:
			case h.state == "active" && st != "held":
				r.errorf("cycle %d: seat %s/%s of %s reads %q after the restart", c.n, z, id, h, st)
			case h.state == "purchased" && st != "sold":
				r.errorf("cycle %d: seat %s/%s of %s reads %q after the restart", c.n, z, id, h, st)
			}
		}
		if got := counts[z]; n["free"] != got[0] || n["held"] != got[1] || n["sold"] != got[2] || len(seats) != crashCapacity[z] {
			r.errorf("cycle %d: zone %s: seat map has %d seats, %d free, %d held, %d sold; counts say %v", c.n, z, len(seats), n["free"], n["held"], n["sold"], got)
		}
	}
	return counts
}

// stock reads the availability counts: zone -> free, held, sold.
func (r *crashRun) stock(query string) map[string][3]int {
	st, resp, err := r.cl.call("GET", "/v1/sales/"+crashSaleID+"/availability"+query, "", "", nil)
	var s crashStock
	if err != nil || st != 200 || json.Unmarshal(resp, &s) != nil {
		r.errorf("cycle %d: availability%s answered %d %.300s (err %v)", r.cycle, query, st, resp, err)
		return nil
	}
	out := make(map[string][3]int, len(s.Zones))
	for _, z := range s.Zones {
		out[z.ID] = [3]int{z.Free, z.Held, z.Sold}
	}
	return out
}

// seatMap reads a reserved zone's seats: seat -> status.
func (r *crashRun) seatMap(zone string) map[string]string {
	st, resp, err := r.cl.call("GET", "/v1/sales/"+crashSaleID+"/availability?zone="+zone, "", "", nil)
	var s crashStock
	if err != nil || st != 200 || json.Unmarshal(resp, &s) != nil || len(s.Zones) != 1 {
		r.errorf("cycle %d: availability of zone %s answered %d %.300s (err %v)", r.cycle, zone, st, resp, err)
		return nil
	}
	out := make(map[string]string, len(s.Zones[0].Seats))
	for _, seat := range s.Zones[0].Seats {
		out[seat.ID] = seat.Status
	}
	return out
}

// retryIdempotent sends acknowledged idempotent holds and checkouts again,
// with the same key and body: they must answer as the first time and change
// nothing.
func (r *crashRun) retryIdempotent(c *crashCycle, before map[string][3]int) {
	var mine, older, paid []*crashHold
	for _, h := range r.holds {
		switch {
		case h.key != "" && h.cycle == c.n:
			mine = append(mine, h)
		case h.key != "":
			older = append(older, h)
		}
		if h.payKey != "" {
			paid = append(paid, h)
		}
	}
	shuffle := func(s []*crashHold) {
		r.rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	}
	shuffle(mine)
	shuffle(older)
	shuffle(paid)
	holds := append(mine[:min(len(mine), crashIdemRetriesMax/2)], older[:min(len(older), crashIdemRetriesMax/2)]...)
	for _, h := range holds {
		c.retried++
		st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", h.buyer.token, h.key, h.body)
		var hb crashHoldBody
		if err != nil || st != 201 || json.Unmarshal(resp, &hb) != nil || hb.HoldID != h.id || !slices.Equal(hb.Seats, h.seats) {
			r.errorf("cycle %d: retry (same Idempotency-Key %s, same body) of the request that made %s answered %d %s (err %v); want 201 with the same hold", c.n, h.key, h, st, resp, err)
		}
	}
	for _, h := range paid[:min(len(paid), crashPayRetriesMax)] {
		c.retried++
		st, resp, err := r.cl.call("POST", "/v1/holds/"+h.id+"/checkout", h.buyer.token, h.payKey, crashPayBody)
		o, ok := r.order(st, resp, h)
		if err != nil || !ok || o.OrderID != h.orderID {
			r.errorf("cycle %d: retry (same Idempotency-Key %s) of the checkout of %s answered %d %s (err %v); want 201 with the same order", c.n, h.payKey, h, st, resp, err)
		}
	}
	if before == nil {
		return
	}
	if after := r.stock(""); !maps.Equal(before, after) {
		r.errorf("cycle %d: retries of acknowledged idempotent requests changed the stock from %v to %v", c.n, before, after)
	}
}

// crashEach runs f over items on crashWorkers goroutines.
func crashEach[T any](items []T, f func(T)) {
	ch := make(chan T)
	var wg sync.WaitGroup
	for range crashWorkers {
		wg.Go(func() {
			for it := range ch {
				f(it)
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}

// createSale creates the test sale: general admission for quantities, a
// reserved zone for named seats, and a reserved zone for the contention
// cycle alone.
func (r *crashRun) createSale() {
	rows := func(prefix string, n, seats int) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = map[string]any{"row": fmt.Sprintf("%s%d", prefix, i+1), "seats": seats}
		}
		return out
	}
	def := map[string]any{
		"id": crashSaleID, "name": "Crash test", "hold_ttl_s": crashHoldTTLS, "max_per_buyer": crashMaxPerBuyer,
		"waiting_room": map[string]any{"active_limit": 1_000_000, "admit_per_s": 0, "access_ttl_s": 86400},
		"zones": []map[string]any{
			{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": crashGACapacity},
			{"id": "res", "name": "Reserved", "price_cents": 9000, "rows": rows("R", crashResRows, crashResSeats)},
			{"id": "duel", "name": "Contended", "price_cents": 12000, "rows": rows("D", crashDuelRows, crashDuelSeats)},
		},
	}
	st, resp, err := r.cl.call("POST", "/v1/sales", crashAdminToken, "", crashJSON(def))
	if err != nil || st != 201 {
		r.t.Fatalf("create the sale: %d %s (err %v)\n%s", st, resp, err, r.srv.out.tail())
	}
}

// --- HTTP ---

// crashClient speaks to the current server. base changes only between
// cycles, while no request is in flight.
type crashClient struct {
	hc   *http.Client
	base string
}

// call sends one request and reads the whole answer. An error means the
// outcome is unknown.
func (c *crashClient) call(method, path, token, key string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// --- the child process ---

// crashBuild builds the onsale binary once for the test, without -race.
func crashBuild(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "onsale")
	start := time.Now()
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// crashServer is the onsale child process. Only the test goroutine uses it.
type crashServer struct {
	t      *testing.T
	bin    string
	data   string
	out    *crashLog
	base   string
	starts int

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // cmd.Wait's answer, set before exited is closed
}

// start starts the server on a free port and waits until /readyz is 200.
// It returns how long that took.
func (s *crashServer) start() time.Duration {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		addr := crashFreeAddr(s.t)
		s.starts++
		fmt.Fprintf(s.out, "--- start %d on %s ---\n", s.starts, addr)
		cmd := exec.Command(s.bin, "serve", "--addr", addr, "--data", s.data, "--admin-token", crashAdminToken,
			"--buyer-rate", "0", "--address-rate", "0")
		cmd.Env = crashChildEnv()
		cmd.Stdout, cmd.Stderr = s.out, s.out
		began := time.Now()
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("start %s: %v", s.bin, err)
		}
		exited := make(chan struct{})
		s.cmd, s.exited = cmd, exited
		go func() {
			s.waitErr = cmd.Wait()
			close(exited)
		}()
		if s.ready(addr) {
			s.base = "http://" + addr
			return time.Since(began)
		}
		select {
		case <-exited:
			s.cmd = nil
			// Another process may have taken the port between our probe and
			// the child's listen.
			if attempt < 3 && strings.Contains(s.out.tail(), "address already in use") {
				continue
			}
			s.t.Fatalf("onsale exited during start %d (%v) before /readyz answered 200; its output:\n%s", s.starts, s.waitErr, s.out.tail())
		default:
			s.t.Fatalf("onsale start %d: /readyz not 200 within %v; its output:\n%s", s.starts, crashReadyTimeout, s.out.tail())
		}
	}
}

// ready polls /readyz until it answers 200, the process exits or the
// deadline passes.
func (s *crashServer) ready(addr string) bool {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(crashReadyTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + addr + "/readyz")
		if err == nil {
			_, rerr := io.Copy(io.Discard, resp.Body)
			cerr := resp.Body.Close()
			if resp.StatusCode == 200 && rerr == nil && cerr == nil {
				return true
			}
		}
		select {
		case <-s.exited:
			return false
		case <-tick.C:
		}
	}
	return false
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *crashServer) kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		s.t.Errorf("onsale exited by itself before the kill (%v); its output:\n%s", s.waitErr, s.out.tail())
		s.cmd = nil
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("kill onsale: %v", err)
	}
	<-s.exited
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		s.t.Errorf("onsale did not die of SIGKILL: %v", s.cmd.ProcessState)
	}
	s.cmd = nil
}

// stop kills the child if it still runs; it is the test's cleanup, so it
// also runs after a failure.
func (s *crashServer) stop() {
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("kill onsale at cleanup: %v", err)
	}
	<-s.exited
	s.cmd = nil
}

// crashFreeAddr finds a free port on the loopback interface.
func crashFreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close probe listener: %v", err)
	}
	return addr
}

// crashChildEnv is the test's environment without ONSALE_* variables, so
// that only the flags configure the child.
func crashChildEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "ONSALE_") })
}

// crashLog keeps the last crashLogBytesMax bytes of the child's output.
type crashLog struct {
	mu sync.Mutex
	b  []byte
}

const crashLogBytesMax = 64 << 10 // enough for the last start's log and some before it

func (l *crashLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if over := len(l.b) - crashLogBytesMax; over > 0 {
		l.b = append(l.b[:0], l.b[over:]...)
	}
	return len(p), nil
}

func (l *crashLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
