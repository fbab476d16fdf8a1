//go:build unix

package main

// TestClusterSeatLinearizable checks that the holds of one seat are
// linearizable across the three nodes of a cluster while the leader is
// killed with SIGKILL and stopped with SIGSTOP: every answer the buyers got
// must fit one order of the operations, each taking effect at one instant
// between its request and its answer, in which a seat is held by at most
// one hold at a time (API.md: "Two buyers asking for the same seat at the
// same moment: exactly one gets 201").
//
// Buyers hold one named seat of a row of four and release their holds,
// each request through a random live node. Every operation is recorded
// with its call and return times (monotonic), and porcupine checks the
// history of each seat against the model below.
//
// Answers that are not known (a transport error, the client's timeout, a
// 5xx) are settled the way a buyer would: a hold sent with an
// Idempotency-Key is sent again with the same key, and a release is sent
// again (a release of a released hold answers 200 again), until an answer
// comes or linearRetryFor passes. The operation then spans from its first
// request to the answer that settled it: the server promises to carry out a
// key once, so the retries are one operation. Half of the holds go without
// a key; one of those whose answer is unknown, and any operation still
// unsettled after linearRetryFor, is recorded with an unknown output and a
// return at the end of the history: it may have taken effect at any moment
// after its call, or never (the model accepts both).
//
// A leader stopped with SIGSTOP is where stale answers would come from, so
// the buyers' requests keep going to it for linearHealthLag (they wait
// until it continues), and a prober (client linearClients) takes a seat
// through the new leader during the pause and releases it through the
// stopped node just before SIGCONT.
//
// Randomized: the seed is printed; SEED=n replays the same choices (not
// the timing of the faults against the requests).

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Shape and limits. The sums: six buyers with a think time of 10-40 ms
// and a few ms a request make some 150 operations a second, so a full run
// of about 30 s records under 5,000 operations, about 1,200 a seat, which
// porcupine checks in well under a second when few are unknown.
const (
	linearFaultsFull  = 6 // leader faults, alternating SIGKILL and SIGSTOP
	linearFaultsShort = 2
	linearClients     = 6
	linearSeats       = 4 // one row, A-1..A-4: six buyers contend for four seats
	linearOpsMax      = 3_000
	linearThinkMin    = 10 * time.Millisecond
	linearThinkSpan   = 30 * time.Millisecond
	linearRetryFor    = 15 * time.Second // well past an election and a SIGSTOP
	linearRetryPause  = 50 * time.Millisecond
	linearBefore      = 1500 * time.Millisecond // load before the first fault
	linearBetween     = 2 * time.Second         // load between faults, after recovery, at least
	linearKillDown    = time.Second             // a killed leader stays down this long
	// linearHealthLag is how long the buyers' load balancer goes on
	// sending requests to a stopped node before its health check notices;
	// those requests wait in the node's sockets and are served the moment
	// it continues, while it may still take itself for the leader.
	linearHealthLag = time.Second
	// linearRequestTimeout outlasts a SIGSTOP (clusterStopFor), so that a
	// request sent to the stopped node is still waiting when it continues.
	linearRequestTimeout = clusterStopFor + 2*time.Second
	// linearProbeAhead is how long before SIGCONT the prober's request is
	// sent to the stopped node: time to reach its socket.
	linearProbeAhead = 100 * time.Millisecond
	linearCheckMax   = 60 * time.Second // porcupine's time limit; past it the result is Unknown
	linearZone       = "row"
	linearRow        = "A"
)

// seatOp is one operation's input: a hold of the seat, or a release of a
// hold of it.
type seatOp struct {
	seat    int
	release bool
	hold    string // the hold a release gives up
	keyed   bool   // a hold sent with an Idempotency-Key
}

// seatResult is what the server answered.
type seatResult int

const (
	resultOK        seatResult = iota // 201 to a hold, 200 to a release
	resultTaken                       // 409 seats_taken
	resultNotFound                    // 404 to the release of one's own hold
	resultNotActive                   // 409 hold_not_active to a release
	resultUnknown                     // no answer: it may or may not have happened
)

