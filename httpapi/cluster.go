package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"onsale/actors"
	"onsale/wal"
	"onsale/wal/raftlog"
)

// The cluster mode (--node-id, --peers): the records go through Raft
// (wal/raftlog), the engine runs on the leader alone, and the followers
// forward the API to it. A node that becomes leader catches up with the
// log, replicates its HTTP address and, on the cluster's first leadership,
// its signing key, then rebuilds the engine from the log; a node that
// stops leading drops its engine, whose last writes fail and are answered
// as not done.

// Headers between the nodes of a cluster.
const (
	hdrForwardedBy  = "Onsale-Forwarded-By"  // the id of the node that forwarded the request
	hdrForwardedFor = "Onsale-Forwarded-For" // the client's address, for the leader's limits
	hdrClusterProof = "Onsale-Cluster-Proof" // <unix s>.<HMAC>: the request is from a member (see sign)
	hdrNode         = "Onsale-Node"          // on every API answer: the id of the node that made it
	hdrApplied      = "Onsale-Applied"       // on a forwarded answer: the leader's log index when it answered
)

const (
	// catchUpMax bounds a new leader's wait for the entries of earlier terms.
	catchUpMax = 30 * time.Second
	// forwardTimeout bounds a forwarded request (a checkout waits on the
	// payment gateway).
	forwardTimeout = 30 * time.Second
	// forwardWatchEvery is how often a forwarded request looks whether its
	// leader is still the cluster's.
	forwardWatchEvery = 50 * time.Millisecond
	// appliedWaitMax bounds a follower's wait, before it answers a forwarded
	// write, for the write to reach its own state: replication takes
	// milliseconds; past this the answer goes anyway.
	appliedWaitMax = 2 * time.Second
	// peerAskTimeout bounds one node's answer to /v1/cluster on another.
	peerAskTimeout = 500 * time.Millisecond
)

// cluster is the server's member of a cluster.
type cluster struct {
	s     *Server
	node  *raftlog.Node
	self  string // this node's HTTP address
	proof []byte // sha256 of the admin token: the key of the members' proofs, never sent
	key   []byte // the signing key this node proposes if the cluster has none
	log   *slog.Logger

	engine func() actors.Config // the engine's config, less its Journal

	mu      sync.Mutex
	clients map[string]*fasthttp.HostClient

	confirm *confirmer
	// journal is the leader's engine's journal; run's goroutine only.
	journal *raftlog.Journal
	// confirmStop ends the confirm rounds; run's goroutine only.
	confirmStop chan struct{}

	fatal   chan<- error // errors the process must stop on
	poke    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	eng     atomic.Pointer[actors.Engine]
	leading atomic.Bool
	// epoch counts this node's leaderships: an answer is confirmed only
	// by a round of the leadership it was made in (see confirmed).
	epoch atomic.Uint64
	// keyed: the cluster's signing key is in force here. Until then a
	// follower forwards everything, so that it never hands out or accepts
	// a token under its own key.
	keyed atomic.Bool
	// failover is how long this node last took, from the cluster having no
	// leader it knew to its own engine serving as leader (ns).
	failover atomic.Int64
	// skewWarned is the second the last clock-skew warning was logged in.
	skewWarned atomic.Int64
}

