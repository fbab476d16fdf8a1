//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	clusterCyclesFull  = 4 // kill -9 and SIGSTOP cycles of the leader
	clusterCyclesShort = 2
	clusterWorkers     = 6 // buyers writing at once, each through a random node
	clusterSaleID      = "cluster"
	clusterCapacity    = 200_000
	clusterStopFor     = 3 * time.Second // a SIGSTOP lasts this long: well past an election
)

// clusterNode is one onsale child process of the three.
type clusterNode struct {
	id, http, raft, data string
	out                  *crashLog
	cmd                  *exec.Cmd
	exited               chan struct{}
	// paused: stopped with SIGSTOP; the buyers' load balancer leaves it out
	// as a health check would.
	paused bool
	// payments is the payment simulator's journal, one for the three
	// nodes: the one provider they all charge and refund through.
	payments string
}

type clusterRun struct {
	t     *testing.T
	bin   string
	peers string
	nodes []*clusterNode
	hc    *http.Client
	rng   *rand.Rand

	journal string // the shared payment journal

	mu    sync.Mutex
	acked map[string]clusterHold // hold id -> acknowledged hold
}

type clusterHold struct {
	buyer, token, key, order string
	body                     []byte
	// paying: a checkout was sent and its answer lost; the hold may be
	// active or purchased.
	paying bool
	// cancelled: the order's cancel was acknowledged; cancelling: sent and
	// its answer lost.
	cancelled, cancelling bool
}

func (n *clusterNode) start(t *testing.T, bin, peers string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--addr", n.http, "--data", n.data, "--admin-token", crashAdminToken,
		"--buyer-rate", "0", "--address-rate", "0", "--node-id", n.id, "--raft-addr", n.raft, "--peers", peers,
		// Snapshots every few hundred records: a node restarted after it
		// led rebuilds from its own snapshots and the Raft log together.
		"--snapshot-records", "300", "--payment-journal", n.payments,
		// Few entries kept behind a Raft snapshot: a follower back from a
		// kill may have to install the leader's.
		"--raft-trailing-logs", "100")
	cmd.Env = crashChildEnv()
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(ch chan struct{}) { cmd.Wait(); close(ch) }(n.exited)
}

func (n *clusterNode) kill() {
	if n.cmd != nil {
		n.cmd.Process.Signal(syscall.SIGCONT)
		n.cmd.Process.Kill()
		<-n.exited
		n.cmd = nil
	}
}

func (r *clusterRun) call(n *clusterNode, method, path, token, key string, body []byte) (int, []byte, error) {
	c := &crashClient{hc: r.hc, base: "http://" + n.http}
	return c.call(method, path, token, key, body)
}