type seatOutput struct {
	result seatResult
	hold   string // the hold id of a 201
}

// seatMeta is shown in the visualization.
type seatMeta struct {
	node   string // the node of the settling request
	tries  int
	fault  int32
	answer string // status and error code, or the transport error
}

// seatModel is one seat: its state is the id of the hold that holds it, ""
// when free, or "?" when held by a hold whose 201 was never seen (nobody
// can release that one). The model follows API.md:
//
//   - hold: 201 only when free, and the seat is then held by that id;
//     409 seats_taken only when held. Unknown: if free, the seat becomes
//     held by "?"; an unknown operation returns at the end of the history,
//     so linearizing it last stands for "never happened".
//   - release of hold h (only ever sent by h's buyer, after h's 201):
//     200, and the seat is free if h held it; a release of a released hold
//     answers 200 again and changes nothing. 404 and 409 hold_not_active
//     are never right: the hold exists, no hold expires during the test
//     (hold_ttl_s 3600) and none is bought.
var seatModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := make([][]porcupine.Operation, linearSeats)
		for _, op := range history {
			s := op.Input.(seatOp).seat
			by[s] = append(by[s], op)
		}
		return by
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(seatOp), output.(seatOutput)
		if in.release {
			switch out.result {
			case resultOK, resultUnknown:
				if st == in.hold {
					return true, ""
				}
				return true, st
			}
			return false, st
		}
		switch out.result {
		case resultOK:
			return st == "", out.hold
		case resultTaken:
			return st != "", st
		case resultUnknown:
			if st == "" {
				return true, "?"
			}
			return true, st
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(seatOp), output.(seatOutput)
		res := map[seatResult]string{resultOK: "ok", resultTaken: "taken", resultNotFound: "404 not_found",
			resultNotActive: "409 hold_not_active", resultUnknown: "unknown"}[out.result]
		if in.release {
			return fmt.Sprintf("release(%s) -> %s", in.hold, res)
		}
		if out.result == resultOK {
			res = out.hold
		}
		key := "no key"
		if in.keyed {
			key = "key"
		}
		return fmt.Sprintf("hold(%s-%d, %s) -> %s", linearRow, in.seat+1, key, res)
	},
	DescribeState: func(state any) string {
		if state.(string) == "" {
			return "free"
		}
		return "held by " + state.(string)
	},
	DescribeOperationMetadata: func(info any) string {
		m, ok := info.(seatMeta)
		if !ok {
			return ""
		}
		return fmt.Sprintf("node %s, %d tries, after fault %d: %s", m.node, m.tries, m.fault, m.answer)
	},
}

// linearRun is the shared state of the buyers of one run.
type linearRun struct {
	*clusterRun
	began time.Time
	fault atomic.Int32 // faults begun so far; the buyers tag their operations with it

	opsMu sync.Mutex
	ops   []porcupine.Operation
	open  []porcupine.Operation // unknown: their Return is set at the end
	// unknownTries counts the requests whose answer was unknown, per fault
	// (index 0: before the first).
	unknownTries [linearFaultsFull + 1]int
	unknownOps   [linearFaultsFull + 1]int // operations left unknown, by the fault of their call

	// faults are marked on the visualization; only the test goroutine
	// touches them.
	faults []porcupine.Annotation
	// stopped is the node stopped with SIGSTOP, since stoppedAt; guarded
	// by mu.
	stopped   *clusterNode
	stoppedAt time.Time
	// probeToken is the prober's (client linearClients), which the test
	// goroutine runs around each SIGSTOP: see probeStale.
	probeToken string
}

func (r *linearRun) now() int64 { return int64(time.Since(r.began)) }