// run keeps an engine on this node: the deciding one while it leads, a
// follower's copy for reads while it follows.
func (c *cluster) run() {
	defer close(c.stopped)
	registered := false
	lostAt := time.Time{}
	for {
		select {
		case <-c.stop:
			c.drop()
			return
		case <-c.node.Changes():
		case <-c.poke:
		}
		if c.node.Leader() == "" && lostAt.IsZero() {
			lostAt = time.Now()
		}
		c.adoptKey()
		if !c.node.IsLeader() {
			if e := c.eng.Load(); c.leading.Load() || (e != nil && e.Err() != nil) {
				c.drop()
			}
			if c.eng.Load() == nil {
				if err := c.follow(); err != nil {
					c.log.Warn("cluster: could not build the follower's state; retrying", "err", err)
					time.Sleep(100 * time.Millisecond)
					c.nudge()
				}
			}
			if !registered && c.node.Leader() != "" {
				registered = c.register()
			}
			if c.node.Leader() != "" {
				lostAt = time.Time{}
			}
			continue
		}
		if e := c.eng.Load(); e != nil && c.leading.Load() && e.Err() == nil && c.journal.Unavailable() == nil {
			continue // still leading in the term the engine was built for
		}
		c.drop()
		if err := c.lead(); err != nil {
			c.log.Warn("cluster: could not take over as leader; retrying", "err", err)
			time.Sleep(100 * time.Millisecond)
			c.nudge()
			continue
		}
		registered = true
		if !lostAt.IsZero() {
			c.failover.Store(int64(time.Since(lostAt)))
			lostAt = time.Time{}
		}
	}
}

// follow builds a follower's engine from the log applied so far and has
// every later committed record applied to it.
func (c *cluster) follow() error {
	start := time.Now()
	var eng *actors.Engine
	err := c.node.Follow(func(j *raftlog.Replica) error {
		cfg := c.engine()
		cfg.Journal, cfg.Follower, cfg.Fatal = j, true, c.engineFatal
		e, err := actors.Open(cfg)
		if err != nil {
			return fmt.Errorf("build the follower's state from the log: %w", err)
		}
		eng = e
		return nil
	}, func(seq uint64, ev *wal.Event) { eng.Follow(seq, ev) }, func(err error) { eng.Fail(err) })
	if err != nil {
		return err
	}
	c.eng.Store(eng)
	c.s.SetEngine(eng)
	c.log.Info("cluster: following", "leader", c.node.Leader(), "built_in", time.Since(start).Round(time.Millisecond), "sales", len(eng.Sales()))
	return nil
}

// gauges puts the node's place in the cluster on /metrics.
func (c *cluster) gauges(m *Metrics) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	m.set.NewGauge("onsale_cluster_leader", func() float64 { return b(c.node.IsLeader()) })
	m.set.NewGauge("onsale_cluster_serving", func() float64 { return b(c.eng.Load() != nil) })
	m.set.NewGauge("onsale_cluster_applied_index", func() float64 { return float64(c.node.AppliedIndex()) })
	m.set.NewGauge("onsale_cluster_commit_index", func() float64 { return float64(c.node.CommitIndex()) })
	m.set.NewGauge("onsale_cluster_snapshot_index", func() float64 { return float64(c.node.SnapshotIndex()) })
	m.set.NewGauge("onsale_cluster_log_first_index", func() float64 { return float64(c.node.FirstIndex()) })
	m.set.NewGauge("onsale_cluster_snapshots_taken", func() float64 { return float64(c.node.SnapshotsTaken()) })
	m.set.NewGauge("onsale_cluster_snapshots_installed", func() float64 { return float64(c.node.SnapshotsInstalled()) })
	m.set.NewGauge("onsale_cluster_last_takeover_seconds", func() float64 { return time.Duration(c.failover.Load()).Seconds() })
}

// adoptKey puts the cluster's signing key in force once it is known.
func (c *cluster) adoptKey() {
	if c.keyed.Load() {
		return
	}
	if k := c.node.SigningKey(); len(k) > 0 {
		c.s.setSigner(k)
		c.keyed.Store(true)
	}
}

