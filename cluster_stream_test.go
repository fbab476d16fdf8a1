//go:build unix

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// streamEvent is one event of a place in line's stream.
type streamEvent struct {
	State    string `json:"state"`
	Position int    `json:"position"`
}

// lineStream is an open event stream of a place in line: its events, and
// ended closed when the server ends it.
type lineStream struct {
	node   *clusterNode
	events chan streamEvent
	ended  chan struct{}
	cancel context.CancelFunc
}

// openStream connects to a place in line's events on node n, retrying
// while the node cannot serve it yet (it has not applied the join, or it is
// between engines), and returns once the first event came.
func (r *clusterRun) openStream(n *clusterNode, sale, qid string) (*lineStream, streamEvent) {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.http+"/v1/sales/"+sale+"/queue/"+qid+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			if err == nil {
				resp.Body.Close()
			}
			cancel()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		s := &lineStream{node: n, events: make(chan streamEvent, 64), ended: make(chan struct{}), cancel: cancel}
		go func() {
			defer close(s.ended)
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				var ev streamEvent
				if ok && json.Unmarshal([]byte(data), &ev) == nil {
					s.events <- ev
				}
			}
		}()
		r.t.Cleanup(cancel)
		select {
		case ev := <-s.events:
			return s, ev
		case <-s.ended:
			cancel()
		case <-time.After(5 * time.Second):
			r.t.Fatalf("the stream on %s sent nothing in 5 s", n.id)
		}
	}
	r.t.Fatalf("no event stream of %s on %s within 20 s", qid, n.id)
	return nil, streamEvent{}
}

// next is the stream's next event, or ended true if the server ended it
// first; it fails the test after wait.
func (s *lineStream) next(t *testing.T, wait time.Duration) (streamEvent, bool) {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev, false
	case <-s.ended:
		select {
		case ev := <-s.events: // sent just before the end
			return ev, false
		default:
		}
		return streamEvent{}, true
	case <-time.After(wait):
		t.Fatalf("the stream on %s neither sent nor ended in %s", s.node.id, wait)
		return streamEvent{}, false
	}
}

