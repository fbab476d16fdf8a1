package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// clusterFailovers is how many times --mode cluster kills the leader.
const clusterFailovers = 3

// clusterReadyMax bounds the wait for a cluster to elect a leader and for
// every node to catch up.
const clusterReadyMax = 30 * time.Second

// runCluster measures, in one run on this machine: durable holds/s through
// one node, then through a three-node cluster with the buyers spread over
// all three (followers forward to the leader); queue polls/s on one node
// and spread over three; and the time from a SIGKILL of the leader to the
// first hold sent after it and acknowledged.
func runCluster(o Options) error {
	if o.Exe == "" {
		return errors.New("--mode cluster runs the servers as processes: leave out --in-process and --target")
	}
	dir := o.Data
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "onsale-bench-cluster-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	const admin = "bench-admin-token"
	fmt.Fprintf(o.Out, "cluster mode: %d connections, %s per phase; one node, then three on this machine\n", o.Conns, o.Duration)

	// One node.
	one, err := startChild(o, filepath.Join(dir, "single"), admin)
	if err != nil {
		return err
	}
	c1 := newClient(one.addr, admin, o.Conns)
	sale, err := createHoldsSale(c1)
	if err != nil {
		one.stop()
		return err
	}
	single := holdPhase(o, []*client{c1}, sale, nil)
	fmt.Fprintf(o.Out, "  one node:    %.0f holds/s, p50 %s p99 %s (%d failures)\n", single.rate, single.q.P50, single.q.P99, single.failures)
	pollOne, pq1, err := clusterPolls(o, []*client{c1}, admin)
	one.stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "  one node:    %.0f polls/s, p99 %s\n", pollOne, pq1.P99)

	// Three nodes.
	cl, err := startCluster(o, dir, admin)
	if err != nil {
		return err
	}
	defer cl.stop()
	cs := cl.clients(o.Conns)
	sale, err = createHoldsSale(cs[0])
	if err != nil {
		return err
	}
	three := holdPhase(o, cs, sale, nil)
	fmt.Fprintf(o.Out, "  three nodes: %.0f holds/s, p50 %s p99 %s (%d failures)\n", three.rate, three.q.P50, three.q.P99, three.failures)
	fmt.Fprintf(o.Out, "  replicated holds/s against one node: %.2f× (p99 %s against %s)\n", three.rate/max(single.rate, 1), three.q.P99, single.q.P99)
	pollThree, pq3, err := clusterPolls(o, cs, admin)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "  three nodes: %.0f polls/s, p99 %s (%.2f× one node)\n", pollThree, pq3.P99, pollThree/max(pollOne, 1))

	// Failover: the leader is killed in the middle of a holds phase.
	var times []time.Duration
	for i := 1; i <= clusterFailovers; i++ {
		cs := cl.clients(o.Conns)
		var took time.Duration
		var ferr error
		holdPhase(o, cs, sale, func(acked func() time.Time) {
			time.Sleep(warmup + o.Duration/3)
			took, ferr = cl.failover(acked)
		})
		if ferr != nil {
			return ferr
		}
		times = append(times, took)
		fmt.Fprintf(o.Out, "  failover %d: a hold sent after the SIGKILL of the leader was acknowledged %s after it\n", i, took.Round(time.Millisecond))
		if err := cl.restart(); err != nil {
			return err
		}
	}
	slices.Sort(times)
	fmt.Fprintf(o.Out, "  failover p50 %s, max %s over %d kills\n", times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(times))
	return nil
}

// clusterPolls joins a line of buyers (none admitted) and polls their
// places for o.Duration from o.Conns connections spread over cs, as fast as
// answered. It returns polls/s and their latencies.
func clusterPolls(o Options, cs []*client, admin string) (float64, quantiles, error) {
	line := fmt.Sprintf("bench-line-%d", time.Now().UnixNano())
	if err := createSales(cs[0], map[string]any{"id": line,
		"waiting_room": map[string]any{"active_limit": 1, "admit_per_s": 1, "access_ttl_s": 3600},
		"zones":        []any{map[string]any{"id": "ga", "capacity": 1_000_000}}}); err != nil {
		return 0, quantiles{}, err
	}
	const buyers = 5_000
	ids, failed := joinMany(cs[0], min(o.Conns, 64), line, "line_join", "p", buyers)
	if failed > 0 {
		return 0, quantiles{}, fmt.Errorf("only %d of %d buyers joined the line", buyers-failed, buyers)
	}
	lat := newLatencies()
	var polls atomic.Int64
	measureFrom := time.Now().Add(warmup)
	deadline := measureFrom.Add(o.Duration)
	var wg sync.WaitGroup
	for w := range o.Conns {
		c := cs[w%len(cs)].sibling(1)
		c.lat = lat
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := ids[rand.IntN(len(ids))]
				if st, err := c.do("poll", "GET", "/v1/sales/"+line+"/queue/"+id, "", "", nil, nil); err == nil && st == 200 && time.Now().After(measureFrom) {
					polls.Add(1)
				}
			}
		}()
	}
	progress(o, deadline, func() string { return fmt.Sprintf("%d polls", polls.Load()) })
	wg.Wait()
	return float64(polls.Load()) / o.Duration.Seconds(), lat.quantiles("poll"), nil
}