func (c *cluster) nudge() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// lead catches up, replicates this node's address (and the signing key if
// the cluster has none), then rebuilds the engine from the log.
func (c *cluster) lead() error {
	start := time.Now()
	// The journal first: its term is the one the barrier below proves,
	// and a term that passes meanwhile makes it refuse every append.
	j := c.node.Journal()
	if err := c.node.CatchUp(catchUpMax); err != nil {
		return fmt.Errorf("catch up with the log: %w", err)
	}
	if err := j.Unavailable(); err != nil {
		return fmt.Errorf("caught up, but: %w", err)
	}
	var key []byte
	if len(c.node.SigningKey()) == 0 {
		key = c.key
	}
	if err := c.node.SetMeta(c.node.ID(), c.self, key); err != nil {
		return fmt.Errorf("replicate this node's address: %w", err)
	}
	c.adoptKey()
	// The leadership's epoch before its engine: the engine charges as this
	// leadership's (inEpoch); handlers see it once leading is set below.
	epoch := c.epoch.Add(1)
	cfg := c.engine()
	cfg.Journal = j
	cfg.Fatal = c.engineFatal
	cfg.Payer = c.s.pay.inEpoch(epoch)
	eng, err := actors.Open(cfg)
	if err != nil {
		j.Close()
		return fmt.Errorf("rebuild the engine from the log: %w", err)
	}
	if !c.node.IsLeader() || j.Unavailable() != nil {
		eng.Close()
		return errors.New("lost the leadership while rebuilding")
	}
	c.eng.Store(eng)
	c.journal = j
	c.confirmStop = make(chan struct{})
	go c.runConfirm(c.confirmStop, epoch)
	c.leading.Store(true)
	c.s.SetEngine(eng)
	c.log.Info("cluster: leading", "term", j.Term(), "rebuilt_in", time.Since(start).Round(time.Millisecond), "sales", len(eng.Sales()))
	return nil
}

// drop stops this node's engine, if it has one: its writes in flight fail
// as not done, and the API goes to the leader from here on.
func (c *cluster) drop() {
	leading := c.leading.Swap(false)
	c.epoch.Add(1)
	if c.confirmStop != nil {
		close(c.confirmStop)
		c.confirmStop = nil
	}
	eng := c.eng.Swap(nil)
	if eng == nil {
		return
	}
	c.s.SetEngine(nil)
	if !leading {
		c.node.Unfollow()
	}
	if err := eng.Close(); err != nil {
		c.log.Warn("cluster: close the engine", "err", err)
	}
	if leading {
		c.log.Info("cluster: stopped leading")
	}
}

// engineFatal: an engine whose record may not have committed because the
// node lost its leadership is dropped and, if the node leads again, rebuilt
// from the log, and so is a follower's copy that failed; any other fatal
// error of the leader's engine stops the process as on one node.
func (c *cluster) engineFatal(err error) {
	if errors.Is(err, wal.ErrNotLeader) || errors.Is(err, wal.ErrLeadershipLost) || !c.leading.Load() {
		// A follower's copy that failed is built again from the log.
		c.nudge()
		return
	}
	select {
	case c.fatal <- err:
	default:
	}
}

// raftWriteStallMax is how long a write of the Raft log may go unanswered
// before the node stops. A leader blocked in its disk keeps its followers
// from electing another (its heartbeats go on), so the cluster would wait
// for the disk; stopped, it hands over within an election timeout.
const raftWriteStallMax = 10 * time.Second

// watchWrites stops the process once a Raft log write has stalled (how
// long the oldest write in progress has run) for longer than stall, leader
// or follower: a node that cannot write its log serves nothing fresh, and
// the operator's supervisor restarts it.
func (c *cluster) watchWrites(stall time.Duration, stalled func() time.Duration) {
	t := time.NewTicker(stall / 10)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		if d := stalled(); d > stall {
			select {
			case c.fatal <- fmt.Errorf("a write of the Raft log has not finished for %s: this node's disk has stopped answering; it stops so that another node leads (check the disk, then restart it)", d.Round(100*time.Millisecond)):
			default:
			}
			return
		}
	}
}

// isPeer reports whether id is one of the static members.
func (c *cluster) isPeer(id string) bool {
	for _, p := range c.node.Peers() {
		if p.ID == id {
			return true
		}
	}
	return false
}

