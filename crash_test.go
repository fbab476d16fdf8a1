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
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
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
	seed := testSeed(t)
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
	NextRow string `json:"next_row"` // the row the next page of seats starts at
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
