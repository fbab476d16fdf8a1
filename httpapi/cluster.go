package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

func clusterProof(adminToken string) []byte {
	h := sha256.Sum256([]byte(adminToken))
	return h[:]
}

// clusterProofSkew bounds how far a proof's time may be from the
// receiver's clock: the nodes' clocks must agree within it.
const clusterProofSkew = 5 * time.Minute

// A member's request to another carries a proof that it comes from a
// member: the time, and an HMAC under the cluster's key (made from the
// admin token, which every member has) of that time, the method, the
// client address it passes on (Onsale-Forwarded-For) and the body's hash.
// One seen on the wire is no use for long (clusterProofSkew) nor for
// another request: it cannot pass on another client's address, nor carry
// another body (a node registration, say).

// sign puts the proof on req, a request to another member; call it once
// its method, Forwarded-For header and body are set.
func (c *cluster) sign(req *fasthttp.Request) {
	t := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set(hdrClusterProof, t+"."+c.proofMAC(t, req.Header.Method(), req.Header.Peek(hdrForwardedFor), req.Body()))
}

func (c *cluster) proofMAC(t string, method, forwardedFor, body []byte) string {
	bh := sha256.Sum256(body)
	m := hmac.New(sha256.New, c.proof)
	for _, part := range [][]byte{[]byte(t), method, forwardedFor, bh[:]} {
		m.Write(part)
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// memberKey keeps a request's verdict (fromMember is asked several times).
type memberKey struct{}

// fromMember reports whether a request carries a valid proof.
func (c *cluster) fromMember(ctx *fasthttp.RequestCtx) bool {
	if v, ok := ctx.UserValue(memberKey{}).(bool); ok {
		return v
	}
	ok := c.verifyProof(ctx)
	ctx.SetUserValue(memberKey{}, ok)
	return ok
}

func (c *cluster) verifyProof(ctx *fasthttp.RequestCtx) bool {
	p := ctx.Request.Header.Peek(hdrClusterProof)
	if len(p) == 0 {
		return false
	}
	ts, mac, ok := bytes.Cut(p, []byte("."))
	t, err := strconv.ParseInt(string(ts), 10, 64)
	if !ok || err != nil {
		return false
	}
	if d := time.Since(time.Unix(t, 0)); d > clusterProofSkew || d < -clusterProofSkew {
		if now := time.Now().Unix(); c.skewWarned.Swap(now) != now {
			c.log.Warn("cluster: a member's request is refused: its clock is too far from this node's; keep the nodes' clocks in step (NTP)",
				"from", ctx.RemoteIP().String(), "skew", d.Round(time.Second), "allowed", clusterProofSkew)
		}
		return false
	}
	want := c.proofMAC(string(ts), ctx.Method(), ctx.Request.Header.Peek(hdrForwardedFor), ctx.PostBody())
	return subtle.ConstantTimeCompare(mac, []byte(want)) == 1
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

// The leader's answers that no record of their own made durable (reads,
// refusals, not found) come from its memory, which is the cluster's state
// only while no other node leads. A leader paused (SIGSTOP) past an
// election answers from stale memory for the moment it takes to learn of
// the new term. So such an answer is sent only once leadership is
// confirmed at or after the time it was made: by a lease (a Verify that
// started before the request and less than raftlog.Lease ago), or else
// by the next Verify round. A write's 2xx needs none: it was committed by
// a majority, or it repeats an answer that was.

// confirmer runs Verify rounds while this node leads.
type confirmer struct {
	mu     sync.Mutex
	okAt   time.Time     // start of the last successful round
	okOf   uint64        // the leadership (cluster.epoch) that round ran in
	start  time.Time     // start of the round running now (zero: none)
	done   chan struct{} // closed when that round ends
	demand chan struct{} // capacity 1: a request waits for a round
	// needed is when an answer last asked for a confirmation (unix ns):
	// the ticked rounds run only while answers need them, so an idle
	// leader adds no entries to the log.
	needed atomic.Int64
}

func newConfirmer() *confirmer {
	return &confirmer{demand: make(chan struct{}, 1)}
}

// confirmEvery spaces the rounds while nobody waits, to keep the lease
// fresh for the fast path: each one commits an empty entry.
const confirmEvery = 100 * time.Millisecond

// confirmIdleAfter: with no answer asking for this long, the ticked rounds
// pause (the first answer after waits for one round).
const confirmIdleAfter = 2 * time.Second

// confirmWaitMax bounds a request's wait for a round.
const confirmWaitMax = time.Second

// runConfirm runs rounds for the leadership epoch until stop closes.
func (c *cluster) runConfirm(stop <-chan struct{}, epoch uint64) {
	cf := c.confirm
	t := time.NewTicker(confirmEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if time.Since(time.Unix(0, cf.needed.Load())) > confirmIdleAfter {
				continue
			}
		case <-cf.demand:
		}
		cf.mu.Lock()
		start, done := time.Now(), make(chan struct{})
		cf.start, cf.done = start, done
		cf.mu.Unlock()
		err := c.node.Verify()
		cf.mu.Lock()
		if err == nil {
			cf.okAt, cf.okOf = start, epoch
		}
		cf.start, cf.done = time.Time{}, nil
		cf.mu.Unlock()
		close(done)
	}
}

// confirmed reports whether an answer made by now, in leadership epoch (read
// before the request was routed), may be sent as this cluster's: this node
// led when it was made, in that leadership. A round of a later leadership
// proves nothing of an engine dropped before it.
func (c *cluster) confirmed(epoch uint64) bool {
	cf := c.confirm
	// The answer was made by now. A round that succeeded proves this node
	// led up to its start (a majority was still in its term) and, by the
	// lease, for raftlog.Lease after: so one that started no earlier than
	// Lease before now covers the answer, whenever it was made.
	made := time.Now()
	cf.needed.Store(made.UnixNano())
	deadline := made.Add(confirmWaitMax)
	for {
		cf.mu.Lock()
		okAt, okOf, start, done := cf.okAt, cf.okOf, cf.start, cf.done
		cf.mu.Unlock()
		if c.epoch.Load() != epoch {
			return false
		}
		if okOf == epoch && !okAt.IsZero() && okAt.Add(raftlog.Lease).After(made) {
			return true
		}
		if !c.leading.Load() || time.Now().After(deadline) {
			return false
		}
		if done == nil || start.Before(made) {
			select {
			case cf.demand <- struct{}{}:
			default:
			}
		}
		wait := done
		if wait == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		select {
		case <-wait:
		case <-time.After(time.Until(deadline)):
		}
	}
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

// register tells the leader this node's HTTP address.
func (c *cluster) register() bool {
	if c.node.HTTPAddr(c.node.ID()) == c.self {
		return true
	}
	addr := c.node.HTTPAddr(c.node.Leader())
	if addr == "" {
		return false
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + addr + "/v1/cluster/nodes")
	req.Header.SetContentType("application/json")
	b, _ := json.Marshal(map[string]string{"id": c.node.ID(), "http_addr": c.self})
	req.SetBody(b)
	c.sign(req)
	if err := c.client(addr).DoTimeout(req, resp, peerAskTimeout*4); err != nil || resp.StatusCode() != 204 {
		return false
	}
	return true
}

func (c *cluster) client(addr string) *fasthttp.HostClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	hc := c.clients[addr]
	if hc == nil {
		hc = &fasthttp.HostClient{Addr: addr, MaxConns: 512, ReadTimeout: forwardTimeout, WriteTimeout: 5 * time.Second,
			MaxIdleConnDuration: 30 * time.Second, DisablePathNormalizing: true}
		c.clients[addr] = hc
	}
	return hc
}

// forward passes a request for the engine to the leader and its answer
// back, unchanged. Event streams are not forwarded: a follower answers 503
// and the buyer's page polls instead.
func (c *cluster) forward(ctx *fasthttp.RequestCtx, parts []string) {
	if len(ctx.Request.Header.Peek(hdrForwardedBy)) > 0 {
		// Forwarded once already: the sender thought this node leads.
		retryAfter(ctx, 1)
		fail(ctx, codeRecovering, "the cluster is electing a leader; retry in a moment")
		return
	}
	if parts[len(parts)-1] == "events" {
		retryAfter(ctx, 1)
		fail(ctx, codeRecovering, "this node does not serve event streams while it follows the cluster's leader; poll the same address without /events")
		return
	}
	leader := c.node.Leader()
	addr := c.node.HTTPAddr(leader)
	if leader == "" || addr == "" {
		retryAfter(ctx, 1)
		fail(ctx, codeRecovering, "the cluster is electing a leader; retry in a moment")
		return
	}
	// The exchange runs on its own copies, so that a leader that stops
	// answering (paused, cut off) is given up as soon as the cluster
	// elects another, not after forwardTimeout.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	ctx.Request.CopyTo(req)
	req.Header.Set(hdrForwardedBy, c.node.ID())
	req.Header.Set(hdrForwardedFor, ctx.RemoteIP().String())
	c.sign(req)
	req.SetHost(addr)
	done := make(chan error, 1)
	go func() {
		err := c.client(addr).DoTimeout(req, resp, forwardTimeout)
		done <- err
	}()
	tick := time.NewTicker(forwardWatchEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				resp.CopyTo(&ctx.Response)
				// Read your writes: the buyer's next read on this node
				// sees what the leader answered.
				if idx, perr := strconv.ParseUint(string(resp.Header.Peek(hdrApplied)), 10, 64); perr == nil {
					c.waitApplied(idx)
				}
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			if err != nil {
				c.log.Warn("cluster: forward to the leader failed", "leader", leader, "addr", addr, "err", err)
				retryAfter(ctx, 1)
				fail(ctx, actors.CodeUnavailable, fmt.Sprintf("the cluster's leader (%s) %s; %s", leader, forwardFailure(err), maybeMade(ctx)))
			}
			return
		case <-tick.C:
			if c.node.Leader() == leader {
				continue
			}
			// The exchange ends on its own; its copies are let go then.
			go func() {
				<-done
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
			}()
			retryAfter(ctx, 1)
			fail(ctx, actors.CodeUnavailable, fmt.Sprintf("the cluster's leader (%s) was replaced while it had this request; %s", leader, maybeMade(ctx)))
			return
		}
	}
}

// forwardFailure says, for a buyer, why a forwarded request got no answer;
// the client library's own text (advice to server authors) goes to the log.
func forwardFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return fmt.Sprintf("did not answer within %s", forwardTimeout)
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "closed the connection before it answered (it may have stopped)"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &ne):
		return "could not be reached (it may have stopped)"
	}
	return "did not answer"
}

// maybeMade is the advice for a write whose outcome is unknown: the same
// Idempotency-Key gets the first answer; without one, a retry may do it
// twice (a join keeps the buyer's place; a hold or a checkout may not).
func maybeMade(ctx *fasthttp.RequestCtx) string {
	if ctx.IsGet() || ctx.IsHead() {
		return "retry in a moment"
	}
	if len(ctx.Request.Header.Peek("Idempotency-Key")) > 0 {
		return "the change may or may not have been made: retry with the same Idempotency-Key, which gets the first answer"
	}
	return "the change may or may not have been made, and without an Idempotency-Key a retry may make it twice: check before you retry, and send an Idempotency-Key with writes"
}

// waitApplied waits, at most appliedWaitMax, until this node has applied
// the log up to idx.
func (c *cluster) waitApplied(idx uint64) {
	deadline := time.Now().Add(appliedWaitMax)
	for c.node.AppliedIndex() < idx && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
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