// clusterNode is one node in GET /v1/cluster.
type clusterNode struct {
	ID           string `json:"id"`
	RaftAddr     string `json:"raft_addr"`
	HTTPAddr     string `json:"http_addr"`
	State        string `json:"state"`
	AppliedIndex uint64 `json:"applied_index"`
}

// selfView is this node's own line of /v1/cluster.
func (c *cluster) selfView() clusterNode {
	n := clusterNode{ID: c.node.ID(), HTTPAddr: c.self, State: c.node.State(), AppliedIndex: c.node.AppliedIndex()}
	for _, p := range c.node.Peers() {
		if p.ID == n.ID {
			n.RaftAddr = p.Addr
		}
	}
	return n
}

// view is GET /v1/cluster's answer.
func (c *cluster) view() map[string]any {
	return map[string]any{"leader": c.node.Leader(), "nodes": c.members()}
}

// membersDown counts the members the cluster cannot count on, for the
// cluster_member_down alert: the leader counts the others that are
// unreachable, not following, or more than lag entries behind its commit;
// a node that knows no leader counts every other member (the cluster
// lost its majority, or is electing); a follower with a leader leaves it
// to the leader (not known).
func (c *cluster) membersDown(lag uint64) (int, bool) {
	if !c.node.IsLeader() {
		if c.node.Leader() == "" {
			return len(c.node.Peers()) - 1, true
		}
		return 0, false
	}
	commit := c.node.CommitIndex()
	down := 0
	for _, m := range c.members() {
		if m.ID == c.node.ID() {
			continue
		}
		if m.State != "follower" || m.AppliedIndex+lag < commit {
			down++
		}
	}
	return down, true
}

// members asks every other node for its own line, at the same time.
func (c *cluster) members() []clusterNode {
	peers := c.node.Peers()
	out := make([]clusterNode, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		out[i] = clusterNode{ID: p.ID, RaftAddr: p.Addr, HTTPAddr: c.node.HTTPAddr(p.ID), State: "unreachable"}
		if p.ID == c.node.ID() {
			out[i] = c.selfView()
			continue
		}
		if out[i].HTTPAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + out[i].HTTPAddr + "/v1/cluster/self")
			c.sign(req)
			if err := c.client(out[i].HTTPAddr).DoTimeout(req, resp, peerAskTimeout); err != nil || resp.StatusCode() != 200 {
				return
			}
			var n clusterNode
			if json.Unmarshal(resp.Body(), &n) == nil && n.ID == p.ID {
				out[i] = n
			}
		}()
	}
	wg.Wait()
	return out
}

// route serves /v1/cluster (admin), and /v1/cluster/self and
// /v1/cluster/nodes between the members.
func (c *cluster) route(ctx *fasthttp.RequestCtx, parts []string) string {
	switch {
	case len(parts) == 2:
		if !method(ctx, "GET") {
			return "/v1/cluster"
		}
		if !c.s.isAdmin(ctx) {
			fail(ctx, codeUnauthorized, "GET /v1/cluster needs the admin token")
			return "/v1/cluster"
		}
		writeJSON(ctx, 200, c.view())
		return "/v1/cluster"
	case len(parts) == 3 && parts[2] == "self":
		if method(ctx, "GET") {
			if !c.fromMember(ctx) {
				fail(ctx, codeUnauthorized, "for the cluster's members only")
			} else {
				writeJSON(ctx, 200, c.selfView())
			}
		}
		return "/v1/cluster/self"
	case len(parts) == 3 && parts[2] == "nodes":
		if !method(ctx, "POST") {
			return "/v1/cluster/nodes"
		}
		if !c.fromMember(ctx) {
			fail(ctx, codeUnauthorized, "for the cluster's members only")
			return "/v1/cluster/nodes"
		}
		var m struct {
			ID       string `json:"id"`
			HTTPAddr string `json:"http_addr"`
		}
		if !decode(ctx, &m) {
			return "/v1/cluster/nodes"
		}
		if _, _, err := net.SplitHostPort(m.HTTPAddr); err != nil || !c.isPeer(m.ID) {
			fail(ctx, actors.CodeBadRequest, "id (one of --peers) and http_addr (host:port) are required")
			return "/v1/cluster/nodes"
		}
		if err := c.node.SetMeta(m.ID, m.HTTPAddr, nil); err != nil {
			retryAfter(ctx, 1)
			fail(ctx, codeRecovering, "not the leader: "+err.Error())
			return "/v1/cluster/nodes"
		}
		ctx.SetStatusCode(204)
		return "/v1/cluster/nodes"
	}
	fail(ctx, actors.CodeNotFound, "no such resource")
	return "unknown"
}

