package bench

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

type ticket struct {
	QueueID     string `json:"queue_id"`
	State       string `json:"state"`
	Position    int64  `json:"position"`
	PollAfterS  int64  `json:"poll_after_s"`
	AccessToken string `json:"access_token"`
}

type holdAnswer struct {
	HoldID string   `json:"hold_id"`
	Seats  []string `json:"seats"`
	Error  *struct {
		Code string `json:"code"`
	} `json:"error"`
}

type saleState struct {
	Zones []struct {
		Free, Held, Sold int
	} `json:"zones"`
	Queue struct {
		State string `json:"state"`
	} `json:"queue"`
}

// buyerResult is what one simulated buyer did.
type buyerResult struct {
	arrival   int64 // rank of its join answer
	admitted  int64 // rank of its admission as observed; 0 if never
	seats     []string
	abandoned bool
	err       error
}

// runSale simulates a whole on-sale: a burst of buyers joins the line,
// polls as told, holds when admitted, and pays (some walk away, some are
// declined first). It reports throughput, latency and fairness, and checks
// the end state.
func runSale(o Options, c *client) error {
	sale := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	def := map[string]any{
		"id": sale, "name": "bench on-sale", "max_per_buyer": 4, "hold_ttl_s": o.HoldTTL,
		"waiting_room": map[string]any{"active_limit": o.ActiveLimit, "admit_per_s": o.AdmitPerS, "access_ttl_s": o.AccessTTL},
		"zones":        []any{map[string]any{"id": "ga", "capacity": o.Seats, "price_cents": 4500}},
	}
	if st, err := c.do("create_sale", "POST", "/v1/sales", c.admin, "", def, nil); err != nil || st != 201 {
		return fmt.Errorf("create bench sale: status %d, %v (is --admin-token right?)", st, err)
	}
	fmt.Fprintf(o.Out, "sale mode: %d buyers for %d seats, %d connections, active_limit %d, admit_per_s %d\n",
		o.Buyers, o.Seats, o.Conns, o.ActiveLimit, o.AdmitPerS)

	start := time.Now()
	deadline := start.Add(o.Timeout)
	var arrivals, admissions, holds, checkouts, soldOutAt atomic.Int64
	var over atomic.Bool
	results := make([]buyerResult, o.Buyers)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = buyer(o, c, sale, i, deadline, &over, &arrivals, &admissions, &holds, &checkouts)
		}(i)
	}
	// The monitor ends the sale when every seat is sold, and prints progress.
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for !over.Load() {
			<-t.C
			var s saleState
			if st, err := c.do("get_sale", "GET", "/v1/sales/"+sale, "", "", nil, &s); err == nil && st == 200 && len(s.Zones) == 1 {
				if s.Zones[0].Sold == o.Seats && soldOutAt.Load() == 0 {
					soldOutAt.Store(int64(time.Since(start)))
					over.Store(true)
				}
				if time.Since(last) >= time.Second {
					last = time.Now()
					fmt.Fprintf(o.Out, "    … %5.1fs  line %-9s admitted %6d  holds %6d  paid %6d  free %6d held %5d sold %6d\n",
						time.Since(start).Seconds(), s.Queue.State, admissions.Load(), holds.Load(), checkouts.Load(),
						s.Zones[0].Free, s.Zones[0].Held, s.Zones[0].Sold)
				}
			}
			if time.Now().After(deadline) {
				over.Store(true)
			}
		}
	}()
	wg.Wait()
	over.Store(true)
	<-monitorDone
	elapsed := time.Since(start)

	// End state: every seat sold at most once, and the counts add up.
	var s saleState
	if st, err := c.do("get_sale", "GET", "/v1/sales/"+sale, "", "", nil, &s); err != nil || st != 200 {
		return fmt.Errorf("read the end state: status %d, %v", st, err)
	}
	z := s.Zones[0]
	seen := make(map[string]bool)
	bought, dup, errs := 0, 0, 0
	var firstErr error
	for _, r := range results {
		if r.err != nil {
			errs++
			if firstErr == nil {
				firstErr = r.err
			}
		}
		for _, seat := range r.seats {
			if seen[seat] {
				dup++
			}
			seen[seat] = true
			bought++
		}
	}
	fmt.Fprintf(o.Out, "\nresults after %s\n", elapsed.Round(time.Millisecond))
	if d := soldOutAt.Load(); d > 0 {
		fmt.Fprintf(o.Out, "  time to sell out:  %s\n", time.Duration(d).Round(time.Millisecond))
	} else {
		fmt.Fprintf(o.Out, "  not sold out (free %d, held %d, sold %d)\n", z.Free, z.Held, z.Sold)
	}
	fmt.Fprintf(o.Out, "  admitted %d of %d buyers; holds %d (%.0f/s); checkouts %d (%.0f/s)\n",
		admissions.Load(), o.Buyers, holds.Load(), float64(holds.Load())/elapsed.Seconds(),
		checkouts.Load(), float64(checkouts.Load())/elapsed.Seconds())
	fmt.Fprintf(o.Out, "  fairness: Spearman correlation of arrival and admission order %.3f (1 = strictly first come, first served)\n", fairness(results))
	fmt.Fprintf(o.Out, "  latency per endpoint:\n")
	for _, ep := range c.lat.endpoints() {
		n, p50, p90, p99, mx := c.lat.quantiles(ep)
		fmt.Fprintf(o.Out, "    %-12s n=%-7d p50 %-10s p90 %-10s p99 %-10s max %s\n", ep, n, p50.Round(time.Microsecond), p90.Round(time.Microsecond), p99.Round(time.Microsecond), mx.Round(time.Microsecond))
	}
	ok := dup == 0 && z.Free+z.Held+z.Sold == o.Seats && bought == z.Sold
	fmt.Fprintf(o.Out, "  end state: free %d + held %d + sold %d = %d of %d; seats bought by buyers %d; sold twice %d → %s\n",
		z.Free, z.Held, z.Sold, z.Free+z.Held+z.Sold, o.Seats, bought, dup, map[bool]string{true: "OK", false: "WRONG"}[ok])
	if errs > 0 {
		fmt.Fprintf(o.Out, "  %d buyers met errors; first: %v\n", errs, firstErr)
	}
	if !ok {
		return fmt.Errorf("the end state does not add up: see above")
	}
	return nil
}

