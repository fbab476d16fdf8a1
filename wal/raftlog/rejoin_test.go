package raftlog

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestRejoinGuardVotesOnceCaughtUp: a rejoining node refuses votes and
// pre-votes until a leader has named an index and the node has applied
// the log up to it; then every RPC passes.
func TestRejoinGuardVotesOnceCaughtUp(t *testing.T) {
	var applied uint64
	g := &rejoinGuard{applied: func() uint64 { return applied }, logf: t.Logf}
	vote := func(pre bool) (passed, granted bool) {
		resp := make(chan raft.RPCResponse, 1)
		rpc := raft.RPC{Command: &raft.RequestVoteRequest{Term: 7}, RespChan: resp}
		if pre {
			rpc.Command = &raft.RequestPreVoteRequest{Term: 7}
		}
		if g.pass(rpc) {
			return true, false
		}
		r := <-resp
		switch resp := r.Response.(type) {
		case *raft.RequestVoteResponse:
			return false, resp.Granted || resp.Term > 7
		case *raft.RequestPreVoteResponse:
			return false, resp.Granted || resp.Term > 7
		}
		t.Fatalf("answered a vote with %T", r.Response)
		return false, false
	}
	check := func(when string, wantPass bool) {
		t.Helper()
		for _, pre := range []bool{false, true} {
			passed, granted := vote(pre)
			if granted {
				t.Fatalf("%s: the guard granted a vote itself", when)
			}
			if passed != wantPass {
				t.Fatalf("%s (pre-vote %v): passed %v, want %v", when, pre, passed, wantPass)
			}
		}
	}
	check("before any leader", false)
	// Nor does it ask for votes: a partial copy must not campaign.
	if err := g.RequestVote("n2", "127.0.0.1:1", &raft.RequestVoteRequest{Term: 7}, &raft.RequestVoteResponse{}); err == nil || strings.Contains(err.Error(), "rpc unexpected command") {
		t.Fatalf("asked for a vote before it caught up: %v", err)
	}
	if err := g.RequestPreVote("n2", "127.0.0.1:1", &raft.RequestPreVoteRequest{Term: 7}, &raft.RequestPreVoteResponse{}); err == nil || strings.Contains(err.Error(), "rpc unexpected command") {
		t.Fatalf("asked for a pre-vote before it caught up: %v", err)
	}
	// A leader's first append: expecting entry 11 next, commit at 8, two
	// entries sent.
	if !g.pass(raft.RPC{Command: &raft.AppendEntriesRequest{PrevLogEntry: 10, LeaderCommitIndex: 8,
		Entries: []*raft.Log{{Index: 11}, {Index: 12}}}}) {
		t.Fatal("an append did not pass")
	}
	applied = 11
	check("applied 11 of 12", false)
	// A later append names more; the mark stays at the first contact's.
	g.pass(raft.RPC{Command: &raft.AppendEntriesRequest{PrevLogEntry: 12, LeaderCommitIndex: 40}})
	applied = 12
	check("applied up to the first contact's mark", true)
	applied = 0
	check("open for good", true)
}

// TestRejoinKeepsWhatItAcknowledged: the entry w commits on the leader and
// one follower only, that follower then loses its data directory and
// rejoins, and the leader stops. The other follower, which lacks w, must
// not lead with the rejoining node's vote: no leader while the old one is
// down. Once it is back, the rejoining node catches up, and with the old
// leader stopped again the two others elect a leader that has w.
func TestRejoinKeepsWhatItAcknowledged(t *testing.T) {
	c := newTestCluster(t)
	li := c.leader()
	lagging, lost := (li+1)%3, (li+2)%3
	j := c.nodes[li].Journal()
	j.Start()
	appendAll(t, j, "a")
	c.stop(lagging)
	appendAll(t, j, "w") // on the leader and lost only
	c.stop(li)
	c.stop(lost)
	if err := os.RemoveAll(c.dirs[lost]); err != nil {
		t.Fatal(err)
	}
	c.startWith(lost, true)
	c.start(lagging)

	// Eight election timeouts: the lagging node campaigns and must not win.
	end := time.Now().Add(8 * electionTimeout)
	for time.Now().Before(end) {
		if c.nodes[lagging].IsLeader() {
			t.Fatal("the node without w became leader: the rejoining node voted before it caught up")
		}
		if c.nodes[lost].IsLeader() {
			t.Fatal("the rejoining node became leader with an empty log")
		}
		time.Sleep(20 * time.Millisecond)
	}

	c.start(li)
	if got := c.leader(); got != li {
		t.Fatalf("node %d leads; only %d holds w", got, li)
	}
	// The rejoining node catches up with the leader.
	last := c.nodes[li].CommitIndex()
	deadline := time.Now().Add(20 * time.Second)
	for c.nodes[lost].Dispatched() < last {
		if time.Now().After(deadline) {
			t.Fatalf("the rejoining node applied %d of %d", c.nodes[lost].Dispatched(), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.stop(li)
	nl := c.leader()
	if nl == li {
		t.Fatal("a stopped node leads")
	}
	got := replayed(t, c.nodes[nl].Journal())
	if !slices.Contains(got, "w") || !slices.Contains(got, "a") {
		t.Fatalf("the new leader's log holds %v; want a and w", got)
	}
}
