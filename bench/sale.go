package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
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
}

type saleState struct {
	Zones []struct {
		Free, Held, Sold int
	} `json:"zones"`
	Queue struct {
		State         string  `json:"state"`
		Waiting       int64   `json:"waiting"`
		Admitted      int64   `json:"admitted"`
		AdmittedTotal int64   `json:"admitted_total"`
		AdmitPerS     float64 `json:"admit_per_s"`
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

// sample is one reading of the sale during the run, for the timeline.
type sample struct {
	T         float64 `json:"t_s"`
	Free      int     `json:"free"`
	Held      int     `json:"held"`
	Sold      int     `json:"sold"`
	Waiting   int64   `json:"waiting"`
	Admitted  int64   `json:"admitted_total"`
	Requests  int64   `json:"requests"`
	AdmitPerS float64 `json:"admit_per_s"`
	// P99Ms is each endpoint's p99 over the last second, on whole seconds.
	P99Ms map[string]float64 `json:"p99_ms,omitempty"`
}

// endpointReport is one endpoint's latency as the load generator measured
// it: from sending the request to reading the answer, without the buyer's
// own waits (poll intervals, think time).
type endpointReport struct {
	N      int     `json:"n"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

// saleReport is the sale mode's result; --json prints it as is.
type saleReport struct {
	Buyers         int     `json:"buyers"`
	Seats          int     `json:"seats"`
	SoldOut        bool    `json:"sold_out"`
	SoldOutS       float64 `json:"sold_out_s"`        // the last seat sold, from the opening
	FirstNoneFreeS float64 `json:"first_none_free_s"` // nothing left free for the first time
	// RefillGapMaxS is the longest a seat that came back (an expired hold)
	// stayed free before the line took it, as sampled every monitorEvery.
	RefillGapMaxS float64                   `json:"refill_gap_max_s"`
	ElapsedS      float64                   `json:"elapsed_s"`
	Admitted      int64                     `json:"admitted"`
	Holds         int64                     `json:"holds"`
	Checkouts     int64                     `json:"checkouts"`
	Requests      int64                     `json:"requests"`
	RequestsPerS  float64                   `json:"requests_per_s"`
	HoldsPerS     float64                   `json:"holds_per_s"`
	CheckoutsPerS float64                   `json:"checkouts_per_s"`
	Latency       map[string]endpointReport `json:"latency"`
	Errors        map[string]int            `json:"errors"` // "endpoint status": count
	BuyerErrors   int                       `json:"buyer_errors"`
	FirstError    string                    `json:"first_error,omitempty"`
	Fairness      float64                   `json:"fairness"`
	LoadGenCPUS   float64                   `json:"load_generator_cpu_s"`
	ServerCPUS    float64                   `json:"server_cpu_s"` // -1: the server runs in this process or elsewhere
	Free          int                       `json:"free"`
	Held          int                       `json:"held"`
	Sold          int                       `json:"sold"`
	Bought        int                       `json:"bought"`
	SoldTwice     int                       `json:"sold_twice"`
	Verdict       string                    `json:"verdict"` // "OK" or "WRONG"
	Timeline      []sample                  `json:"timeline"`
}

// monitorEvery is how often the monitor reads the sale: the resolution of
// the timeline and of the sold-out figures.
const monitorEvery = 100 * time.Millisecond

// runSale simulates a whole on-sale: a burst of buyers joins the line,
// polls as told, holds when admitted, and pays (some walk away, some are
// declined first). It reports throughput, latency and fairness, and checks
// the end state.
func runSale(o Options, c *client, srv *server) error {
	sale := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	def := map[string]any{
		"id": sale, "name": "bench on-sale", "max_per_buyer": 4, "hold_ttl_s": o.HoldTTL,
		"waiting_room": map[string]any{"active_limit": o.ActiveLimit, "admit_per_s": o.AdmitPerS, "access_ttl_s": o.AccessTTL},
		"zones":        []any{map[string]any{"id": "ga", "capacity": o.Seats, "price_cents": 4500}},
	}
	if err := createSales(c, def); err != nil {
		return err
	}
	if o.Target != "" {
		// A sale is never deleted: on a server buyers use, it stays listed.
		fmt.Fprintf(os.Stderr, "bench: created sale %s on %s; it stays in that server's list of sales (GET /v1/sales): rehearse on a server of its own, not the one buyers use\n", sale, o.Target)
	}
	progressOut := o.Out
	if o.JSON {
		progressOut = os.Stderr
	}
	fmt.Fprintf(progressOut, "sale mode: %d buyers for %d seats, %d connections, active_limit %d, admit_per_s %d, payment latency %s, %d payment slots\n",
		o.Buyers, o.Seats, o.Conns, o.ActiveLimit, o.AdmitPerS, o.Server.PaymentLatency, o.Server.PaymentSlots)

	cpu0, _ := cpuSeconds(0)
	srvCPU0, _ := cpuSeconds(srv.pid)
	// The monitor has a connection of its own: it must read the sale on
	// time even when every buyer's connection is busy.
	mon := newClient(srv.addr, srv.admin, 1)
	// Buyers who shop (hold, pay) have connections of their own, as each
	// buyer's browser does: in one shared pool they would queue behind the
	// crowd's joins and polls inside the load generator, a delay no real
	// buyer has.
	r := &saleRun{o: o, c: c, shop: c.sibling(o.Conns), mon: mon, sale: sale, over: make(chan struct{})}
	start := time.Now()
	r.deadline = start.Add(o.Timeout)
	results := make([]buyerResult, o.Buyers)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = r.buyer(i)
		}(i)
	}
	rep := &saleReport{Buyers: o.Buyers, Seats: o.Seats, ServerCPUS: -1}
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		r.monitor(start, rep, progressOut)
	}()
	wg.Wait()
	r.end()
	<-monitorDone
	elapsed := time.Since(start)
	// The last part of a second's latencies, so that a short run has a point.
	if n := len(rep.Timeline); n > 0 {
		rep.Timeline = append(rep.Timeline, rep.Timeline[n-1])
		last := &rep.Timeline[n]
		last.T, last.P99Ms = elapsed.Seconds(), c.lat.takeWindow()
	}
	cpu1, _ := cpuSeconds(0)
	rep.LoadGenCPUS = cpu1 - cpu0
	if srv.pid != 0 {
		srvCPU1, _ := cpuSeconds(srv.pid)
		rep.ServerCPUS = srvCPU1 - srvCPU0
	}

	// End state: every seat sold at most once, and the counts add up.
	var s saleState
	if st, err := c.do("get_sale", "GET", "/v1/sales/"+sale, "", "", nil, &s); err != nil || st != 200 || len(s.Zones) != 1 {
		return fmt.Errorf("read the end state: status %d, %v", st, err)
	}
	z := s.Zones[0]
	seen := make(map[string]bool)
	for _, br := range results {
		if br.err != nil {
			rep.BuyerErrors++
			if rep.FirstError == "" {
				rep.FirstError = br.err.Error()
			}
		}
		for _, seat := range br.seats {
			if seen[seat] {
				rep.SoldTwice++
			}
			seen[seat] = true
			rep.Bought++
		}
	}
	rep.ElapsedS = elapsed.Seconds()
	rep.Free, rep.Held, rep.Sold = z.Free, z.Held, z.Sold
	rep.Admitted, rep.Holds, rep.Checkouts = r.admissions.Load(), r.holds.Load(), r.checkouts.Load()
	rep.HoldsPerS = float64(rep.Holds) / elapsed.Seconds()
	rep.CheckoutsPerS = float64(rep.Checkouts) / elapsed.Seconds()
	rep.Fairness = fairness(results)
	rep.Errors = c.codes.snapshot()
	rep.Latency = make(map[string]endpointReport)
	for _, ep := range c.lat.endpoints() {
		q := c.lat.quantiles(ep)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		rep.Latency[ep] = endpointReport{N: q.N, P50Ms: ms(q.P50), P90Ms: ms(q.P90), P99Ms: ms(q.P99), P999Ms: ms(q.P999), MaxMs: ms(q.Max)}
		rep.Requests += int64(q.N)
	}
	rep.RequestsPerS = float64(rep.Requests) / elapsed.Seconds()
	ok := rep.SoldTwice == 0 && z.Free+z.Held+z.Sold == o.Seats && rep.Bought == z.Sold
	rep.Verdict = map[bool]string{true: "OK", false: "WRONG"}[ok]
	if o.HTML != "" {
		if err := writeHTML(o.HTML, o, rep); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
		fmt.Fprintf(progressOut, "  report with charts: %s\n", o.HTML)
	}
	if o.JSON {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.print(o)
	}
	if !ok {
		return fmt.Errorf("the end state does not add up: see the report")
	}
	return nil
}

// saleRun is the state the buyers and the monitor share.
type saleRun struct {
	o        Options
	c        *client
	shop     *client // holds, checkouts and leaves of admitted buyers
	mon      *client // the monitor's
	sale     string
	deadline time.Time
	over     chan struct{} // closed when the sale is sold out or the time is up
	overOnce sync.Once

	arrivals, admissions, holds, checkouts atomic.Int64
}

func (r *saleRun) end() { r.overOnce.Do(func() { close(r.over) }) }

// wait sleeps d, or less if the run ends; it reports whether to go on.
func (r *saleRun) wait(d time.Duration) bool {
	if time.Now().Add(d).After(r.deadline) {
		d = time.Until(r.deadline)
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-r.over:
		return false
	case <-t.C:
		return time.Now().Before(r.deadline)
	}
}

// call sends a request and, on 429 or 503, waits as Retry-After says and
// sends it again, as a real front end does.
func (r *saleRun) call(endpoint, method, path, token, idem string, body, out any) (int, error) {
	c := r.c
	if endpoint == "hold" || endpoint == "checkout" {
		c = r.shop
	}
	for {
		st, err := c.do(endpoint, method, path, token, idem, body, out)
		if err != nil || (st != 429 && st != 503) {
			return st, err
		}
		if !r.wait(time.Duration(c.retryAfter.Load())) {
			return st, nil
		}
	}
}

func (r *saleRun) monitor(start time.Time, rep *saleReport, out interface{ Write([]byte) (int, error) }) {
	t := time.NewTicker(monitorEvery)
	defer t.Stop()
	lastPrint := time.Now()
	var freeSince time.Time // a seat came back after none was free
	lastWindow := time.Now()
	for {
		select {
		case <-r.over:
			return
		case <-t.C:
		}
		now := time.Now()
		if now.After(r.deadline) {
			r.end()
			return
		}
		var s saleState
		st, err := r.mon.do("get_sale", "GET", "/v1/sales/"+r.sale, "", "", nil, &s)
		if err != nil || st != 200 || len(s.Zones) != 1 {
			continue
		}
		z := s.Zones[0]
		el := now.Sub(start).Seconds()
		var reqs int64
		for _, ep := range r.c.lat.endpoints() {
			reqs += int64(r.c.lat.count(ep))
		}
		smp := sample{T: el, Free: z.Free, Held: z.Held, Sold: z.Sold,
			Waiting: s.Queue.Waiting, Admitted: s.Queue.AdmittedTotal, Requests: reqs, AdmitPerS: s.Queue.AdmitPerS}
		if now.Sub(lastWindow) >= time.Second {
			lastWindow = now
			smp.P99Ms = r.c.lat.takeWindow()
		}
		rep.Timeline = append(rep.Timeline, smp)
		switch {
		case z.Free == 0 && rep.FirstNoneFreeS == 0:
			rep.FirstNoneFreeS = el
		case z.Free == 0 && !freeSince.IsZero():
			rep.RefillGapMaxS = max(rep.RefillGapMaxS, now.Sub(freeSince).Seconds())
			freeSince = time.Time{}
		case z.Free > 0 && rep.FirstNoneFreeS > 0 && freeSince.IsZero():
			freeSince = now
		}
		if z.Sold == r.o.Seats {
			rep.SoldOut, rep.SoldOutS = true, el
			r.end()
		}
		if now.Sub(lastPrint) >= time.Second || rep.SoldOut {
			lastPrint = now
			fmt.Fprintf(out, "    … %5.1fs  line %-9s waiting %6d  admitted %6d (%5.0f/s in force)  holds %6d  paid %6d  free %6d held %5d sold %6d\n",
				el, s.Queue.State, s.Queue.Waiting, s.Queue.AdmittedTotal, s.Queue.AdmitPerS, r.holds.Load(), r.checkouts.Load(), z.Free, z.Held, z.Sold)
		}
	}
}

// Request bodies that do not change are made once.
var (
	checkoutVisa    = []byte(`{"payment":{"token":"tok_visa"}}`)
	checkoutDecline = []byte(`{"payment":{"token":"tok_decline"}}`)
)

func (r *saleRun) buyer(i int) (res buyerResult) {
	o, sale := r.o, r.sale
	id := strconv.Itoa(i)
	var t ticket
	st, err := r.call("join", "POST", "/v1/sales/"+sale+"/queue", "", "", []byte(`{"buyer":"buyer-`+id+`"}`), &t)
	if err != nil || st != 200 {
		if st == 429 || st == 503 {
			return res // out of time while the server pushed back
		}
		res.err = fmt.Errorf("join: status %d, %v", st, err)
		return res
	}
	res.arrival = r.arrivals.Add(1)
	if o.WaitStream && t.State != "admitted" {
		var err error
		if t, err = r.awaitStream(i, t); err != nil {
			res.err = err
			return res
		}
	}
	for t.State != "admitted" {
		if t.State == "expired" {
			return res
		}
		wait := time.Duration(max(t.PollAfterS, 1)) * time.Second
		if o.PollCap > 0 {
			wait = min(wait, o.PollCap)
		}
		// Clocks and networks spread a real crowd's polls by a little.
		wait += rand.N(wait/10 + time.Millisecond)
		if !r.wait(wait) {
			return res
		}
		st, err := r.call("poll", "GET", "/v1/sales/"+sale+"/queue/"+t.QueueID, "", "", nil, &t)
		if err != nil || st != 200 {
			if st == 429 || st == 503 {
				return res
			}
			res.err = fmt.Errorf("poll: status %d, %v", st, err)
			return res
		}
	}
	res.admitted = r.admissions.Add(1)
	qty := 1 + rand.IntN(4)
	var h holdAnswer
	st, err = r.call("hold", "POST", "/v1/sales/"+sale+"/holds", t.AccessToken, "h-"+id, []byte(`{"zone":"ga","quantity":`+strconv.Itoa(qty)+`}`), &h)
	if err != nil || (st != 201 && st != 409) {
		if st == 503 {
			return res
		}
		res.err = fmt.Errorf("hold: status %d, %v", st, err)
		return res
	}
	if st != 201 {
		// Nothing left for this buyer: a well-behaved front end gives the
		// admission back, so that the next in line may try.
		r.shop.do("leave", "DELETE", "/v1/sales/"+sale+"/queue/"+t.QueueID, "", "", nil, nil)
		return res
	}
	r.holds.Add(1)
	if rand.Float64() < o.Abandon {
		res.abandoned = true // walks away: the hold expires
		return res
	}
	bodies := [][]byte{checkoutVisa}
	if rand.Float64() < o.Decline {
		bodies = [][]byte{checkoutDecline, checkoutVisa}
	}
	for k, body := range bodies {
		var ord struct {
			Seats []string `json:"seats"`
		}
		st, err = r.call("checkout", "POST", "/v1/holds/"+h.HoldID+"/checkout", t.AccessToken, "c-"+id+"-"+strconv.Itoa(k), body, &ord)
		if err != nil {
			res.err = fmt.Errorf("checkout: %v", err)
			return res
		}
		if st == 201 {
			r.checkouts.Add(1)
			res.seats = ord.Seats
			return res
		}
		if st != 402 {
			res.err = fmt.Errorf("checkout: status %d", st)
			return res
		}
	}
	return res
}

// awaitStream waits for the buyer's admission on the event stream, as the
// buyer page does, instead of polling: it returns the ticket as the stream
// last told it (admitted, or what it was when the run ended).
func (r *saleRun) awaitStream(i int, t ticket) (ticket, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1+byte(i/streamsPerAddress/250), 1+byte(i/streamsPerAddress%250))}}
	if r.o.Target != "" {
		d.LocalAddr = nil
	}
	conn, err := d.Dial("tcp", r.c.hc.Addr)
	if err != nil {
		return t, fmt.Errorf("open the event stream: %v", err)
	}
	defer conn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-r.over:
			conn.Close() // ends the read below
		case <-stop:
		}
	}()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "GET /v1/sales/%s/queue/%s/events HTTP/1.1\r\nHost: bench\r\n\r\n", r.sale, t.QueueID); err != nil {
		return t, fmt.Errorf("open the event stream: %v", err)
	}
	br := bufio.NewReaderSize(conn, 1024)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			r.c.lat.add("stream_wait", time.Since(start))
			return t, nil // the run ended, or the server closed the stream
		}
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(data), &t); err != nil {
			return t, fmt.Errorf("event stream: %v", err)
		}
		if t.State == "admitted" || t.State == "expired" {
			r.c.lat.add("stream_wait", time.Since(start))
			return t, nil
		}
	}
}

func (rep *saleReport) print(o Options) {
	w := o.Out
	fmt.Fprintf(w, "\nresults after %.1fs\n", rep.ElapsedS)
	if rep.SoldOut {
		fmt.Fprintf(w, "  time to sell out:  %.1fs from the opening (nothing left free first at %.1fs; longest a returned seat stayed free %.1fs)\n",
			rep.SoldOutS, rep.FirstNoneFreeS, rep.RefillGapMaxS)
	} else {
		fmt.Fprintf(w, "  not sold out (free %d, held %d, sold %d)\n", rep.Free, rep.Held, rep.Sold)
	}
	fmt.Fprintf(w, "  admitted %d of %d buyers; holds %d (%.0f/s); checkouts %d (%.0f/s); requests %d (%.0f/s)\n",
		rep.Admitted, rep.Buyers, rep.Holds, rep.HoldsPerS, rep.Checkouts, rep.CheckoutsPerS, rep.Requests, rep.RequestsPerS)
	if rep.ServerCPUS >= 0 {
		fmt.Fprintf(w, "  CPU: server %.1fs, load generator %.1fs (%.1f cores and %.1f cores on average)\n",
			rep.ServerCPUS, rep.LoadGenCPUS, rep.ServerCPUS/rep.ElapsedS, rep.LoadGenCPUS/rep.ElapsedS)
	} else {
		fmt.Fprintf(w, "  CPU: load generator%s %.1fs (%.1f cores on average)\n",
			map[bool]string{true: "", false: " and server together"}[o.Target != ""], rep.LoadGenCPUS, rep.LoadGenCPUS/rep.ElapsedS)
	}
	fmt.Fprintf(w, "  fairness: Spearman correlation of arrival and admission order %.3f (1 = strictly first come, first served)\n", rep.Fairness)
	fmt.Fprintf(w, "  latency per endpoint (sent to answered; the buyers' own waits left out):\n")
	eps := make([]string, 0, len(rep.Latency))
	for ep := range rep.Latency {
		eps = append(eps, ep)
	}
	sort.Strings(eps)
	for _, ep := range eps {
		q := rep.Latency[ep]
		fmt.Fprintf(w, "    %-12s n=%-8d p50 %8.1fms  p90 %8.1fms  p99 %8.1fms  p99.9 %8.1fms  max %8.1fms\n", ep, q.N, q.P50Ms, q.P90Ms, q.P99Ms, q.P999Ms, q.MaxMs)
	}
	if len(rep.Errors) > 0 {
		keys := make([]string, 0, len(rep.Errors))
		for k := range rep.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "  answers other than success:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s ×%d", k, rep.Errors[k])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  end state: free %d + held %d + sold %d = %d of %d; seats bought by buyers %d; sold twice %d → %s\n",
		rep.Free, rep.Held, rep.Sold, rep.Free+rep.Held+rep.Sold, rep.Seats, rep.Bought, rep.SoldTwice, rep.Verdict)
	if rep.BuyerErrors > 0 {
		fmt.Fprintf(w, "  %d buyers met errors; first: %s\n", rep.BuyerErrors, rep.FirstError)
	}
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