func TestClusterSeatLinearizable(t *testing.T) {
	seed := testSeed(t)
	faults := linearFaultsFull
	if testing.Short() {
		faults = linearFaultsShort
	}
	cr := &clusterRun{t: t, bin: crashBuild(t), rng: rand.New(rand.NewPCG(seed, 0)),
		hc: &http.Client{Timeout: linearRequestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * linearClients}}}
	ld := cr.startNodes()
	r := &linearRun{clusterRun: cr}

	def := map[string]any{
		"id": clusterSaleID, "name": "One contended row", "hold_ttl_s": crashHoldTTLS, "max_per_buyer": crashMaxPerBuyer,
		// A set rate: the automatic one admits no more buyers than four
		// seats can serve, and here six must contend for them.
		"waiting_room": map[string]any{"active_limit": 1_000_000, "admit_per_s": 1000, "access_ttl_s": 86400},
		"zones": []map[string]any{{"id": linearZone, "name": "Row A", "price_cents": 4500,
			"rows": []map[string]any{{"row": linearRow, "seats": linearSeats}}}},
	}
	st, b, err := r.call(ld, "POST", "/v1/sales", crashAdminToken, "", crashJSON(def))
	if err != nil || st != 201 {
		t.Fatalf("create the sale: %d %s (err %v)", st, b, err)
	}
	tokens := make([]string, linearClients)
	for c := range tokens {
		tokens[c] = r.admit(fmt.Sprintf("linear-%d", c))
	}
	r.probeToken = r.admit("linear-probe")

	r.began = time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range linearClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.buyer(c, tokens[c], rand.New(rand.NewPCG(seed, uint64(c)+1)), stop)
		}()
	}
	time.Sleep(linearBefore)
	for f := 1; f <= faults; f++ {
		r.injectFault(f)
		time.Sleep(linearBetween + time.Duration(r.rng.IntN(1000))*time.Millisecond)
	}
	close(stop)
	wg.Wait()

	// The unknown operations return after every other one.
	end := r.now() + 1
	for i := range r.open {
		r.open[i].Return = end
		r.open[i].ClientId = linearClients + 1 + i // after the prober's; a row of its own: it overlaps its buyer's later operations
	}
	history := append(slices.Clip(r.ops), r.open...)
	perSeat := make([]int, linearSeats)
	for _, op := range history {
		perSeat[op.Input.(seatOp).seat]++
	}
	for f := 0; f <= faults; f++ {
		what := "before the first fault"
		if f > 0 {
			what = fmt.Sprintf("fault %d (%s)", f, map[bool]string{true: "SIGKILL", false: "SIGSTOP"}[f%2 == 1])
		}
		t.Logf("%s: %d requests with an unknown answer, %d operations left unknown", what, r.unknownTries[f], r.unknownOps[f])
	}
	t.Logf("%d operations, per seat %v; %d unknown", len(history), perSeat, len(r.open))
	r.logOrphans(history)

	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(seatModel, history, linearCheckMax)
	t.Logf("porcupine: %s in %v", res, time.Since(began).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		r.explain(info)
		info.AddAnnotations(r.faults)
		dir := filepath.Join("testdata", "out")
		path := filepath.Join(dir, fmt.Sprintf("cluster-linear-%d.html", seed))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Errorf("make %s: %v", dir, err)
		} else if err := porcupine.VisualizePath(seatModel, info, path); err != nil {
			t.Errorf("write the visualization: %v", err)
		}
		t.Errorf("the holds of a seat are not linearizable; the history and the longest linearizable prefix of each seat are in %s", path)
	case porcupine.Unknown:
		t.Logf("porcupine gave up after %v: the history is neither proven linearizable nor not", linearCheckMax)
	}
}

