// Package raftlog replicates the engine's records over Raft
// (hashicorp/raft; its log in tidwall/wal segment files, walstore.go, or
// in raft-boltdb, which is its stable store either way). Each
// record is one Raft command; it is durable once a majority of the nodes
// has stored it (each one fsyncs). The engine runs on the leader only: it
// decides, appends through a Journal of the current term, and answers once
// the record is committed. A node that becomes leader rebuilds the engine
// from the committed log with the functions recovery uses (Journal.Replay).
//
// Fencing: a record carries the term of the journal that appended it. An
// entry whose term is not the Raft term it was stored in was appended by an
// engine from an earlier leadership; every node skips it the same way when
// it replays, and its writer gets ErrNotLeader.
package raftlog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"onsale/wal"
)

// Timing of the cluster. The library's defaults (1 s heartbeat and election
// timeouts) gave 1.5 s failovers on loopback; half of them keeps a failover
// near a second and still rides out a two-core machine's scheduling stalls.
const (
	heartbeatTimeout = 500 * time.Millisecond
	electionTimeout  = 500 * time.Millisecond
	leaseTimeout     = 250 * time.Millisecond
	// maxAppendEntries is the most records one log write (one fsync)
	// and one replication round carry: the group commit.
	maxAppendEntries = 512
	rpcTimeout       = 5 * time.Second
)

// Kinds of command, the first byte of a Raft entry's data.
const (
	kindRecord byte = 'R' // an engine record: term (uvarint) then the event body
	kindMeta   byte = 'M' // cluster metadata (JSON meta)
)

// Peer is one member of the static cluster.
type Peer struct {
	ID   string
	Addr string // Raft address, host:port
}

// ParsePeers reads "n1=127.0.0.1:7001,n2=...".
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--peers: %q: %v", part, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("--peers: node id %q is listed twice", id)
		}
		seen[id] = true
		out = append(out, Peer{ID: id, Addr: addr})
	}
	if len(out) < 3 || len(out)%2 == 0 {
		return nil, fmt.Errorf("--peers lists %d nodes: a cluster needs an odd number, at least 3, so that a majority survives the loss of one", len(out))
	}
	return out, nil
}

// Config configures Open.
type Config struct {
	ID    string // this node's id, one of Peers
	Peers []Peer // every member, the same list on every node
	Dir   string // raft.db, raft-log/ and snapshots go here
	// StateDir is where the engine keeps its snapshot files; the Raft
	// snapshots carry them (see snapshot.go).
	StateDir string
	// TrailingLogs is how many entries the log keeps behind a snapshot,
	// so that a follower lagging by fewer catches up without one (0:
	// 10240).
	TrailingLogs uint64
	// LogStore holds Raft's log: "wal" in tidwall/wal segment files in
	// <Dir>/raft-log, one append and one fsync per batch (walstore.go);
	// "bolt" in raft.db with the term and vote (raft-boltdb), about half
	// as fast here; "" the one the data directory holds, wal for a fresh
	// one. A data directory keeps the store it was created with.
	LogStore string
	// Rejoin: this node was a member and lost its data directory (or it
	// was emptied to repair it). An empty directory then does not
	// bootstrap: the node waits for the leader and votes in no election
	// until it holds what it acknowledged before (rejoin.go). Ignored
	// when the directory holds Raft state.
	Rejoin bool
	Logger *slog.Logger

	// wrapLogs, if set, wraps the log store (tests: a disk that hangs).
	wrapLogs func(raft.LogStore) raft.LogStore
}

// Node is this process's member of the cluster.
type Node struct {
	cfg   Config
	addr  string
	r     *raft.Raft
	store *raftboltdb.BoltStore // the stable store, and the log store unless wal is set
	logs  raft.LogStore         // store or wal
	wal   *walStore
	snaps *raft.FileSnapshotStore
	timed *timedLogStore // logs, its writes timed
	cache *raft.LogCache // Raft's view of logs, through timed
	trans *raft.NetworkTransport
	guard *rejoinGuard // the transport Raft uses while rejoining; nil otherwise
	// running is r, for what may run before NewRaft returns.
	running atomic.Pointer[raft.Raft]
	fsm     *fsm
	obs     *raft.Observer

	base      atomic.Pointer[base] // the newest Raft snapshot (snapshot.go)
	floor     atomic.Uint64        // the engine's files need no record before it
	snapReq   chan struct{}        // capacity 1: take a Raft snapshot
	snapshots atomic.Uint64
	installs  atomic.Uint64
	started   atomic.Bool // NewRaft returned: a Restore from now on is an install

	changed chan struct{} // capacity 1: leadership or leader changed
	stop    chan struct{}
	done    sync.WaitGroup
}

