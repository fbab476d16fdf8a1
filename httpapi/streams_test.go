package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"onsale/actors"
)

// TestQueueEventsPushedToThousands: 2,000 buyers join before the opening
// and each opens an event stream; the opening draws them and admits them all
// at 2,000/s. Every stream must hear its own admission (with a working
// token), pushed: before the opening each stream got one event and nothing
// else but heartbeats.
func TestQueueEventsPushedToThousands(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 streams")
	}
	const buyers = 2000
	ts := startServer(t, withNoSync())
	opens := ts.clock.Now().Add(time.Hour)
	ts.createSale(t, newSaleSpec("s").with("opens_at", actors.FormatTime(opens)).
		room("active_limit", 1_000_000).room("admit_per_s", 2000).
		with("zones", []any{map[string]any{"id": "ga", "capacity": 10 * buyers}}))
	ids := make([]string, buyers)
	for i := range ids {
		ids[i] = ts.join(t, "s", fmt.Sprintf("b%d", i)).QueueID
	}

	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: buyers + 10, MaxIdleConnsPerHost: buyers + 10}}
	defer client.CloseIdleConnections()
	type heard struct {
		first, last ticket
		events      int
		err         error
	}
	results := make([]heard, buyers)
	var opened, wg sync.WaitGroup
	var open atomic.Bool   // the sale has opened
	var early atomic.Int64 // events after the first, before the opening
	opened.Add(buyers)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := &results[i]
			resp, err := client.Get(ts.base + "/v1/sales/s/queue/" + ids[i] + "/events")
			if err != nil {
				h.err = err
				opened.Done()
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					if h.events == 0 {
						opened.Done()
					}
					h.err = fmt.Errorf("after %d events: %v", h.events, err)
					return
				}
				data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
				if !ok {
					continue
				}
				var k ticket
				if err := json.Unmarshal([]byte(data), &k); err != nil {
					h.err = err
					return
				}
				h.events++
				if h.events > 1 && !open.Load() {
					early.Add(1)
				}
				if h.events == 1 {
					h.first = k
					opened.Done()
				}
				h.last = k
				if k.State == "admitted" {
					return
				}
			}
		}(i)
	}
	opened.Wait()
	requireEqual(t, ts.srv.m.streams.Load(), int64(buyers), "streams open")
	// Nothing changes before the opening: no event beyond the first.
	time.Sleep(1500 * time.Millisecond)
	open.Store(true)
	requireEqual(t, early.Load(), int64(0), "events before the opening beyond the first (a countdown?)")
	ts.clock.Advance(time.Hour + time.Second)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("not every stream heard its admission within 60 s")
	}
	tokens := 0
	for i, h := range results {
		requireTrue(t, h.err == nil, "stream %d: %v", i, h.err)
		requireEqual(t, h.first.State, "waiting", "stream %d: first event", i)
		requireTrue(t, h.first.OpensInS != nil && *h.first.OpensInS > 0, "stream %d: the first event says when the sale opens", i)
		requireEqual(t, h.last.State, "admitted", "stream %d: last event", i)
		requireTrue(t, h.last.AccessToken != "", "stream %d: the admission carries a token", i)
		if h.events == 2 {
			tokens++
		}
	}
	// Between the opening draw and the admission a buyer may hear a
	// position or two; most hear just the admission.
	requireTrue(t, tokens > buyers/2, "only %d of %d streams went straight from the pre-queue to admitted", tokens, buyers)
	requireStatus(t, ts.hold(t, "s", results[buyers-1].last.AccessToken, map[string]any{"zone": "ga", "quantity": 1}), 201, "a streamed token works")
}

// TestQueueEventsEndWhenTheEngineStops: a stream waits on its sale's
// engine; when that engine stops (a cluster node's engine is swapped when
// its leadership moves), the stream ends so that the buyer's page
// reconnects to the new one, instead of hearing heartbeats from a room
// that will never move.
func TestQueueEventsEndWhenTheEngineStops(t *testing.T) {
	ts := startServer(t, withNoSync())
	opens := ts.clock.Now().Add(time.Hour)
	ts.createSale(t, newSaleSpec("s").with("opens_at", actors.FormatTime(opens)).
		with("zones", []any{map[string]any{"id": "ga", "capacity": 10}}))
	id := ts.join(t, "s", "b1").QueueID
	resp, err := http.Get(ts.base + "/v1/sales/s/queue/" + id + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event: %q %v", line, err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := br.ReadString('\n'); err != nil {
				ended <- err
				return
			}
		}
	}()
	ts.srv.SetEngine(nil)
	if err := ts.eng.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if err != io.EOF {
			t.Fatalf("the stream ended with %v, want its end (EOF)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its engine by 10 s")
	}
}