// explain logs, for each seat whose history is not linearizable, where
// the longest linearizable prefix porcupine found ends: its last
// operations and the first ones it could not place.
func (r *linearRun) explain(info porcupine.LinearizationInfo) {
	const around = 3
	describe := func(op porcupine.Operation) string {
		return fmt.Sprintf("c%d [%.3f s, %.3f s] %s (%s)", op.ClientId, float64(op.Call)/1e9, float64(op.Return)/1e9,
			seatModel.DescribeOperation(op.Input, op.Output), seatModel.DescribeOperationMetadata(op.Metadata))
	}
	type opKey struct {
		client int
		call   int64
	}
	for seat, lins := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, l := range lins {
			if len(l) > len(longest) {
				longest = l
			}
		}
		var all []porcupine.Operation
		for _, op := range r.ops {
			if op.Input.(seatOp).seat == seat {
				all = append(all, op)
			}
		}
		for _, op := range r.open {
			if op.Input.(seatOp).seat == seat {
				all = append(all, op)
			}
		}
		if len(longest) >= len(all) {
			continue
		}
		placed := map[opKey]bool{}
		for _, op := range longest {
			placed[opKey{op.ClientId, op.Call}] = true
		}
		var lines []string
		for _, op := range longest[max(len(longest)-around, 0):] {
			lines = append(lines, "  placed:     "+describe(op))
		}
		slices.SortFunc(all, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		n := 0
		for _, op := range all {
			if placed[opKey{op.ClientId, op.Call}] || n == around {
				continue
			}
			n++
			lines = append(lines, "  not placed: "+describe(op))
		}
		r.t.Errorf("seat %s-%d: %d of %d operations linearizable; where it ends:\n%s", linearRow, seat+1,
			len(longest), len(all), strings.Join(lines, "\n"))
	}
}

// logOrphans says how many seats the run ends with held by a hold whose
// 201 was never seen (an unknown hold that happened): nobody can release
// those, so they take no further part in the run.
func (r *linearRun) logOrphans(history []porcupine.Operation) {
	known := 0
	released := map[string]bool{}
	for _, op := range history {
		if in := op.Input.(seatOp); in.release {
			released[in.hold] = true
		}
	}
	for _, op := range history {
		if out := op.Output.(seatOutput); out.result == resultOK && out.hold != "" && !released[out.hold] {
			known++
		}
	}
	ld := r.leader(20 * time.Second)
	if ld == nil {
		r.t.Fatal("no leader at the end of the run")
	}
	st, b, err := r.call(ld, "GET", "/v1/sales/"+clusterSaleID+"/availability", "", "", nil)
	var stock crashStock
	if err != nil || st != 200 || json.Unmarshal(b, &stock) != nil || len(stock.Zones) != 1 {
		r.t.Fatalf("availability: %d %s %v", st, b, err)
	}
	r.t.Logf("at the end: %d seats held, %d of them by holds whose 201 was seen and not released", stock.Zones[0].Held, known)
}

// injectFault kills (odd f) or stops (even f) the leader, waits for
// another node to lead, and brings the old leader back.
func (r *linearRun) injectFault(f int) {
	t := r.t
	ld := r.leader(10 * time.Second)
	if ld == nil {
		t.Fatalf("fault %d: no leader before the fault", f)
	}
	r.fault.Store(int32(f))
	kill := f%2 == 1
	r.mu.Lock()
	if kill {
		if err := ld.cmd.Process.Kill(); err != nil {
			t.Errorf("fault %d: kill %s: %v", f, ld.id, err)
		}
		<-ld.exited
		ld.cmd = nil
	} else {
		if err := ld.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Errorf("fault %d: stop %s: %v", f, ld.id, err)
		}
		ld.paused = true
		r.stopped, r.stoppedAt = ld, time.Now()
	}
	r.mu.Unlock()
	faultAt := time.Now()
	if !r.newLeader(ld, 20*time.Second) {
		t.Fatalf("fault %d: no node took over within 20 s of losing leader %s", f, ld.id)
	}
	took := time.Since(faultAt)
	faultStart := r.now() - int64(took)
	if kill {
		time.Sleep(linearKillDown - min(took, linearKillDown))
		r.mu.Lock()
		ld.start(t, r.bin, r.peers)
		r.mu.Unlock()
	} else {
		seat, hold := r.probeHold(f)
		time.Sleep(clusterStopFor - min(time.Since(faultAt), clusterStopFor))
		// The prober's release goes to the stopped node just before it
		// continues, so it is served the moment the node runs again: the
		// node may not know yet that it no longer leads, nor that this
		// hold exists.
		probed := make(chan string, 1)
		if hold != "" {
			rng := rand.New(rand.NewPCG(r.rng.Uint64(), uint64(f)))
			go func() { probed <- r.release(linearClients, r.probeToken, seat, hold, rng, ld) }()
			time.Sleep(linearProbeAhead)
		} else {
			probed <- "no probe: the prober got no seat"
		}
		r.mu.Lock()
		if err := ld.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Errorf("fault %d: continue %s: %v", f, ld.id, err)
		}
		ld.paused = false
		r.stopped = nil
		r.mu.Unlock()
		t.Logf("fault %d: the prober's release of %s through %s as it continued: %s", f, hold, ld.id, <-probed)
	}
	r.faults = append(r.faults, porcupine.Annotation{Tag: "faults", Start: faultStart, End: r.now(),
		Description: fmt.Sprintf("%d: %s %s", f, map[bool]string{true: "SIGKILL", false: "SIGSTOP"}[kill], ld.id),
		Details:     fmt.Sprintf("from the fault until %s was back; another node led after %v", ld.id, took.Round(time.Millisecond))})
	t.Logf("fault %d: %s of leader %s; another node led after %v", f,
		map[bool]string{true: "SIGKILL", false: "SIGSTOP"}[kill], ld.id, took.Round(time.Millisecond))
}

