//go:build unix

package main

// The money crash test kills a real onsale at each step of a checkout and of
// a cancel (ONSALE_CRASH_AT: the process sends itself SIGKILL there),
// restarts it, retries the request that got no answer with its
// Idempotency-Key as a real client would (or, once per step, gives up on it
// as another client would, leaving it to the server to finish), and checks the server against the
// payment provider's own record: the simulator's journal
// (--payment-journal), which it fsyncs before each charge or refund returns
// and reads back at start, so that it remembers keys across restarts as a
// real provider does.
//
// After each step, with nothing owed any more (onsale_payments_owed is 0):
//   - every charge has its order, paid or cancelled, or exactly one refund;
//   - every cancelled order was refunded once, and no paid order was;
//   - no refund gave back money that was never taken;
//   - a hold was charged under one order id at most: a retried checkout
//     returns the one order;
//   - no seat is in two live orders, and free + held + sold is each zone's
//     capacity, with sold equal to the seats of the live orders.
//
// One more step per seed kills the server after a charge in a sale whose
// holds last a second, and restarts it once the hold has expired: the
// money must go back, and a retry must learn the hold expired.
//
// Randomized: the seed is printed; SEED=n replays its choices.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Shape of the money crash test. The sums: each step costs two starts of a
// small data directory (about 0.1-0.3 s each) and a handful of requests, so
// eight steps, each with and without a retry, over three seeds run in a few
// seconds.
const (
	moneySeeds        = 3
	moneyBuyers       = 6
	moneyGACapacity   = 300
	moneyResRows      = 15
	moneyResSeats     = 10
	moneyRetryTimeout = 15 * time.Second // a retry may wait for the settler's backoff
	moneyRetryPoll    = 50 * time.Millisecond
	moneyOwedTimeout  = 20 * time.Second

	moneyTTLSaleID   = "crash-ttl" // holds last moneyTTLS
	moneyTTLS        = 1
	moneyTTLCapacity = 100
)

var moneySteps = []string{
	"checkout.before_begin", "checkout.after_begin", "checkout.after_charge", "checkout.after_order",
	"cancel.before_begin", "cancel.before_refund", "cancel.after_refund", "cancel.after_record",
}

var moneyCapacity = map[string]int{"ga": moneyGACapacity, "res": moneyResRows * moneyResSeats}

func TestCrashMoney(t *testing.T) {
	seeds := []uint64{}
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seeds = append(seeds, v)
	} else {
		base := uint64(time.Now().UnixNano())
		for i := range moneySeeds {
			seeds = append(seeds, base+uint64(i))
		}
	}
	bin := crashBuild(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (replay with SEED=%d)", seed, seed)
			m := newMoneyRun(t, bin, seed)
			defer m.srv.stop()
			m.run()
			t.Logf("seed %d: %d steps, %d charges, %d refunds, %d orders; %d discrepancies", seed, 2*len(moneySteps)+1,
				m.lastCharges, m.lastRefunds, len(m.orders), m.discrepancies)
		})
	}
}

type moneyOrder struct {
	id, hold, zone string
	seats          []string
}

type moneyRun struct {
	t       *testing.T
	srv     *crashServer
	cl      *crashClient
	rng     *rand.Rand
	journal string
	tokens  []string // admitted buyers' access tokens
	ttlTok  string   // a buyer admitted to the short-hold sale

	orders    map[string]*moneyOrder // by order id: every order the test learned of
	holdOrder map[string]string      // hold id -> the order a checkout answered

	lastCharges, lastRefunds, discrepancies int
}

func newMoneyRun(t *testing.T, bin string, seed uint64) *moneyRun {
	dir := t.TempDir()
	journal := filepath.Join(dir, "payments.jsonl")
	srv := &crashServer{t: t, bin: bin, data: filepath.Join(dir, "data"), out: &crashLog{},
		args: []string{"--payment-journal", journal}}
	m := &moneyRun{
		t: t, srv: srv, rng: rand.New(rand.NewPCG(seed, 0)), journal: journal,
		cl:     &crashClient{hc: &http.Client{Timeout: crashRequestTimeout}},
		orders: map[string]*moneyOrder{}, holdOrder: map[string]string{},
	}
	return m
}