// leader asks each running node for the cluster until one names a leader
// that says it is ready; it returns that node.
func (r *clusterRun) leader(timeout time.Duration) *clusterNode {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, n := range r.nodes {
			if n.cmd == nil {
				continue
			}
			st, b, err := r.call(n, "GET", "/readyz", "", "", nil)
			if err == nil && st == 200 && strings.Contains(string(b), `"leader"`) {
				return n
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (r *clusterRun) any() *clusterNode {
	for {
		r.mu.Lock()
		n := r.nodes[rand.IntN(len(r.nodes))] // the package's source: safe from every goroutine
		ok := n.cmd != nil && !n.paused
		r.mu.Unlock()
		if ok {
			return n
		}
	}
}

// admit joins a new buyer through any node and waits for its access token.
func (r *clusterRun) admit(name string) string {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var qid string
	for time.Now().Before(deadline) {
		n := r.any()
		if qid == "" {
			st, b, err := r.call(n, "POST", "/v1/sales/"+clusterSaleID+"/queue", "", "", crashJSON(map[string]string{"buyer": name}))
			var tk crashTicketBody
			if err == nil && (st == 200 || st == 201) && json.Unmarshal(b, &tk) == nil {
				qid = tk.QueueID
			}
		} else {
			st, b, err := r.call(n, "GET", "/v1/sales/"+clusterSaleID+"/queue/"+qid, "", "", nil)
			var tk crashTicketBody
			if err == nil && st == 200 && json.Unmarshal(b, &tk) == nil && tk.AccessToken != "" {
				return tk.AccessToken
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("buyer %s not admitted within 30 s", name)
	return ""
}

// load writes holds (and checks out every third) through random nodes
// until stop closes; it keeps what was acknowledged.
func (r *clusterRun) load(cycle int, stop <-chan struct{}, firstAfter *time.Time, killedAt *time.Time, wg *sync.WaitGroup) {
	for w := range clusterWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(w)))
			var name, tok string
			held := 0
			for i := 0; ; i++ {
				if tok == "" || held >= crashMaxPerBuyer-10 {
					// A new buyer before this one reaches max_per_buyer.
					name, held = fmt.Sprintf("c%d-w%d-%d", cycle, w, i), 0
					tok = r.admit(name)
				}
				select {
				case <-stop:
					return
				default:
				}
				r.mu.Lock()
				n := r.nodes[rng.IntN(len(r.nodes))]
				alive := n.cmd != nil && !n.paused
				r.mu.Unlock()
				if !alive {
					continue
				}
				key := fmt.Sprintf("%s-%d", name, i)
				sent := time.Now()
				body := crashJSON(map[string]any{"zone": "ga", "quantity": 1})
				st, b, err := r.call(n, "POST", "/v1/sales/"+clusterSaleID+"/holds", tok, key, body)
				if err != nil || st != 201 {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				var h crashHoldBody
				if json.Unmarshal(b, &h) != nil || h.HoldID == "" {
					r.t.Errorf("hold answer without an id: %s", b)
					return
				}
				held++
				ch := clusterHold{buyer: name, token: tok, key: key, body: body}
				if i%3 == 0 {
					pk := "pay-" + key
					st, b, err := r.call(r.any(), "POST", "/v1/holds/"+h.HoldID+"/checkout", tok, pk, crashJSON(map[string]any{"payment": map[string]string{"token": "tok_visa"}}))
					var o crashOrderBody
					if err == nil && st == 201 && json.Unmarshal(b, &o) == nil {
						ch.order = o.OrderID
					} else if err != nil || st >= 500 {
						ch.paying = true
					}
				}
				if ch.order != "" && i%12 == 0 {
					// Every fourth order is cancelled: a refund, and the
					// seats back on sale.
					st, _, err := r.call(r.any(), "POST", "/v1/orders/"+ch.order+"/cancel", crashAdminToken, "", nil)
					switch {
					case err == nil && st == 200:
						ch.cancelled = true
					case err != nil || st >= 500:
						ch.cancelling = true
					}
				}
				r.mu.Lock()
				r.acked[h.HoldID] = ch
				if !killedAt.IsZero() && sent.After(*killedAt) && firstAfter.IsZero() {
					*firstAfter = time.Now()
				}
				r.mu.Unlock()
			}
		}()
	}
}

// TestClusterFailover runs three nodes and, cycle after cycle, kills the
// leader with SIGKILL (or stops it with SIGSTOP) while buyers hold and pay
// through all three. After each cycle every acknowledged hold and order must
// be there, held + sold must match them, and an idempotent retry through
// another node must get the first answer.
func TestClusterFailover(t *testing.T) {
	cycles := clusterCyclesFull
	if testing.Short() {
		cycles = clusterCyclesShort
	}
	// Requests time out sooner than elsewhere: one sent to a node as it is
	// stopped must not hold its buyer for long.
	r := &clusterRun{t: t, bin: crashBuild(t), hc: &http.Client{Timeout: 3 * time.Second},
		rng: rand.New(rand.NewPCG(1, 2)), acked: map[string]clusterHold{}}
	ld := r.startNodes()
	def := map[string]any{
		"id": clusterSaleID, "name": "Cluster test", "hold_ttl_s": crashHoldTTLS, "max_per_buyer": crashMaxPerBuyer,
		"waiting_room": map[string]any{"active_limit": 1_000_000, "admit_per_s": 0, "access_ttl_s": 86400},
		"zones":        []map[string]any{{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": clusterCapacity}},
	}
	// Through a follower: the write is forwarded to the leader.
	var follower *clusterNode
	for _, n := range r.nodes {
		if n != ld {
			follower = n
		}
	}
	st, b, err := r.call(follower, "POST", "/v1/sales", crashAdminToken, "", crashJSON(def))
	if err != nil || st != 201 {
		t.Fatalf("create the sale through follower %s: %d %s (err %v)", follower.id, st, b, err)
	}

	var failovers []time.Duration
	for c := 1; c <= cycles; c++ {
		stopSig := c%2 == 0 // even cycles: SIGSTOP, odd: SIGKILL
		var firstAfter, killedAt time.Time
		stop := make(chan struct{})
		var wg sync.WaitGroup
		r.load(c, stop, &firstAfter, &killedAt, &wg)
		time.Sleep(time.Duration(300+r.rng.IntN(400)) * time.Millisecond)
		ld := r.leader(10 * time.Second)
		if ld == nil {
			t.Fatalf("cycle %d: no leader before the fault", c)
		}
		victim := "leader"
		if c%4 == 3 {
			// Every fourth cycle the fault hits a follower: writes go on.
			for _, n := range r.nodes {
				if n != ld {
					ld, victim = n, "follower"
					break
				}
			}
		}
		r.mu.Lock()
		killedAt = time.Now()
		if stopSig {
			ld.cmd.Process.Signal(syscall.SIGSTOP)
			ld.paused = true
		} else {
			ld.cmd.Process.Kill()
			<-ld.exited
			ld.cmd = nil
		}
		r.mu.Unlock()
		// A new leader must take writes.
		deadline := time.Now().Add(20 * time.Second)
		for {
			r.mu.Lock()
			done := !firstAfter.IsZero()
			r.mu.Unlock()
			if done {
				break
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("cycle %d: no write acknowledged within 20 s of losing %s %s", c, victim, ld.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
		fo := firstAfter.Sub(killedAt)
		if victim == "leader" {
			failovers = append(failovers, fo)
		}
		if stopSig {
			time.Sleep(clusterStopFor - min(fo, clusterStopFor))
			ld.cmd.Process.Signal(syscall.SIGCONT)
			r.mu.Lock()
			ld.paused = false
			r.mu.Unlock()
		} else {
			r.mu.Lock()
			ld.start(t, r.bin, r.peers)
			r.mu.Unlock()
		}
		time.Sleep(500 * time.Millisecond) // writes go on with the old leader back
		close(stop)
		wg.Wait()
		kind := map[bool]string{true: "SIGSTOP", false: "SIGKILL"}[stopSig]
		t.Logf("cycle %d: %s of %s %s; first write acknowledged after %v; %d holds acknowledged so far", c, kind, victim, ld.id, fo.Round(time.Millisecond), len(r.acked))
		r.verify(c)
	}
	// The leaders wrote snapshots (--snapshot-records), so the restarts
	// above rebuilt from snapshots and the Raft log together.
	snaps := 0
	for _, n := range r.nodes {
		m, _ := filepath.Glob(filepath.Join(n.data, "snap", "*.snap"))
		snaps += len(m)
	}
	if snaps == 0 {
		t.Error("no node wrote a snapshot: the restarts did not exercise rebuilding from one")
	}
	// Raft snapshots followed the engine's, and the log was dropped
	// behind them: the restarts and takeovers above read the snapshots'
	// tails.
	var snapIdx, firstIdx, installs float64
	for _, n := range r.nodes {
		st, b, err := r.call(n, "GET", "/metrics", crashAdminToken, "", nil)
		if err != nil || st != 200 {
			t.Fatalf("metrics of %s: %d %v", n.id, st, err)
		}
		snapIdx = max(snapIdx, metricValue(string(b), "onsale_cluster_snapshot_index"))
		firstIdx = max(firstIdx, metricValue(string(b), "onsale_cluster_log_first_index"))
		installs += metricValue(string(b), "onsale_cluster_snapshots_installed")
	}
	if snapIdx == 0 || firstIdx <= 1 {
		t.Errorf("the Raft log was not compacted: newest snapshot at %v, first entry kept %v", snapIdx, firstIdx)
	}
	t.Logf("raft snapshots: newest at %v, log kept from %v; snapshots restored by the running nodes: %v", snapIdx, firstIdx, installs)
	r.money()
	slices.Sort(failovers)
	t.Logf("failover (fault to the first acknowledged write): p50 %v, max %v over %d cycles",
		failovers[len(failovers)/2].Round(time.Millisecond), failovers[len(failovers)-1].Round(time.Millisecond), len(failovers))
}

// read GETs path from one node and says which node answered.
func (r *clusterRun) read(n *clusterNode, path, token string) (int, string, []byte, error) {
	req, err := http.NewRequest("GET", "http://"+n.http+path, nil)
	if err != nil {
		return 0, "", nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Onsale-Node"), b, err
}

// startNodes starts the three nodes, waits until one leads and all are
// ready, and returns the leader. Cleanup kills them and, if the test
// failed, logs their output.
func (r *clusterRun) startNodes() *clusterNode {
	t := r.t
	t.Helper()
	base := t.TempDir()
	r.journal = filepath.Join(base, "payments.journal")
	var peers []string
	for i := range 3 {
		n := &clusterNode{id: fmt.Sprintf("n%d", i+1), http: crashFreeAddr(t), raft: crashFreeAddr(t),
			data: filepath.Join(base, fmt.Sprintf("n%d", i+1)), out: &crashLog{}, payments: r.journal}
		r.nodes = append(r.nodes, n)
		peers = append(peers, n.id+"="+n.raft)
	}
	r.peers = strings.Join(peers, ",")
	for _, n := range r.nodes {
		n.start(t, r.bin, r.peers)
	}
	t.Cleanup(func() {
		for _, n := range r.nodes {
			n.kill()
		}
		if t.Failed() {
			for _, n := range r.nodes {
				t.Logf("--- %s output:\n%s", n.id, n.out.tail())
			}
		}
	})
	ld := r.leader(crashReadyTimeout)
	if ld == nil {
		t.Fatal("no leader within 30 s")
	}
	r.allReady(0)
	return ld
}

// money checks the provider's record (the shared payment journal) against
// the cluster once nothing is owed: every charge is a paid order or was
// refunded once, every cancelled order was refunded once, and every
// acknowledged order and cancel is there.
func (r *clusterRun) money() {
	t := r.t
	ld := r.leader(20 * time.Second)
	if ld == nil {
		t.Fatal("money: no leader")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, b, err := r.call(ld, "GET", "/metrics", crashAdminToken, "", nil)
		if err == nil && st == 200 && strings.Contains(string(b), "\nonsale_payments_owed 0\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("money: payments still owed on leader %s after 60 s", ld.id)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, err := os.ReadFile(r.journal)
	if err != nil {
		t.Fatalf("money: read the payment journal: %v", err)
	}
	charges, refunds, voids := map[string]int{}, map[string]int{}, map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct {
			Op, Order string
			Paid      bool
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			t.Fatalf("money: journal line %q", line)
		}
		switch e.Op {
		case "charge":
			if voids[e.Order] > 0 {
				t.Errorf("money: order %s charged after its charge key was closed", e.Order)
			}
			charges[e.Order]++
		case "void":
			if charges[e.Order] > 0 {
				t.Errorf("money: order %s's charge key closed after a charge", e.Order)
			}
			voids[e.Order]++
		case "refund":
			if !e.Paid {
				t.Errorf("money: order %s refunded without having been charged", e.Order)
			}
			refunds[e.Order]++
		}
	}
	paid, cancelled := 0, 0
	for order, n := range charges {
		if n != 1 {
			t.Errorf("money: order %s charged %d times", order, n)
		}
		st, b, err := r.call(ld, "GET", "/v1/orders/"+order, "", "", nil)
		var o crashOrderBody
		switch {
		case err != nil:
			t.Fatalf("money: read order %s: %v", order, err)
		case st == 404:
			if refunds[order] != 1 {
				t.Errorf("money: charge of %s has no order and %d refunds", order, refunds[order])
			}
		case st != 200 || json.Unmarshal(b, &o) != nil:
			t.Fatalf("money: read order %s: %d %s", order, st, b)
		case o.State == "paid" && refunds[order] != 0:
			t.Errorf("money: order %s is paid and was refunded", order)
		case o.State == "cancelled" && refunds[order] != 1:
			t.Errorf("money: order %s is cancelled with %d refunds", order, refunds[order])
		case o.State == "paid":
			paid++
		default:
			cancelled++
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, h := range r.acked {
		if h.order == "" {
			continue
		}
		if charges[h.order] != 1 {
			t.Errorf("money: acknowledged order %s (hold %s) has %d charges", h.order, id, charges[h.order])
		}
		if h.cancelled && refunds[h.order] != 1 {
			t.Errorf("money: acknowledged cancel of %s has %d refunds", h.order, refunds[h.order])
		}
	}
	t.Logf("money: %d charges, %d refunds, %d keys closed unused: %d orders paid, %d cancelled, nothing owed", len(charges), len(refunds), len(voids), paid, cancelled)
}

// allReady waits until every node answers /readyz 200 (a follower: caught
// up with its leader and knows its address).
func (r *clusterRun) allReady(cycle int) {
	for _, n := range r.nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, _, err := r.call(n, "GET", "/readyz", "", "", nil)
			if err == nil && st == 200 {
				break
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("cycle %d: node %s not ready within 20 s", cycle, n.id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// verify checks, once every node is back and caught up, that each
// acknowledged hold and order is there, that the seats add up, and that a
// retry through another node gets the first answer.
func (r *clusterRun) verify(cycle int) {
	t := r.t
	ld := r.leader(20 * time.Second)
	if ld == nil {
		t.Fatalf("cycle %d: no leader to verify against", cycle)
	}
	r.allReady(cycle)
	st, b, err := r.call(ld, "GET", "/v1/cluster", crashAdminToken, "", nil)
	if err != nil || st != 200 {
		t.Fatalf("cycle %d: /v1/cluster: %d %s %v", cycle, st, b, err)
	}
	var cl struct {
		Leader string `json:"leader"`
		Nodes  []struct {
			ID, State string
		} `json:"nodes"`
	}
	json.Unmarshal(b, &cl)
	leaders := 0
	for _, n := range cl.Nodes {
		if n.State == "leader" {
			leaders++
		}
	}
	if cl.Leader != ld.id || leaders != 1 || len(cl.Nodes) != 3 {
		t.Fatalf("cycle %d: /v1/cluster on %s: %s", cycle, ld.id, b)
	}
	r.mu.Lock()
	acked := make(map[string]clusterHold, len(r.acked))
	for k, v := range r.acked {
		acked[k] = v
	}
	r.mu.Unlock()
	sold, live := 0, 0 // paid orders not cancelled; holds whose seats are still taken
	for _, h := range acked {
		if h.cancelled || h.cancelling {
			continue
		}
		live++
		if h.order != "" {
			sold++
		}
	}
	// Seats: every acknowledged hold is held or sold; writes whose answer
	// was lost in the fault may add to them, never take away.
	st, b, err = r.call(ld, "GET", "/v1/sales/"+clusterSaleID+"/availability", "", "", nil)
	var stock crashStock
	if err != nil || st != 200 || json.Unmarshal(b, &stock) != nil || len(stock.Zones) != 1 {
		t.Fatalf("cycle %d: availability: %d %s %v", cycle, st, b, err)
	}
	z := stock.Zones[0]
	if z.Free+z.Held+z.Sold != clusterCapacity {
		t.Errorf("cycle %d: free %d + held %d + sold %d != capacity %d", cycle, z.Free, z.Held, z.Sold, clusterCapacity)
	}
	if z.Held+z.Sold < live || z.Sold < sold {
		t.Errorf("cycle %d: held %d + sold %d below the %d acknowledged holds not cancelled (%d paid)", cycle, z.Held, z.Sold, live, sold)
	}
	// Every node answers reads from its own copy, caught up with the
	// leader's: the same figures, and the holds, answered by that node.
	for _, nd := range r.nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, by, b, err := r.read(nd, "/v1/sales/"+clusterSaleID+"/availability", "")
			var ns crashStock
			if err == nil && st == 200 && by == nd.id && json.Unmarshal(b, &ns) == nil && len(ns.Zones) == 1 &&
				ns.Zones[0].Free == z.Free && ns.Zones[0].Held == z.Held && ns.Zones[0].Sold == z.Sold {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cycle %d: node %s answers availability %d (by %q) %s, want free %d held %d sold %d from itself", cycle, nd.id, st, by, b, z.Free, z.Held, z.Sold)
			}
			time.Sleep(20 * time.Millisecond)
		}
		k := 0
		for id, h := range acked {
			if k == 20 {
				break
			}
			k++
			st, by, b, err := r.read(nd, "/v1/holds/"+id, h.token)
			if err != nil || st != 200 || by != nd.id {
				t.Errorf("cycle %d: node %s answers hold %s: %d by %q %s %v", cycle, nd.id, id, st, by, b, err)
			}
		}
	}
	paid := 0
	for id, h := range acked {
		st, b, err := r.call(r.any(), "GET", "/v1/holds/"+id, h.token, "", nil)
		var hb crashHoldBody
		if err != nil || st != 200 || json.Unmarshal(b, &hb) != nil {
			t.Fatalf("cycle %d: acknowledged hold %s of %s lost: %d %s %v", cycle, id, h.buyer, st, b, err)
		}
		want := "active"
		if h.order != "" {
			want = "purchased"
			paid++
		}
		if (h.paying && hb.State == "purchased") || h.cancelled || h.cancelling {
			want = hb.State // an unknown outcome, or a cancelled order's hold
		}
		if hb.State != want {
			t.Errorf("cycle %d: hold %s is %s, want %s", cycle, id, hb.State, want)
		}
	}
	// A retry with the same key through some node gets the first answer.
	n := 0
	for id, h := range acked {
		if n == 5 {
			break
		}
		if h.key == "" {
			continue // a read-your-writes hold, made without a key
		}
		n++
		st, b, err := r.call(r.any(), "POST", "/v1/sales/"+clusterSaleID+"/holds", h.token, h.key, h.body)
		var hb crashHoldBody
		if err != nil || st != 201 || json.Unmarshal(b, &hb) != nil || hb.HoldID != id {
			t.Errorf("cycle %d: retry of %s's key %s: %d %s %v, want hold %s", cycle, h.buyer, h.key, st, b, err, id)
		}
	}
	if n == 0 {
		t.Errorf("cycle %d: no acknowledged hold with an idempotency key to retry", cycle)
	}
	// Read your writes on a follower: a hold made through it is there
	// when the same node is asked next, answered by that node.
	for _, nd := range r.nodes {
		if nd == ld {
			continue
		}
		tok := r.admit(fmt.Sprintf("ryw-%d-%s", cycle, nd.id))
		st, b, err := r.call(nd, "POST", "/v1/sales/"+clusterSaleID+"/holds", tok, "", []byte(`{"zone":"ga","quantity":1}`))
		var hb crashHoldBody
		if err != nil || st != 201 || json.Unmarshal(b, &hb) != nil {
			t.Fatalf("cycle %d: hold through follower %s: %d %s %v", cycle, nd.id, st, b, err)
		}
		st, by, b, err := r.read(nd, "/v1/holds/"+hb.HoldID, tok)
		if err != nil || st != 200 || by != nd.id {
			t.Errorf("cycle %d: follower %s right after its forwarded hold: %d by %q %s %v", cycle, nd.id, st, by, b, err)
		}
		r.mu.Lock()
		r.acked[hb.HoldID] = clusterHold{buyer: "ryw", token: tok}
		r.mu.Unlock()
		break
	}
	t.Logf("cycle %d verified: %d holds (%d paid) present; free %d held %d sold %d", cycle, len(acked), sold, z.Free, z.Held, z.Sold)
}

// metricValue is the value of an unlabelled series in a /metrics page, or 0.
func metricValue(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