// probeHold takes a seat through the new leader while the old one is
// stopped, for the prober to release through the old one the moment it
// continues. It gives up after a few tries (the seats are contended) and
// returns the seat and the hold, or "".
func (r *linearRun) probeHold(f int) (int, string) {
	const tries = 20
	for i := range tries {
		key := fmt.Sprintf("probe-%d-%d", f, i)
		seat := r.rng.IntN(linearSeats)
		if h := r.hold(linearClients, r.probeToken, seat, key, r.rng, nil); h != "" {
			return seat, h
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, ""
}

// newLeader waits until a node other than old says it leads and is ready.
// Stopped nodes are not asked: they would hold the request until its
// timeout.
func (r *linearRun) newLeader(old *clusterNode, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, n := range r.nodes {
			r.mu.Lock()
			up := n != old && n.cmd != nil && !n.paused
			r.mu.Unlock()
			if !up {
				continue
			}
			st, b, err := r.call(n, "GET", "/readyz", "", "", nil)
			if err == nil && st == 200 && strings.Contains(string(b), `"leader"`) {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// node picks a random live node, as a load balancer with health checks
// would: a stopped node only during linearHealthLag after it stopped. It
// waits while none is: a moment when a fault is being set up.
func (r *linearRun) node(rng *rand.Rand) *clusterNode {
	for {
		r.mu.Lock()
		n := r.nodes[rng.IntN(len(r.nodes))]
		ok := n.cmd != nil && (!n.paused || (n == r.stopped && time.Since(r.stoppedAt) < linearHealthLag))
		r.mu.Unlock()
		if ok {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// buyer holds a random seat, then releases it, and again, until stop
// closes or it made linearOpsMax operations.
func (r *linearRun) buyer(c int, token string, rng *rand.Rand, stop <-chan struct{}) {
	var mine string // the hold this buyer has, if any
	var mineSeat int
	for i := 0; i < linearOpsMax; i++ {
		select {
		case <-stop:
			return
		case <-time.After(linearThinkMin + time.Duration(rng.Int64N(int64(linearThinkSpan)))):
		}
		if mine != "" {
			r.release(c, token, mineSeat, mine, rng, nil)
			mine = ""
			continue
		}
		seat := rng.IntN(linearSeats)
		key := ""
		if rng.IntN(2) == 0 {
			key = fmt.Sprintf("b%d-%d", c, i)
		}
		if h := r.hold(c, token, seat, key, rng, nil); h != "" {
			mine, mineSeat = h, seat
		}
	}
}

// attempt is one request's answer; unknown when it gave none that counts.
type attempt struct {
	node    string
	status  int
	body    []byte
	err     error
	unknown bool
}

// send sends one request to node to, or to a random live node if to is
// nil.
func (r *linearRun) send(rng *rand.Rand, to *clusterNode, method, path, token, key string, body []byte) attempt {
	n := to
	if n == nil {
		n = r.node(rng)
	}
	st, b, err := r.call(n, method, path, token, key, body)
	return attempt{node: n.id, status: st, body: b, err: err, unknown: err != nil || st >= 500}
}

func (a attempt) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	var e crashErrorBody
	if json.Unmarshal(a.body, &e) == nil && e.Error.Code != "" {
		return fmt.Sprintf("%d %s", a.status, e.Error.Code)
	}
	return strconv.Itoa(a.status)
}

// settle sends a request until its answer is known or linearRetryFor
// passes; retry false sends it once. The first try goes to node to (nil:
// a random live node), retries to random live nodes.
func (r *linearRun) settle(rng *rand.Rand, to *clusterNode, retry bool, method, path, token, key string, body []byte) (attempt, int) {
	deadline := time.Now().Add(linearRetryFor)
	for tries := 1; ; tries++ {
		a := r.send(rng, to, method, path, token, key, body)
		to = nil
		if !a.unknown {
			return a, tries
		}
		r.opsMu.Lock()
		r.unknownTries[r.fault.Load()]++
		r.opsMu.Unlock()
		if !retry || time.Now().After(deadline) {
			return a, tries
		}
		time.Sleep(linearRetryPause)
	}
}

// record adds an operation to the history; an unknown one is kept apart
// until the end gives it its return.
func (r *linearRun) record(op porcupine.Operation) {
	r.opsMu.Lock()
	defer r.opsMu.Unlock()
	if op.Output.(seatOutput).result == resultUnknown {
		r.open = append(r.open, op)
		r.unknownOps[op.Metadata.(seatMeta).fault]++
		return
	}
	r.ops = append(r.ops, op)
}

// hold asks for one seat and returns the hold id of a 201, else "".
func (r *linearRun) hold(c int, token string, seat int, key string, rng *rand.Rand, to *clusterNode) string {
	in := seatOp{seat: seat, keyed: key != ""}
	name := fmt.Sprintf("%s-%d", linearRow, seat+1)
	body := crashJSON(map[string]any{"zone": linearZone, "seats": []string{name}})
	fault := r.fault.Load()
	call := r.now()
	a, tries := r.settle(rng, to, key != "", "POST", "/v1/sales/"+clusterSaleID+"/holds", token, key, body)
	ret := r.now()
	meta := seatMeta{node: a.node, tries: tries, fault: fault, answer: a.String()}
	op := porcupine.Operation{ClientId: c, Input: in, Call: call, Return: ret, Metadata: meta}
	var code string
	if !a.unknown {
		var e crashErrorBody
		if json.Unmarshal(a.body, &e) == nil {
			code = e.Error.Code
		}
	}
	switch {
	case a.unknown:
		op.Output = seatOutput{result: resultUnknown}
	case a.status == 201:
		var h crashHoldBody
		if err := json.Unmarshal(a.body, &h); err != nil || h.HoldID == "" || len(h.Seats) != 1 || h.Seats[0] != name {
			r.t.Errorf("buyer %d: hold of %s answered 201 with %s (%v)", c, name, a.body, err)
			return ""
		}
		op.Output = seatOutput{result: resultOK, hold: h.HoldID}
	case a.status == 409 && code == "seats_taken":
		op.Output = seatOutput{result: resultTaken}
	default:
		// Nothing else is expected; a 4xx changed nothing, so the
		// operation stays out of the history.
		r.t.Errorf("buyer %d: hold of %s: %s: %s", c, name, a, a.body)
		return ""
	}
	r.record(op)
	return op.Output.(seatOutput).hold
}

// release gives up the buyer's hold on seat.
// It returns the answer, in words, for the log.
func (r *linearRun) release(c int, token string, seat int, hold string, rng *rand.Rand, to *clusterNode) string {
	fault := r.fault.Load()
	call := r.now()
	a, tries := r.settle(rng, to, true, "DELETE", "/v1/holds/"+hold, token, "", nil)
	ret := r.now()
	op := porcupine.Operation{ClientId: c, Input: seatOp{seat: seat, release: true, hold: hold}, Call: call, Return: ret,
		Metadata: seatMeta{node: a.node, tries: tries, fault: fault, answer: a.String()}}
	var e crashErrorBody
	if !a.unknown && a.status != 200 && json.Unmarshal(a.body, &e) != nil {
		r.t.Errorf("buyer %d: release of %s: %s: %s", c, hold, a, a.body)
		return a.String()
	}
	switch {
	case a.unknown:
		op.Output = seatOutput{result: resultUnknown}
	case a.status == 200:
		op.Output = seatOutput{result: resultOK}
	case a.status == 404:
		op.Output = seatOutput{result: resultNotFound}
	case a.status == 409 && e.Error.Code == "hold_not_active":
		op.Output = seatOutput{result: resultNotActive}
	default:
		r.t.Errorf("buyer %d: release of %s: %s: %s", c, hold, a, a.body)
		return a.String()
	}
	r.record(op)
	return fmt.Sprintf("%s (answered by %s after %d tries)", a, a.node, tries)
}

// TestSeatModel checks the model on small histories whose verdict is known,
// so that a pass of the cluster test means something.
func TestSeatModel(t *testing.T) {
	hold := func(c int, call, ret int64, out seatOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: seatOp{}, Call: call, Return: ret, Output: out}
	}
	release := func(c int, call, ret int64, h string, out seatOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: seatOp{release: true, hold: h}, Call: call, Return: ret, Output: out}
	}
	ok := func(h string) seatOutput { return seatOutput{result: resultOK, hold: h} }
	taken := seatOutput{result: resultTaken}
	unknown := seatOutput{result: resultUnknown}
	const end = 100
	cases := []struct {
		name    string
		history []porcupine.Operation
		want    bool
	}{
		{"one hold, then another after its release", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), release(0, 3, 4, "h1", ok("")), hold(1, 5, 6, ok("h2"))}, true},
		{"two holds of one seat", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), hold(1, 3, 4, ok("h2"))}, false},
		{"two concurrent holds both granted", []porcupine.Operation{
			hold(0, 1, 4, ok("h1")), hold(1, 2, 3, ok("h2"))}, false},
		{"taken while free", []porcupine.Operation{
			hold(0, 1, 2, taken)}, false},
		{"taken, concurrent with the hold that took it", []porcupine.Operation{
			hold(0, 1, 4, ok("h1")), hold(1, 2, 3, taken)}, true},
		{"taken after the release completed", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), release(0, 3, 4, "h1", ok("")), hold(1, 5, 6, taken)}, false},
		{"taken, concurrent with the release", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), release(0, 3, 6, "h1", ok("")), hold(1, 4, 5, taken)}, true},
		{"released twice answers 200 twice", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), release(0, 3, 4, "h1", ok("")), release(0, 5, 6, "h1", ok(""))}, true},
		{"release of one's hold answers 404", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), release(0, 3, 4, "h1", seatOutput{result: resultNotFound})}, false},
		{"an unknown hold may explain a taken", []porcupine.Operation{
			hold(0, 1, end, unknown), hold(1, 2, 3, taken)}, true},
		{"an unknown hold may never have happened", []porcupine.Operation{
			hold(0, 1, end, unknown), hold(1, 2, 3, ok("h2"))}, true},
		{"an unknown hold that took the seat keeps it", []porcupine.Operation{
			hold(0, 1, end, unknown), hold(1, 2, 3, taken), hold(2, 4, 5, ok("h3"))}, false},
		{"an unknown release may have freed the seat", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), release(0, 3, end, "h1", unknown), hold(1, 4, 5, ok("h2"))}, true},
		{"a hold granted before the seat's release was asked for", []porcupine.Operation{
			hold(0, 1, 2, ok("h1")), hold(1, 3, 4, ok("h2")), release(0, 5, 6, "h1", ok(""))}, false},
	}
	for _, tc := range cases {
		if got := porcupine.CheckOperations(seatModel, tc.history); got != tc.want {
			t.Errorf("%s: linearizable %v, want %v", tc.name, got, tc.want)
		}
	}
}