// ready answers /readyz on a cluster node: the leader once its engine
// runs, a follower once it has applied what it knows committed and hears
// from its leader.
func (c *cluster) ready() error {
	if c.node.IsLeader() {
		if c.eng.Load() == nil {
			return errors.New("this node leads and is rebuilding its state from the log")
		}
		return nil
	}
	leader := c.node.Leader()
	if leader == "" {
		return errors.New("the cluster is electing a leader")
	}
	if c.node.HTTPAddr(leader) == "" {
		return fmt.Errorf("this node does not know leader %s's HTTP address yet", leader)
	}
	if a, k := c.node.Dispatched(), c.node.CommitIndex(); a < k {
		return fmt.Errorf("this node has applied the log to %d of %d", a, k)
	}
	if c.eng.Load() == nil || !c.keyed.Load() {
		return errors.New("this node is building its copy of the leader's state")
	}
	if time.Since(c.node.LastContact()) > 2*time.Second {
		return errors.New("this node has not heard from its leader for over 2 s")
	}
	return nil
}

// clientAddr is the address limits and logs use: a member's forwarded
// request carries its client's.
func (s *Server) clientAddr(ctx *fasthttp.RequestCtx) string {
	if s.cluster != nil && s.cluster.fromMember(ctx) {
		if v := ctx.Request.Header.Peek(hdrForwardedFor); len(v) > 0 {
			return string(v)
		}
	}
	return ctx.RemoteIP().String()
}

// clusterDataDir refuses a data directory whose files a cluster node would
// misread: a single node's log (its sequence numbers are not the Raft
// log's indexes), or snapshots without the Raft log they were cut from.
// Either would make acknowledged records look covered by a snapshot.
func clusterDataDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
		return fmt.Errorf("%s holds a single node's log (wal/): a cluster node needs a fresh data directory, or one it ran in before as a cluster node", dir)
	}
	_, rerr := os.Stat(filepath.Join(dir, "raft", "raft.db"))
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
	if errors.Is(rerr, fs.ErrNotExist) && len(snaps) > 0 {
		return fmt.Errorf("%s has snapshots (snap/) but not the Raft log they belong to (raft/raft.db): if this node was a member, move the data directory aside and start it with an empty one and --rejoin; it catches up from the others", dir)
	}
	return nil
}

// splitCluster reads --peers and checks --node-id and --raft-addr against it.
func (o *Options) splitCluster() ([]raftlog.Peer, error) {
	peers, err := raftlog.ParsePeers(o.Peers)
	if err != nil {
		return nil, err
	}
	for _, p := range peers {
		if p.ID == o.NodeID {
			if o.RaftAddr != "" && o.RaftAddr != p.Addr {
				return nil, fmt.Errorf("--raft-addr %s differs from %s's address in --peers (%s)", o.RaftAddr, o.NodeID, p.Addr)
			}
			return peers, nil
		}
	}
	var ids []string
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	return nil, fmt.Errorf("--node-id %q is not in --peers (%s)", o.NodeID, strings.Join(ids, ", "))
}