func (m *moneyRun) start(crashAt string) {
	m.srv.env = nil
	if crashAt != "" {
		m.srv.env = []string{"ONSALE_CRASH_AT=" + crashAt}
	}
	m.cl.hc.CloseIdleConnections()
	m.srv.start()
	m.cl.base = m.srv.base
}

// died waits for the child to have killed itself at its crash step.
func (m *moneyRun) died(step string) {
	m.t.Helper()
	select {
	case <-m.srv.exited:
	case <-time.After(crashRequestTimeout):
		m.t.Fatalf("%s: onsale did not die at the step; its output:\n%s", step, m.srv.out.tail())
	}
	if ws, ok := m.srv.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		m.t.Fatalf("%s: onsale did not die of SIGKILL: %v\n%s", step, m.srv.cmd.ProcessState, m.srv.out.tail())
	}
	m.srv.cmd = nil
}

func (m *moneyRun) run() {
	m.start("")
	m.createSale()
	m.ttlTok = m.joinSale(moneyTTLSaleID, "money-ttl")
	var never atomic.Bool // no kill while buyers join
	for i := range moneyBuyers {
		b, err := (&crashRun{t: m.t, cl: m.cl, srv: m.srv}).join(fmt.Sprintf("money-%d", i), &never)
		if err != nil || b == nil || b.token == "" {
			m.t.Fatalf("join buyer %d: %v", i, err)
		}
		m.tokens = append(m.tokens, b.token)
	}
	type job struct {
		step   string
		giveUp bool
	}
	var jobs []job
	for _, step := range moneySteps {
		jobs = append(jobs, job{step, false}, job{step, true})
	}
	m.rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	for n, j := range jobs {
		m.step(n, j.step, j.giveUp)
		m.check(j.step)
		if m.t.Failed() {
			m.t.FailNow()
		}
	}
	m.expiredStep(m.rng.IntN(2) == 0)
	m.check("checkout.after_charge, hold expired")
}

// joinSale joins a sale's line and waits for the admission; it returns the
// access token.
func (m *moneyRun) joinSale(sale, name string) string {
	m.t.Helper()
	st, resp, err := m.cl.call("POST", "/v1/sales/"+sale+"/queue", "", "", crashJSON(map[string]string{"buyer": name}))
	var tk crashTicketBody
	deadline := time.Now().Add(crashAdmitTimeout)
	for {
		if err != nil || st != 200 || json.Unmarshal(resp, &tk) != nil {
			m.t.Fatalf("join %s: %d %s (err %v)", sale, st, resp, err)
		}
		if tk.State == "admitted" && tk.AccessToken != "" {
			return tk.AccessToken
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("join %s: not admitted within %v: %s", sale, crashAdmitTimeout, resp)
		}
		time.Sleep(crashAdmitPoll)
		st, resp, err = m.cl.call("GET", "/v1/sales/"+sale+"/queue/"+tk.QueueID, "", "", nil)
	}
}

// expiredStep dies after the charge of a hold that expires before the
// restart.
func (m *moneyRun) expiredStep(giveUp bool) {
	const step = "checkout.after_charge"
	m.srv.kill()
	m.start(step)
	st, resp, err := m.cl.call("POST", "/v1/sales/"+moneyTTLSaleID+"/holds", m.ttlTok, "", crashJSON(map[string]any{"zone": "ga", "quantity": 2}))
	var hb crashHoldBody
	if err != nil || st != 201 || json.Unmarshal(resp, &hb) != nil {
		m.t.Fatalf("hold in %s: %d %s (err %v)", moneyTTLSaleID, st, resp, err)
	}
	expires, perr := time.Parse(time.RFC3339Nano, hb.ExpiresAt)
	if perr != nil {
		m.t.Fatalf("hold expires_at %q: %v", hb.ExpiresAt, perr)
	}
	if _, _, err := m.cl.call("POST", "/v1/holds/"+hb.HoldID+"/checkout", m.ttlTok, "pay-ttl", crashPayBody); err == nil {
		m.t.Fatalf("%s: the checkout answered before the step was reached", step)
	}
	m.died(step)
	time.Sleep(time.Until(expires) + 50*time.Millisecond) // down past the hold's expiry
	m.start("")
	if giveUp {
		return
	}
	deadline := time.Now().Add(moneyRetryTimeout)
	for {
		st, resp, err := m.cl.call("POST", "/v1/holds/"+hb.HoldID+"/checkout", m.ttlTok, "pay-ttl", crashPayBody)
		if err == nil && st == 410 && crashCode(resp) == "hold_expired" {
			return
		}
		if time.Now().After(deadline) {
			m.discrepancy("%s: retry of the checkout of expired hold %s: last %d %s (err %v); want 410 hold_expired", step, hb.HoldID, st, resp, err)
			return
		}
		time.Sleep(moneyRetryPoll)
	}
}