// Open starts the node: it opens its stores, joins the static cluster (the
// first start of a fresh data directory bootstraps it) and starts taking
// part in elections.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var self *Peer
	for i := range cfg.Peers {
		if cfg.Peers[i].ID == cfg.ID {
			self = &cfg.Peers[i]
		}
	}
	if self == nil {
		return nil, fmt.Errorf("--node-id %q is not in --peers", cfg.ID)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("raft directory: %w", err)
	}
	// The directory's entry in its parent: a crash soon after a first start
	// must not bring the node back without the votes and entries it gave.
	if err := wal.OS.SyncDir(filepath.Dir(filepath.Clean(cfg.Dir))); err != nil {
		return nil, fmt.Errorf("raft directory: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(cfg.Dir, "raft.db"),
		// The freelist is rebuilt at open instead of written at every
		// commit: bolt's file never shrinks, and syncing a large freelist
		// slows every append.
		BoltOptions: &bbolt.Options{Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType},
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w (is another node using this data directory?)", filepath.Join(cfg.Dir, "raft.db"), err)
	}
	logs, ws, err := openLogStore(cfg, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	closeStores := func() {
		store.Close()
		if ws != nil {
			ws.Close()
		}
	}
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: newSlogWriter(cfg.Logger), DisableTime: true})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("raft snapshots: %w", err)
	}
	// bolt and the snapshot store create raft.db and snapshots/ without
	// syncing their directory.
	if err := wal.OS.SyncDir(cfg.Dir); err != nil {
		closeStores()
		return nil, fmt.Errorf("raft directory: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", self.Addr)
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("--raft-addr %q: %w", self.Addr, err)
	}
	trans, err := raft.NewTCPTransportWithLogger(self.Addr, adv, 8, rpcTimeout, hl)
	if err != nil {
		closeStores()
		return nil, fmt.Errorf("listen for raft on %s: %w (is another node using it? choose another with --raft-addr)", self.Addr, err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.HeartbeatTimeout = heartbeatTimeout
	rc.ElectionTimeout = electionTimeout
	rc.LeaderLeaseTimeout = leaseTimeout
	rc.MaxAppendEntries = maxAppendEntries
	rc.BatchApplyCh = true // the journal never uses Apply's timeout
	rc.NoLegacyTelemetry = true
	// Snapshots follow the engine's (snapshot.go), never a count of
	// entries: a snapshot before the engine's files moved would copy the
	// whole log again.
	rc.SnapshotThreshold = 1 << 62
	rc.SnapshotInterval = 24 * time.Hour
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	n := &Node{cfg: cfg, addr: self.Addr, store: store, logs: logs, wal: ws, snaps: snaps, trans: trans,
		changed: make(chan struct{}, 1), stop: make(chan struct{}), snapReq: make(chan struct{}, 1)}
	n.fsm = newFSM(n)
	var servers []raft.Server
	for _, p := range cfg.Peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		trans.Close()
		closeStores()
		return nil, fmt.Errorf("read the raft state in %s: %w", cfg.Dir, err)
	}
	var rt raft.Transport = trans
	switch {
	case existing:
		// A restart: the state says who the members are.
	case cfg.Rejoin:
		// Raft's applied index, not the FSM's: the leader's mark may be
		// an entry the FSM never sees (a new term's no-op).
		applied := func() uint64 {
			if r := n.running.Load(); r != nil {
				return r.AppliedIndex()
			}
			return 0
		}
		n.guard = newRejoinGuard(trans, cfg.ID, self.Addr, applied, func(format string, args ...any) {
			cfg.Logger.Info(fmt.Sprintf(format, args...))
		})
		rt = n.guard
		cfg.Logger.Info("raft: rejoining with an empty data directory: waiting for the cluster's leader to reach this node (if this is the cluster's first start, restart without --rejoin)", "dir", cfg.Dir)
	default:
		// A first start: every member bootstraps its fresh store with the
		// same list.
		err = raft.BootstrapCluster(rc, logs, store, snaps, trans, raft.Configuration{Servers: servers})
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			trans.Close()
			closeStores()
			return nil, fmt.Errorf("bootstrap the cluster: %w", err)
		}
		cfg.Logger.Info("raft: bootstrapped a fresh data directory as a first start of the cluster (a member that lost its data directory restarts with --rejoin instead)", "dir", cfg.Dir)
	}
	closeTrans := func() {
		if n.guard != nil {
			n.guard.Close()
		} else {
			trans.Close()
		}
	}
	if cfg.wrapLogs != nil {
		n.timed = newTimedLogStore(cfg.wrapLogs(logs))
	} else {
		n.timed = newTimedLogStore(logs)
	}
	cache, err := raft.NewLogCache(512, n.timed)
	if err != nil {
		closeTrans()
		closeStores()
		return nil, err
	}
	n.cache = cache
	r, err := raft.NewRaft(rc, n.fsm, cache, store, snaps, rt)
	if err != nil {
		closeTrans()
		closeStores()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.r = r
	n.running.Store(r)
	n.started.Store(true)
	ch := make(chan raft.Observation, 64)
	n.obs = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(n.obs)
	n.done.Add(3)
	go n.snapshotLoop()
	go func() {
		defer n.done.Done()
		for {
			select {
			case <-ch:
				n.poke()
			case <-n.stop:
				return
			}
		}
	}()
	// A dropped observation (full channel) must not leave a change
	// unnoticed: a slow tick pokes too.
	go func() {
		defer n.done.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				n.poke()
			case <-n.stop:
				return
			}
		}
	}()
	return n, nil
}

