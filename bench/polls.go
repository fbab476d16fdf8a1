package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// pollsLine is how many buyers wait in the polled line: long enough that
// polls spread over many tickets, short enough to join in a few seconds.
const pollsLine = 20_000

// pollsAdmitPerS keeps admissions running in the polled line while it is
// measured: the room publishes a new View every tick.
const pollsAdmitPerS = 200

// runPolls measures GET /queue/{id} at o.Conns connections against a
// fasthttp no-op GET in the same run, while the line admits and other buyers
// join and hold in a second sale; it reports the ratio and their p99.
func runPolls(o Options, c *client) error {
	fmt.Fprintf(o.Out, "polls mode: %d connections, %s per phase, a line of %d admitting %d/s\n", o.Conns, o.Duration, pollsLine, pollsAdmitPerS)
	ceiling, err := noopCeiling(o, "GET")
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "  no-op fasthttp GET ceiling: %.0f requests/s\n", ceiling)

	stamp := time.Now().UnixNano()
	line, shop := fmt.Sprintf("bench-line-%d", stamp), fmt.Sprintf("bench-shop-%d", stamp)
	if err := createSales(c,
		map[string]any{"id": line, "waiting_room": map[string]any{"active_limit": 1_000_000, "admit_per_s": pollsAdmitPerS, "access_ttl_s": 3600},
			"zones": []any{map[string]any{"id": "ga", "capacity": 1_000_000}}},
		shopSale(shop)); err != nil {
		return err
	}
	// The line: the first buyers are admitted at once, the rest wait.
	ids, failed := joinMany(c, o.Conns, line, "line_join", "p", pollsLine)
	if failed > 0 {
		return fmt.Errorf("only %d of %d buyers joined the line", pollsLine-failed, pollsLine)
	}

	// Phase 1, the ceiling: pollers in a closed loop, as fast as the server
	// answers. Phase 2, the crowd as the server shapes it: polls at the
	// poll budget, which poll_after_s holds the whole line to.
	rate, j, h, fails := pollPhase(o, c, line, shop, ids, "", 0)
	q := c.lat.quantiles("poll")
	fmt.Fprintf(o.Out, "  queue polls over HTTP:      %.0f polls/s (p50 %s, p99 %s), %d failures\n", rate, q.P50, q.P99, fails)
	fmt.Fprintf(o.Out, "  polls/s as a share of the no-op GET ceiling: %.0f%%\n", 100*rate/ceiling)
	fmt.Fprintf(o.Out, "  beside them, join p50 %s p99 %s and hold p50 %s p99 %s (%d join+hold pairs)\n", j.P50, j.P99, h.P50, h.P99, h.N)
	budget := o.Server.PollBudget
	if budget <= 0 {
		budget = line0PollBudget
	}
	rate, j, h, fails = pollPhase(o, c, line, shop, ids, "budget_", budget)
	fmt.Fprintf(o.Out, "  at the poll budget (%.0f/s asked): %.0f polls/s, %d failures; beside them join p50 %s p99 %s and hold p50 %s p99 %s (%d pairs)\n",
		budget, rate, fails, j.P50, j.P99, h.P50, h.P99, h.N)
	return nil
}

// line0PollBudget is the server's default poll budget, for a --target run
// whose flags the bench does not know.
const line0PollBudget = 10_000

// pollPhase polls the line for o.Duration (after a warm-up) from o.Conns
// connections, as fast as answered when perS is 0, else at perS in all,
// while four buyers join and hold in the shop sale one after the other. It
// returns polls/s and the join and hold latencies of the phase.
func pollPhase(o Options, c *client, line, shop string, ids []string, prefix string, perS float64) (float64, quantiles, quantiles, int64) {
	shopper := c.sibling(8)
	var polls, failures atomic.Int64
	var wg sync.WaitGroup
	measureFrom := time.Now().Add(warmup)
	deadline := measureFrom.Add(o.Duration)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				var t ticket
				st, err := shopper.do(prefix+"shop_join", "POST", "/v1/sales/"+shop+"/queue", "", "", []byte(`{"buyer":"`+prefix+`s`+strconv.Itoa(w)+`-`+strconv.Itoa(n)+`"}`), &t)
				if err != nil || st != 200 || t.State != "admitted" {
					failures.Add(1)
					continue
				}
				if st, err := shopper.do(prefix+"shop_hold", "POST", "/v1/sales/"+shop+"/holds", t.AccessToken, "", []byte(`{"zone":"ga","quantity":1}`), nil); err != nil || st != 201 {
					failures.Add(1)
				}
			}
		}()
	}
	var every time.Duration // one poller's interval when paced
	if perS > 0 {
		every = time.Duration(float64(o.Conns) / perS * float64(time.Second))
	}
	for k := range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now().Add(time.Duration(k) * every / time.Duration(o.Conns))
			for time.Now().Before(deadline) {
				if every > 0 {
					time.Sleep(time.Until(next))
					next = next.Add(every)
				}
				id := ids[rand.IntN(len(ids))]
				st, err := c.do(prefix+"poll", "GET", "/v1/sales/"+line+"/queue/"+id, "", "", nil, nil)
				if err != nil || st != 200 {
					failures.Add(1)
					continue
				}
				if time.Now().After(measureFrom) {
					polls.Add(1)
				}
			}
		}()
	}
	progress(o, deadline, func() string { return fmt.Sprintf("%d polls", polls.Load()) })
	wg.Wait()
	return float64(polls.Load()) / o.Duration.Seconds(), c.lat.quantiles(prefix + "shop_join"), c.lat.quantiles(prefix + "shop_hold"), failures.Load()
}

// shopSale is the definition of the sale in which a few buyers join and
// hold beside a mode's main load: large, no line, many seats a buyer.
func shopSale(id string) map[string]any {
	return map[string]any{"id": id, "max_per_buyer": 100, "waiting_room": map[string]any{"active_limit": 1_000_000, "access_ttl_s": 3600},
		"zones": []any{map[string]any{"id": "ga", "capacity": 1_000_000}}}
}

// createSales creates the bench's sales; a failure says what to check.
func createSales(c *client, defs ...map[string]any) error {
	for _, def := range defs {
		var ans struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		st, err := c.do("create_sale", "POST", "/v1/sales", c.admin, "", def, &ans)
		switch {
		case err != nil && st == 0:
			return fmt.Errorf("create bench sale %v: the server at %s cannot be reached (%v): is it running, and is --target right?", def["id"], c.hc.Addr, err)
		case st == 401 || st == 403:
			return fmt.Errorf("create bench sale %v: the server refused the admin token (%d %s): give the target's --admin-token", def["id"], st, ans.Error.Code)
		case err != nil:
			return fmt.Errorf("create bench sale %v: status %d: %v", def["id"], st, err)
		case st != 201:
			return fmt.Errorf("create bench sale %v: status %d %s: %s", def["id"], st, ans.Error.Code, ans.Error.Message)
		}
	}
	return nil
}

// joinMany joins n buyers (named prefix0, prefix1, ...) to a sale's line from
// conns workers, and returns their queue ids and how many failed.
func joinMany(c *client, conns int, sale, endpoint, prefix string, n int) ([]string, int) {
	ids := make([]string, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += conns {
				var t ticket
				st, err := c.do(endpoint, "POST", "/v1/sales/"+sale+"/queue", "", "", []byte(`{"buyer":"`+prefix+strconv.Itoa(i)+`"}`), &t)
				if err != nil || st != 200 {
					failed.Add(1)
					continue
				}
				ids[i] = t.QueueID
			}
		}()
	}
	wg.Wait()
	return ids, int(failed.Load())
}