func buyer(o Options, c *client, sale string, i int, deadline time.Time, over *atomic.Bool,
	arrivals, admissions, holds, checkouts *atomic.Int64) (r buyerResult) {
	id := fmt.Sprintf("buyer-%d", i)
	var t ticket
	st, err := c.do("join", "POST", "/v1/sales/"+sale+"/queue", "", "", map[string]string{"buyer": id}, &t)
	if err != nil || st != 200 {
		r.err = fmt.Errorf("join: status %d, %v", st, err)
		return r
	}
	r.arrival = arrivals.Add(1)
	for t.State != "admitted" {
		if over.Load() || time.Now().After(deadline) || t.State == "expired" {
			return r
		}
		wait := min(time.Duration(t.PollAfterS)*time.Second, o.PollCap)
		// Jitter spreads the crowd's polls, as real clients' clocks do.
		time.Sleep(wait/2 + rand.N(wait/2+time.Millisecond))
		st, err := c.do("poll", "GET", "/v1/sales/"+sale+"/queue/"+t.QueueID, "", "", nil, &t)
		if err != nil || (st != 200 && st != 429) {
			r.err = fmt.Errorf("poll: status %d, %v", st, err)
			return r
		}
	}
	r.admitted = admissions.Add(1)
	qty := 1 + rand.IntN(4)
	var h holdAnswer
	st, err = c.do("hold", "POST", "/v1/sales/"+sale+"/holds", t.AccessToken, fmt.Sprintf("h-%d", i), map[string]any{"zone": "ga", "quantity": qty}, &h)
	if err != nil || (st != 201 && st != 409) {
		r.err = fmt.Errorf("hold: status %d, %v", st, err)
		return r
	}
	if st != 201 {
		// Nothing left for this buyer: a well-behaved front end gives the
		// admission back, so that the next in line may try.
		c.do("leave", "DELETE", "/v1/sales/"+sale+"/queue/"+t.QueueID, "", "", nil, nil)
		return r
	}
	holds.Add(1)
	if rand.Float64() < o.Abandon {
		r.abandoned = true // walks away: the hold expires
		return r
	}
	tokens := []string{"tok_visa"}
	if rand.Float64() < o.Decline {
		tokens = []string{"tok_decline", "tok_visa"}
	}
	for k, tok := range tokens {
		var ord struct {
			Seats []string `json:"seats"`
		}
		st, err = c.do("checkout", "POST", "/v1/holds/"+h.HoldID+"/checkout", t.AccessToken, fmt.Sprintf("c-%d-%d", i, k), map[string]any{"payment": map[string]string{"token": tok}}, &ord)
		if err != nil {
			r.err = fmt.Errorf("checkout: %v", err)
			return r
		}
		if st == 201 {
			checkouts.Add(1)
			r.seats = ord.Seats
			return r
		}
		if st != 402 {
			r.err = fmt.Errorf("checkout: status %d", st)
			return r
		}
	}
	return r
}

// fairness is the Spearman rank correlation of arrival and observed admission
// over the buyers admitted.
func fairness(rs []buyerResult) float64 {
	var adm []buyerResult
	for _, r := range rs {
		if r.admitted > 0 {
			adm = append(adm, r)
		}
	}
	n := len(adm)
	if n < 2 {
		return 1
	}
	byArr := append([]buyerResult(nil), adm...)
	sort.Slice(byArr, func(i, j int) bool { return byArr[i].arrival < byArr[j].arrival })
	rankArr := make(map[int64]int, n)
	for i, r := range byArr {
		rankArr[r.arrival] = i
	}
	sort.Slice(adm, func(i, j int) bool { return adm[i].admitted < adm[j].admitted })
	var d2 float64
	for i, r := range adm {
		d := float64(i - rankArr[r.arrival])
		d2 += d * d
	}
	fn := float64(n)
	return 1 - 6*d2/(fn*(fn*fn-1))
}