func (n *Node) poke() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// Changes fires (coalesced) when the node's state or its leader may have
// changed, and at least every 250 ms. One consumer.
func (n *Node) Changes() <-chan struct{} { return n.changed }

// ID is this node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Peers is the static member list.
func (n *Node) Peers() []Peer { return n.cfg.Peers }

// IsLeader reports whether this node leads now.
func (n *Node) IsLeader() bool { return n.r.State() == raft.Leader }

// State is "leader", "follower", "candidate" or "shutdown".
func (n *Node) State() string { return strings.ToLower(n.r.State().String()) }

// Leader is the current leader's id, or "" during an election.
func (n *Node) Leader() string {
	_, id := n.r.LeaderWithID()
	return string(id)
}

// AppliedIndex is the last entry applied on this node, a follower's state
// included. (Raft's own AppliedIndex moves when entries are handed to the
// FSM's goroutine, before they are applied.)
func (n *Node) AppliedIndex() uint64 { return n.fsm.last.Load() }

// CommitIndex is the last entry this node knows committed.
func (n *Node) CommitIndex() uint64 { return n.r.CommitIndex() }

// LastContact is when this node last heard from its leader (zero on the
// leader itself).
func (n *Node) LastContact() time.Time { return n.r.LastContact() }

// CatchUp waits until every entry of earlier terms is applied here: a new
// leader calls it before it serves anything.
func (n *Node) CatchUp(timeout time.Duration) error {
	return n.r.Barrier(timeout).Error()
}

// Lease is how long after the start of a successful Verify this node may
// take itself for the only leader: less than the heartbeat timeout, the
// least time a follower that acknowledged it waits before it may elect
// another.
const Lease = 200 * time.Millisecond

// Verify confirms with a majority that this node still leads: it commits
// an empty entry (Raft's barrier) in this node's term, which a majority
// must store. It costs one write and fsync on each of them.
//
// Raft's VerifyLeader is not enough after a pause (SIGSTOP): it counts any
// successful answer of a follower that arrives while it waits, and answers
// sent before the pause, still unread in the sockets (a pipeline holds
// many), arrive first on resuming, although the followers have elected
// another leader since. An entry of this term can only commit if a
// majority is still in it.
func (n *Node) Verify() error {
	return notLeader(n.r.Barrier(rpcTimeout).Error())
}

// Dispatched is the last entry Raft handed to this node's state machine
// (entries that are not records included); a node whose Dispatched has
// reached CommitIndex has caught up but for what its apply queue holds.
func (n *Node) Dispatched() uint64 { return n.r.AppliedIndex() }

// HTTPAddr is the HTTP address the node with that id registered, or "".
func (n *Node) HTTPAddr(id string) string { return n.fsm.httpAddr(id) }

// SigningKey is the cluster's token signing key, or nil before the first
// leader set it.
func (n *Node) SigningKey() []byte { return n.fsm.signingKey() }