func (m *moneyRun) createSale() {
	rows := make([]map[string]any, moneyResRows)
	for i := range rows {
		rows[i] = map[string]any{"row": fmt.Sprintf("R%d", i+1), "seats": moneyResSeats}
	}
	def := map[string]any{
		"id": crashSaleID, "name": "Money crash test", "hold_ttl_s": crashHoldTTLS, "max_per_buyer": crashMaxPerBuyer,
		"waiting_room": map[string]any{"active_limit": 1_000_000, "admit_per_s": 0, "access_ttl_s": 86400},
		"zones": []map[string]any{
			{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": moneyGACapacity},
			{"id": "res", "name": "Reserved", "price_cents": 9000, "rows": rows},
		},
	}
	st, resp, err := m.cl.call("POST", "/v1/sales", crashAdminToken, "", crashJSON(def))
	if err != nil || st != 201 {
		m.t.Fatalf("create the sale: %d %s (err %v)\n%s", st, resp, err, m.srv.out.tail())
	}
	ttl := map[string]any{
		"id": moneyTTLSaleID, "name": "Money crash test, short holds", "hold_ttl_s": moneyTTLS, "max_per_buyer": crashMaxPerBuyer,
		"waiting_room": map[string]any{"active_limit": 1_000_000, "admit_per_s": 0, "access_ttl_s": 86400},
		"zones":        []map[string]any{{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": moneyTTLCapacity}},
	}
	st, resp, err = m.cl.call("POST", "/v1/sales", crashAdminToken, "", crashJSON(ttl))
	if err != nil || st != 201 {
		m.t.Fatalf("create the sale %s: %d %s (err %v)", moneyTTLSaleID, st, resp, err)
	}
}

// hold places a small hold for a random buyer and returns its id and token.
func (m *moneyRun) hold() (string, string) {
	m.t.Helper()
	token := m.tokens[m.rng.IntN(len(m.tokens))]
	zone := []string{"ga", "res"}[m.rng.IntN(2)]
	body := crashJSON(map[string]any{"zone": zone, "quantity": 1 + m.rng.IntN(3)})
	st, resp, err := m.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", token, "", body)
	var hb crashHoldBody
	if err != nil || st != 201 || json.Unmarshal(resp, &hb) != nil {
		m.t.Fatalf("hold: %d %s (err %v)", st, resp, err)
	}
	return hb.HoldID, token
}

// checkout buys a hold with key and records the order it answers; it
// retries an unknown outcome or a transient refusal as a client would.
func (m *moneyRun) checkout(step, holdID, token, key string) {
	m.t.Helper()
	deadline := time.Now().Add(moneyRetryTimeout)
	for {
		st, resp, err := m.cl.call("POST", "/v1/holds/"+holdID+"/checkout", token, key, crashPayBody)
		if err == nil && st == 201 {
			m.learnOrder(step, holdID, resp)
			return
		}
		if time.Now().After(deadline) {
			m.discrepancy("%s: checkout of %s (key %s) never answered 201: last %d %s (err %v)", step, holdID, key, st, resp, err)
			return
		}
		time.Sleep(moneyRetryPoll)
	}
}

func (m *moneyRun) learnOrder(step, holdID string, resp []byte) {
	var o crashOrderBody
	if json.Unmarshal(resp, &o) != nil || o.OrderID == "" {
		m.discrepancy("%s: checkout answer without an order: %s", step, resp)
		return
	}
	if prev, ok := m.holdOrder[holdID]; ok && prev != o.OrderID {
		m.discrepancy("%s: hold %s answered order %s after order %s: a second order", step, holdID, o.OrderID, prev)
	}
	m.holdOrder[holdID] = o.OrderID
	m.orders[o.OrderID] = &moneyOrder{id: o.OrderID, hold: holdID, zone: o.Zone, seats: o.Seats}
}

// cancel cancels an order, retrying an unknown outcome.
func (m *moneyRun) cancel(step, orderID string) {
	m.t.Helper()
	deadline := time.Now().Add(moneyRetryTimeout)
	for {
		st, resp, err := m.cl.call("POST", "/v1/orders/"+orderID+"/cancel", crashAdminToken, "", nil)
		var o crashOrderBody
		if err == nil && st == 200 && json.Unmarshal(resp, &o) == nil && o.State == "cancelled" {
			return
		}
		if time.Now().After(deadline) {
			m.discrepancy("%s: cancel of %s never answered 200 cancelled: last %d %s (err %v)", step, orderID, st, resp, err)
			return
		}
		time.Sleep(moneyRetryPoll)
	}
}

// step runs one request that dies at step, restarts, and retries it.
func (m *moneyRun) step(n int, step string, giveUp bool) {
	holdID, token := m.hold()
	key := fmt.Sprintf("pay-%d-%d", n, m.rng.Uint32())
	// Some traffic that completes around it.
	if m.rng.IntN(2) == 0 {
		h2, t2 := m.hold()
		m.checkout(step, h2, t2, fmt.Sprintf("other-%d", n))
	}
	var orderID string
	if strings.HasPrefix(step, "cancel.") {
		m.checkout(step, holdID, token, key)
		orderID = m.holdOrder[holdID]
	}
	m.srv.kill()
	m.start(step)
	var st int
	var err error
	if orderID == "" {
		st, _, err = m.cl.call("POST", "/v1/holds/"+holdID+"/checkout", token, key, crashPayBody)
	} else {
		st, _, err = m.cl.call("POST", "/v1/orders/"+orderID+"/cancel", crashAdminToken, "", nil)
	}
	if err == nil && !strings.HasSuffix(step, ".after_order") && !strings.HasSuffix(step, ".after_record") {
		m.t.Fatalf("%s: answered %d before the step was reached", step, st)
	}
	m.died(step)
	m.start("")
	switch {
	case giveUp:
	case orderID == "":
		m.checkout(step, holdID, token, key)
	default:
		m.cancel(step, orderID)
	}
}

// journalEntries reads the provider's record.
func (m *moneyRun) journalEntries() (charges map[string]string, refunds map[string]int, unpaid []string) {
	charges, refunds = map[string]string{}, map[string]int{}
	f, err := os.Open(m.journal)
	if err != nil {
		m.t.Fatalf("read the payment journal: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Op, Order, Hold string
			Paid            bool
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			m.t.Fatalf("payment journal line %q: %v", sc.Text(), err)
		}
		switch e.Op {
		case "charge":
			charges[e.Order] = e.Hold
		case "refund":
			refunds[e.Order]++
			if !e.Paid {
				unpaid = append(unpaid, e.Order)
			}
		}
	}
	if err := sc.Err(); err != nil {
		m.t.Fatalf("read the payment journal: %v", err)
	}
	return charges, refunds, unpaid
}

func (m *moneyRun) owed() int {
	st, resp, err := m.cl.call("GET", "/metrics", crashAdminToken, "", nil)
	if err != nil || st != 200 {
		return -1
	}
	for _, line := range strings.Split(string(resp), "\n") {
		if v, ok := strings.CutPrefix(line, "onsale_payments_owed "); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

func (m *moneyRun) discrepancy(format string, args ...any) {
	m.t.Helper()
	m.discrepancies++
	m.t.Errorf(format, args...)
}

// check compares the server with the provider's record.
func (m *moneyRun) check(step string) {
	deadline := time.Now().Add(moneyOwedTimeout)
	for m.owed() != 0 {
		if time.Now().After(deadline) {
			m.discrepancy("%s: payments still owed after %v", step, moneyOwedTimeout)
			return
		}
		time.Sleep(moneyRetryPoll)
	}
	charges, refunds, unpaid := m.journalEntries()
	m.lastCharges, m.lastRefunds = len(charges), len(refunds)
	for _, o := range unpaid {
		m.discrepancy("%s: order %s refunded without having been charged", step, o)
	}
	perHold := map[string][]string{}
	for order, hold := range charges {
		perHold[hold] = append(perHold[hold], order)
		st, resp, err := m.cl.call("GET", "/v1/orders/"+order, "", "", nil)
		if err != nil {
			m.t.Fatalf("%s: read order %s: %v", step, order, err)
		}
		var o crashOrderBody
		switch {
		case st == 404 && refunds[order] != 1:
			m.discrepancy("%s: charge %s (hold %s) has no order and %d refunds", step, order, hold, refunds[order])
		case st == 404:
		case st != 200 || json.Unmarshal(resp, &o) != nil:
			m.t.Fatalf("%s: read order %s: %d %s", step, order, st, resp)
		case o.State == "paid" && refunds[order] != 0:
			m.discrepancy("%s: order %s is paid and was refunded", step, order)
		case o.State == "cancelled" && refunds[order] != 1:
			m.discrepancy("%s: order %s is cancelled with %d refunds", step, order, refunds[order])
		default:
			if m.orders[order] == nil {
				m.orders[order] = &moneyOrder{id: order, hold: hold, zone: o.Zone, seats: o.Seats}
			}
		}
	}
	for hold, orders := range perHold {
		kept := 0
		for _, o := range orders {
			if refunds[o] == 0 {
				kept++
			}
		}
		if kept > 1 {
			m.discrepancy("%s: hold %s was charged and kept under %d orders %v", step, hold, kept, orders)
		}
		if want, ok := m.holdOrder[hold]; ok && refunds[want] == 0 {
			if _, charged := charges[want]; !charged {
				m.discrepancy("%s: hold %s answered order %s, which the provider never charged", step, hold, want)
			}
		}
	}
	// Seats: no seat in two live orders; the stock adds up.
	seatOwner := map[string]string{}
	soldBy := map[string]int{}
	for id, o := range m.orders {
		st, resp, err := m.cl.call("GET", "/v1/orders/"+id, "", "", nil)
		var ob crashOrderBody
		if err != nil || st != 200 || json.Unmarshal(resp, &ob) != nil {
			m.discrepancy("%s: order %s the server answered is gone: %d %s (err %v)", step, id, st, resp, err)
			continue
		}
		if ob.State != "paid" {
			continue
		}
		soldBy[o.zone] += len(o.seats)
		for _, s := range o.seats {
			k := o.zone + "/" + s
			if prev, ok := seatOwner[k]; ok {
				m.discrepancy("%s: seat %s is in orders %s and %s", step, k, prev, id)
			}
			seatOwner[k] = id
		}
	}
	st, resp, err := m.cl.call("GET", "/v1/sales/"+crashSaleID+"/availability", "", "", nil)
	var stock crashStock
	if err != nil || st != 200 || json.Unmarshal(resp, &stock) != nil {
		m.t.Fatalf("%s: availability: %d %s (err %v)", step, st, resp, err)
	}
	for _, z := range stock.Zones {
		if z.Free+z.Held+z.Sold != moneyCapacity[z.ID] {
			m.discrepancy("%s: zone %s: free %d + held %d + sold %d != capacity %d", step, z.ID, z.Free, z.Held, z.Sold, moneyCapacity[z.ID])
		}
		if z.Sold != soldBy[z.ID] {
			m.discrepancy("%s: zone %s sells %d seats; the live orders hold %d", step, z.ID, z.Sold, soldBy[z.ID])
		}
	}
	// The short-hold sale never keeps an order: its one charge is refunded.
	st, resp, err = m.cl.call("GET", "/v1/sales/"+moneyTTLSaleID+"/availability", "", "", nil)
	stock = crashStock{}
	if err != nil || st != 200 || json.Unmarshal(resp, &stock) != nil {
		m.t.Fatalf("%s: availability of %s: %d %s (err %v)", step, moneyTTLSaleID, st, resp, err)
	}
	for _, z := range stock.Zones {
		if z.Free+z.Held+z.Sold != moneyTTLCapacity || z.Sold != 0 {
			m.discrepancy("%s: sale %s zone %s: free %d + held %d + sold %d; want %d, none sold", step, moneyTTLSaleID, z.ID, z.Free, z.Held, z.Sold, moneyTTLCapacity)
		}
	}
}