// benchCluster is three onsale child processes forming a cluster.
type benchCluster struct {
	o     Options
	dir   string
	admin string
	ids   []string
	raft  []string
	nodes []*server // nil while down
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startCluster(o Options, dir, admin string) (*benchCluster, error) {
	cl := &benchCluster{o: o, dir: dir, admin: admin, nodes: make([]*server, 3)}
	var peers []string
	for i := range 3 {
		addr, err := freeLoopback()
		if err != nil {
			return nil, err
		}
		cl.ids = append(cl.ids, fmt.Sprintf("n%d", i+1))
		cl.raft = append(cl.raft, addr)
		peers = append(peers, cl.ids[i]+"="+addr)
	}
	for i := range 3 {
		if err := cl.start(i, strings.Join(peers, ",")); err != nil {
			cl.stop()
			return nil, err
		}
	}
	if err := cl.ready(); err != nil {
		cl.stop()
		return nil, err
	}
	return cl, nil
}

func (cl *benchCluster) peers() string {
	var p []string
	for i := range cl.ids {
		p = append(p, cl.ids[i]+"="+cl.raft[i])
	}
	return strings.Join(p, ",")
}

func (cl *benchCluster) start(i int, peers string) error {
	o := cl.o
	o.ServerCPUProfile = "" // one profile file cannot take three servers
	args := []string{"--node-id", cl.ids[i], "--raft-addr", cl.raft[i], "--peers", peers}
	if o.Server.RaftLogStore != "" {
		args = append(args, "--raft-log-store", o.Server.RaftLogStore)
	}
	s, err := startChild(o, filepath.Join(cl.dir, cl.ids[i]), cl.admin, args...)
	if err != nil {
		return fmt.Errorf("start cluster node %s: %w", cl.ids[i], err)
	}
	cl.nodes[i] = s
	return nil
}

// ready waits until every running node answers /readyz 200.
func (cl *benchCluster) ready() error {
	deadline := time.Now().Add(clusterReadyMax)
	for _, s := range cl.nodes {
		if s == nil {
			continue
		}
		c := newClient(s.addr, cl.admin, 1)
		for {
			if st, err := c.do("readyz", "GET", "/readyz", "", "", nil, nil); err == nil && st == 200 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("cluster node at %s not ready within %s", s.addr, clusterReadyMax)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// leader is the index of the node that says it leads, or -1.
func (cl *benchCluster) leader() int {
	for i, s := range cl.nodes {
		if s == nil {
			continue
		}
		var r struct {
			State string `json:"state"`
		}
		if st, err := newClient(s.addr, cl.admin, 1).do("readyz", "GET", "/readyz", "", "", nil, &r); err == nil && st == 200 && r.State == "leader" {
			return i
		}
	}
	return -1
}

// clients are one client per running node, sharing latencies.
func (cl *benchCluster) clients(conns int) []*client {
	var cs []*client
	for _, s := range cl.nodes {
		if s == nil {
			continue
		}
		if len(cs) == 0 {
			cs = append(cs, newClient(s.addr, cl.admin, conns))
			continue
		}
		c := newClient(s.addr, cl.admin, conns)
		c.lat, c.codes = cs[0].lat, cs[0].codes
		cs = append(cs, c)
	}
	return cs
}

// failover kills the leader and waits until a hold sent after the kill is
// acknowledged.
func (cl *benchCluster) failover(acked func() time.Time) (time.Duration, error) {
	li := cl.leader()
	if li < 0 {
		return 0, errors.New("no node says it leads")
	}
	killed := time.Now()
	cl.nodes[li].kill()
	cl.nodes[li] = nil
	for time.Since(killed) < clusterReadyMax {
		// acked is when the last acknowledged hold was sent: once that is
		// after the kill, its answer came within the last 5 ms.
		if acked().After(killed) {
			return time.Since(killed), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no hold acknowledged within %s of killing the leader", clusterReadyMax)
}

// restart starts the nodes that are down and waits until all are ready.
func (cl *benchCluster) restart() error {
	for i, s := range cl.nodes {
		if s == nil {
			if err := cl.start(i, cl.peers()); err != nil {
				return err
			}
		}
	}
	return cl.ready()
}

func (cl *benchCluster) stop() {
	for i, s := range cl.nodes {
		if s != nil {
			s.stop()
			cl.nodes[i] = nil
		}
	}
}
