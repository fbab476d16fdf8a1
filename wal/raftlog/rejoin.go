package raftlog

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Rejoining after losing the data directory (Config.Rejoin).
//
// A node whose data directory is empty cannot tell a first start of the
// cluster from a restart after its disk was lost. On a first start every
// member bootstraps the same configuration. A member that lost its disk
// must not do as if it were new: it has forgotten the entries it
// acknowledged and the votes it gave, and with an empty log it would vote
// for any candidate, one that lacks an entry committed with this node's
// own acknowledgement included. That candidate could win, and the entry
// would be lost.
//
// So a rejoining node does not bootstrap, and it refuses every vote and
// pre-vote, and asks for none (its own vote for itself is given inside the
// library, and a partial copy could win with a lagging member's), until it
// has applied the log up to a point that covers what it acknowledged
// before: the highest index the leader's first append names
// (its commit index, the entry before its entries, the last of them) or
// the last index of the first snapshot installed. A leader's first append
// to it starts at the index the leader next expects from this node, past
// everything this node acknowledged, or (a newer leader) at its own last
// entry, past everything committed. From then on the node votes as any.

// rejoinGuard is the Raft transport of a rejoining node: the transport
// itself, with its RPCs passed through a filter.
type rejoinGuard struct {
	*raft.NetworkTransport
	rpcs   chan raft.RPC
	header raft.RPCHeader
	// applied is the last index this node applied.
	applied func() uint64
	// mark is the index to reach, 0 until a leader's first contact.
	mark atomic.Uint64
	open atomic.Bool // caught up: every RPC passes
	logf func(string, ...any)

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newRejoinGuard(t *raft.NetworkTransport, id, addr string, applied func() uint64, logf func(string, ...any)) *rejoinGuard {
	g := &rejoinGuard{
		NetworkTransport: t, rpcs: make(chan raft.RPC), applied: applied, logf: logf,
		header: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)},
		stop:   make(chan struct{}), done: make(chan struct{}),
	}
	go g.run(t.Consumer())
	return g
}

// errRejoining refuses this node's own campaign. Its text must not hold
// the library's "rpc unexpected command", which counts as a pre-vote
// granted by a peer that knows no pre-votes.
var errRejoining = errors.New("this node is rejoining and votes in no election until it has caught up with the log")

// RequestVote asks a peer for its vote, once this node has caught up.
func (g *rejoinGuard) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if !g.caughtUp() {
		return errRejoining
	}
	return g.NetworkTransport.RequestVote(id, target, args, resp)
}

// RequestPreVote asks a peer for its pre-vote, once this node has caught up.
func (g *rejoinGuard) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if !g.caughtUp() {
		return errRejoining
	}
	return g.NetworkTransport.RequestPreVote(id, target, args, resp)
}

// Consumer is what Raft reads its RPCs from.
func (g *rejoinGuard) Consumer() <-chan raft.RPC { return g.rpcs }

// Close stops the filter, then the transport.
func (g *rejoinGuard) Close() error {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
	return g.NetworkTransport.Close()
}

func (g *rejoinGuard) run(in <-chan raft.RPC) {
	defer close(g.done)
	for {
		select {
		case rpc := <-in:
			if !g.pass(rpc) {
				continue
			}
			select {
			case g.rpcs <- rpc:
			case <-g.stop:
				return
			}
		case <-g.stop:
			return
		}
	}
}

// pass notes a leader's first contact, answers a vote itself (refused)
// while the node has not caught up, and reports whether Raft gets the RPC.
func (g *rejoinGuard) pass(rpc raft.RPC) bool {
	if g.open.Load() {
		return true
	}
	switch req := rpc.Command.(type) {
	case *raft.AppendEntriesRequest:
		mark := max(req.LeaderCommitIndex, req.PrevLogEntry)
		if k := len(req.Entries); k > 0 {
			mark = max(mark, req.Entries[k-1].Index)
		}
		g.note(mark)
	case *raft.InstallSnapshotRequest:
		g.note(req.LastLogIndex)
	case *raft.RequestVoteRequest:
		if !g.caughtUp() {
			rpc.Respond(&raft.RequestVoteResponse{RPCHeader: g.header, Term: req.Term, Granted: false}, nil)
			return false
		}
	case *raft.RequestPreVoteRequest:
		if !g.caughtUp() {
			rpc.Respond(&raft.RequestPreVoteResponse{RPCHeader: g.header, Term: req.Term, Granted: false}, nil)
			return false
		}
	}
	return true
}

func (g *rejoinGuard) note(mark uint64) {
	if mark > 0 && g.mark.CompareAndSwap(0, mark) {
		g.logf("raft: rejoining: the leader's first contact names entry %d; this node votes once it has applied the log up to there", mark)
	}
}

// caughtUp reports whether the node has applied the log up to the mark,
// and opens the guard for good once it has.
func (g *rejoinGuard) caughtUp() bool {
	if g.open.Load() {
		return true
	}
	if m := g.mark.Load(); m == 0 || g.applied() < m {
		return false
	}
	g.open.Store(true)
	g.logf("raft: rejoined: this node has applied the log up to entry %d and takes part in elections again", g.mark.Load())
	return true
}