// TestClusterStreamAcrossFailover: buyers waiting in line watch their
// place through the followers' event streams while the leader is killed.
// The stream on the node that takes over ends (its engine is replaced) and
// a reconnect there shows the same place; the stream on the node that
// stays a follower goes on; both then tell the buyer of the admission the
// new leader makes.
func TestClusterStreamAcrossFailover(t *testing.T) {
	r := &clusterRun{t: t, bin: crashBuild(t), hc: &http.Client{Timeout: 3 * time.Second},
		rng: rand.New(rand.NewPCG(3, 4)), acked: map[string]clusterHold{}}
	ld := r.startNodes()
	const sale = "streams"
	def := map[string]any{
		"id": sale, "name": "Streams across a failover", "hold_ttl_s": crashHoldTTLS, "max_per_buyer": 2,
		// One shopper at a time: the second buyer waits until the first
		// leaves.
		"waiting_room": map[string]any{"active_limit": 1, "admit_per_s": 0, "access_ttl_s": 86400},
		"zones":        []map[string]any{{"id": "ga", "name": "General admission", "price_cents": 4500, "capacity": 10}},
	}
	if st, b, err := r.call(ld, "POST", "/v1/sales", crashAdminToken, "", crashJSON(def)); err != nil || st != 201 {
		t.Fatalf("create the sale: %d %s %v", st, b, err)
	}
	join := func(buyer, want string) string {
		st, b, err := r.call(ld, "POST", "/v1/sales/"+sale+"/queue", "", "", crashJSON(map[string]string{"buyer": buyer}))
		var tk crashTicketBody
		if err != nil || st != 200 || json.Unmarshal(b, &tk) != nil || tk.State != want {
			t.Fatalf("join %s: %d %s %v, want %s", buyer, st, b, err, want)
		}
		return tk.QueueID
	}
	first := join("first", "admitted")
	second := join("second", "waiting")

	var streams []*lineStream
	for _, n := range r.nodes {
		if n == ld {
			continue
		}
		s, ev := r.openStream(n, sale, second)
		if ev.State != "waiting" || ev.Position != 1 {
			t.Fatalf("the stream on follower %s starts with %+v, want waiting at 1", n.id, ev)
		}
		streams = append(streams, s)
	}

	killed := time.Now()
	ld.cmd.Process.Kill()
	<-ld.exited
	ld.cmd = nil
	nl := r.leader(15 * time.Second)
	if nl == nil {
		t.Fatal("no leader after the kill")
	}
	t.Logf("%s took over %v after the kill", nl.id, time.Since(killed).Round(time.Millisecond))

	// The new leader's streams ended with its follower's engine; the
	// other follower's goes on.
	for i, s := range streams {
		if s.node != nl {
			continue
		}
		for {
			if _, ended := s.next(t, 10*time.Second); ended {
				break
			}
		}
		ns, ev := r.openStream(nl, sale, second)
		if ev.State != "waiting" || ev.Position != 1 {
			t.Fatalf("a reconnect to the new leader %s starts with %+v, want waiting at 1", nl.id, ev)
		}
		streams[i] = ns
	}

	// The first buyer leaves; the new leader admits the second, and every
	// stream says so, then ends.
	if st, b, err := r.call(nl, "DELETE", "/v1/sales/"+sale+"/queue/"+first, "", "", nil); err != nil || st >= 300 {
		t.Fatalf("the first buyer leaves: %d %s %v", st, b, err)
	}
	for _, s := range streams {
		for {
			ev, ended := s.next(t, 10*time.Second)
			if ended {
				t.Fatalf("the stream on %s ended without the admission", s.node.id)
			}
			if ev.State == "admitted" {
				break
			}
			if ev.State != "waiting" {
				t.Fatalf("the stream on %s sent %+v before the admission", s.node.id, ev)
			}
		}
		if _, ended := s.next(t, 5*time.Second); !ended {
			t.Fatalf("the stream on %s went on after the admission", s.node.id)
		}
	}
}

// TestClusterAlertMemberDown: the on-sale team hears of a member lost
// while the cluster goes on: with a follower killed the leader's
// cluster_member_down alert fires, and it resolves once the follower is
// back and caught up.
func TestClusterAlertMemberDown(t *testing.T) {
	r := &clusterRun{t: t, bin: crashBuild(t), hc: &http.Client{Timeout: 3 * time.Second},
		rng: rand.New(rand.NewPCG(5, 6)), acked: map[string]clusterHold{}}
	ld := r.startNodes()
	firing := func() bool {
		st, b, err := r.call(ld, "GET", "/metrics", crashAdminToken, "", nil)
		if err != nil || st != 200 {
			t.Fatalf("metrics of the leader %s: %d %v", ld.id, st, err)
		}
		return strings.Contains(string(b), `onsale_alert{rule="cluster_member_down",sale=""} 1`)
	}
	within := func(what string, d time.Duration, cond func() bool) time.Duration {
		start := time.Now()
		for !cond() {
			if time.Since(start) > d {
				t.Fatalf("%s: not within %s", what, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	time.Sleep(2 * time.Second)
	if firing() {
		t.Fatal("cluster_member_down fires with every member up")
	}
	var f *clusterNode
	for _, n := range r.nodes {
		if n != ld {
			f = n
			break
		}
	}
	f.kill()
	took := within("the alert fires after a follower is killed", 20*time.Second, firing)
	t.Logf("cluster_member_down fired %v after follower %s was killed", took.Round(time.Millisecond), f.id)
	if l := r.leader(5 * time.Second); l != ld {
		t.Fatalf("the leader changed (%v) with a follower killed", l)
	}
	f.start(t, r.bin, r.peers)
	took = within("the alert resolves once the follower is back", 30*time.Second, func() bool { return !firing() })
	t.Logf("resolved %v after the follower restarted", took.Round(time.Millisecond))
}