// Follow builds a follower's state and keeps it up to date: build gets a
// journal that replays the log up to the last applied entry (and refuses
// every append), then apply gets every record committed after it, in
// order, on the goroutine that applies Raft's log. Entries wait while
// build runs. Unfollow stops it.
func (n *Node) Follow(build func(j *Replica) error, apply func(seq uint64, ev *wal.Event), fail func(error)) error {
	n.fsm.fmu.Lock()
	defer n.fsm.fmu.Unlock()
	r := &Replica{n: n, upTo: n.fsm.last.Load()}
	r.last.Store(r.upTo)
	if err := build(r); err != nil {
		return err
	}
	n.fsm.follow = func(seq uint64, ev *wal.Event) {
		r.last.Store(seq)
		apply(seq, ev)
	}
	n.fsm.followFail = fail
	return nil
}

// Unfollow stops passing records to the follower's state; when it
// returns, none is being passed.
func (n *Node) Unfollow() {
	n.fsm.fmu.Lock()
	n.fsm.follow, n.fsm.followFail = nil, nil
	n.fsm.fmu.Unlock()
}

// SetMeta replicates the node's HTTP address and, when the cluster has none
// yet, the signing key. Leader only; it returns once committed.
func (n *Node) SetMeta(id, httpAddr string, key []byte) error {
	b, err := json.Marshal(meta{Node: id, HTTP: httpAddr, Key: key})
	if err != nil {
		return err
	}
	f := n.r.Apply(append([]byte{kindMeta}, b...), rpcTimeout)
	if err := f.Error(); err != nil {
		return notLeader(err)
	}
	return nil
}

// Close leaves the cluster's work to the others: it stops Raft and closes
// the stores. Journals of this node fail from here on.
func (n *Node) Close() error {
	close(n.stop)
	err := n.r.Shutdown().Error()
	n.r.DeregisterObserver(n.obs)
	n.done.Wait()
	if n.guard != nil {
		err = errors.Join(err, n.guard.Close())
	} else {
		err = errors.Join(err, n.trans.Close())
	}
	err = errors.Join(err, n.store.Close())
	if n.wal != nil {
		err = errors.Join(err, n.wal.Close())
	}
	return err
}

// openLogStore opens the log store cfg.LogStore names. A data directory
// whose log is in the other store is refused: Raft would take an empty log
// for one that lost its entries, and this node may have acknowledged them.
func openLogStore(cfg Config, bolt *raftboltdb.BoltStore) (raft.LogStore, *walStore, error) {
	dir := filepath.Join(cfg.Dir, "raft-log")
	choice := cfg.LogStore
	if choice == "" {
		choice = "wal"
		if last, err := bolt.LastIndex(); err == nil && last > 0 {
			choice = "bolt" // a directory made before wal was the default
		}
	}
	switch choice {
	case "bolt":
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return nil, nil, fmt.Errorf("%s holds this node's Raft log: open it with the wal log store, or move the data directory aside and start the node with an empty one and --rejoin", dir)
		}
		return bolt, nil, nil
	case "wal":
		if last, err := bolt.LastIndex(); err != nil || last > 0 {
			return nil, nil, fmt.Errorf("%s holds this node's Raft log (last entry %d, %v): open it with the bolt log store, or move the data directory aside and start the node with an empty one and --rejoin",
				filepath.Join(cfg.Dir, "raft.db"), last, err)
		}
		ws, err := openWALStore(dir, 0, func(format string, args ...any) { cfg.Logger.Warn(fmt.Sprintf(format, args...)) })
		if err != nil {
			return nil, nil, err
		}
		return ws, ws, nil
	}
	return nil, nil, fmt.Errorf("raft log store %q: choose bolt or wal", cfg.LogStore)
}

// notLeader turns the library's leadership errors into wal.ErrNotLeader.
func notLeader(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w (%v)", errNotLeader, err)
	}
	return err
}

// meta is a metadata command: a node's HTTP address, and the signing key
// if the cluster has none yet.
type meta struct {
	Node string `json:"node"`
	HTTP string `json:"http"`
	Key  []byte `json:"key,omitempty"`
}

// fsm is the state every node applies: the metadata. The records stay in
// the Raft log, where a new leader's engine reads them (Journal.Replay),
// and, behind a snapshot, in the snapshot's tail (snapshot.go).
type fsm struct {
	n     *Node
	mu    sync.RWMutex
	nodes map[string]string // id -> HTTP address
	key   []byte
	last  atomic.Uint64 // applied index

	// fmu orders Apply against Follow: a follower's engine is built from
	// the log up to the applied index and then gets every later record
	// from Apply, none missed, none twice.
	fmu        sync.Mutex
	follow     func(seq uint64, ev *wal.Event)
	followFail func(err error)
}

func newFSM(n *Node) *fsm { return &fsm{n: n, nodes: map[string]string{}} }

func (f *fsm) Apply(l *raft.Log) any {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	// Stored once the entry is applied, follower's state included: what
	// Applied promises.
	defer f.last.Store(l.Index)
	if l.Type != raft.LogCommand || len(l.Data) == 0 {
		return nil
	}
	switch l.Data[0] {
	case kindRecord:
		term, n := binary.Uvarint(l.Data[1:])
		if n <= 0 || term != l.Term {
			return errStale
		}
		if f.follow != nil {
			ev := new(wal.Event)
			if err := ev.UnmarshalBinary(l.Data[1+n:]); err != nil {
				// The follower's state would miss it: it must stop.
				err = fmt.Errorf("raft log entry %d: %w", l.Index, err)
				f.followFail(err)
				// A failed copy gets nothing more; the node builds another.
				f.follow, f.followFail = nil, nil
				return err
			}
			f.follow(l.Index, ev)
		}
	case kindMeta:
		var m meta
		if err := json.Unmarshal(l.Data[1:], &m); err != nil {
			return err
		}
		f.mu.Lock()
		if m.Node != "" {
			f.nodes[m.Node] = m.HTTP
		}
		if len(f.key) == 0 && len(m.Key) > 0 {
			f.key = m.Key
		}
		f.mu.Unlock()
	}
	return nil
}

func (f *fsm) httpAddr(id string) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.nodes[id]
}

func (f *fsm) signingKey() []byte {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.key
}

// firstField is the first key=value of hclog's fields, its value whole
// when quoted (a peer is written as peer="{Voter n2 127.0.0.1:7002}").
func firstField(fields string) string {
	k, v, ok := strings.Cut(fields, "=")
	if !ok || strings.Contains(k, " ") {
		first, _, _ := strings.Cut(fields, " ")
		return first
	}
	if strings.HasPrefix(v, `"`) {
		if q, err := strconv.QuotedPrefix(v); err == nil {
			return k + "=" + q
		}
	}
	v, _, _ = strings.Cut(v, " ")
	return k + "=" + v
}

// slogWriter passes the library's log lines (hclog's, without their time)
// to the server's logger at their own level. A peer that is down makes
// the library say the same thing twice a second: a line that repeats
// within slogRepeatEvery is counted, and the next one that passes says
// how many were left out.
type slogWriter struct {
	l    *slog.Logger
	mu   sync.Mutex
	seen map[string]*slogRepeat
}

type slogRepeat struct {
	at      time.Time
	dropped int
}

const slogRepeatEvery = 10 * time.Second

// hclogLevels are hclog's level tags and the slog levels they become.
var hclogLevels = []struct {
	tag   string
	level slog.Level
}{{"[ERROR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}}

func newSlogWriter(l *slog.Logger) *slogWriter {
	return &slogWriter{l: l, seen: map[string]*slogRepeat{}}
}

func (w *slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	for _, t := range hclogLevels {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			line, level = strings.TrimSpace(rest), t.level
			break
		}
	}
	// hclog writes "name: message: key=value ...".
	if name, rest, ok := strings.Cut(line, ": "); ok && !strings.Contains(name, " ") {
		line = rest
	}
	msg, fields, _ := strings.Cut(line, ": ")
	// A repeat is the same message about the same peer: the first field
	// (peer=..., id=...) goes in the key, the others (an error's text) not.
	key := msg + " " + firstField(fields)
	now := time.Now()
	w.mu.Lock()
	r := w.seen[key]
	if r != nil && now.Sub(r.at) < slogRepeatEvery {
		r.dropped++
		w.mu.Unlock()
		return len(p), nil
	}
	dropped := 0
	if r != nil {
		dropped = r.dropped
	}
	if len(w.seen) > 1000 {
		clear(w.seen)
	}
	w.seen[key] = &slogRepeat{at: now}
	w.mu.Unlock()
	args := []any{"lib", "raft"}
	if fields != "" {
		args = append(args, "detail", fields)
	}
	if dropped > 0 {
		args = append(args, "repeated", dropped)
	}
	w.l.Log(context.Background(), level, msg, args...)
	return len(p), nil
}
