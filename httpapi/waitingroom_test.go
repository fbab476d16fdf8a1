package httpapi

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"onsale/actors"
)

// The waiting room over HTTP: order of admission, one place per buyer, the
// opening draw, sold out and back, the admission rate, access tokens, rate
// limits and the event stream.

// lineSpec is a sale whose line admits one shopper at a time.
func lineSpec(id string) saleSpec {
	return newSaleSpec(id).room("active_limit", 1).room("admit_per_s", 100)
}

// TestQueueFIFO: after the opening the line is first come, first served, and
// a buyer has one place however often they join.
func TestQueueFIFO(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, lineSpec("s").room("access_ttl_s", 120))

	first := ts.join(t, "s", "b0")
	requireEqual(t, first.State, "admitted")
	var line []ticket
	for i := 1; i <= 5; i++ {
		k := ts.join(t, "s", fmt.Sprintf("b%d", i))
		requireEqual(t, k.State, "waiting", "b%d waits", i)
		requireEqual(t, k.pos(), int64(i), "b%d's position", i)
		requireTrue(t, k.ETAS != nil && *k.ETAS >= 0, "eta_s is a number while waiting: %+v", k)
		requireTrue(t, k.PollAfterS != nil && *k.PollAfterS >= 1, "poll_after_s: %+v", k)
		requireTrue(t, k.AccessToken == "", "no token while waiting")
		line = append(line, k)
	}
	// One place per buyer: joining again keeps the place.
	again := ts.join(t, "s", "b3")
	requireEqual(t, again.QueueID, line[2].QueueID)
	requireEqual(t, again.pos(), int64(3))
	requireEqual(t, ts.sale(t, "s").Queue.Waiting, int64(5))

	// Free the one slot in turn, three ways API.md names: giving up the
	// admission, completing a checkout, letting the access expire.
	current := first
	for i, k := range line {
		switch i % 3 {
		case 0:
			requireStatus(t, ts.do(t, "DELETE", "/v1/sales/s/queue/"+current.QueueID, nil), 200, "leave")
		case 1:
			h := ts.mustHold(t, "s", current.AccessToken, map[string]any{"zone": "ga", "quantity": 1})
			requireStatus(t, ts.checkout(t, h.HoldID, current.AccessToken, "tok_visa", ""), 201)
		case 2:
			ts.clock.Advance(121 * time.Second)
		}
		eventually(t, 5*time.Second, fmt.Sprintf("b%d admitted", i+1), func() (bool, string) {
			got := ts.ticket(t, "s", k.QueueID)
			if got.State == "admitted" {
				current = got
				return true, ""
			}
			return false, fmt.Sprintf("%+v", got)
		})
		// Everyone behind is still waiting, one place further up.
		for j, later := range line[i+1:] {
			got := ts.ticket(t, "s", later.QueueID)
			requireEqual(t, got.State, "waiting", "b%d waits while b%d shops", i+j+2, i+1)
			requireEqual(t, got.pos(), int64(j+1), "b%d's position", i+j+2)
		}
	}
	requireEqual(t, ts.sale(t, "s").Queue.AdmittedTotal, int64(6))
}

// drawOrder recomputes the opening lottery from its published description
// (README, actors.DrawOrder's comment): sort the ids by bytes; for i from n-1
// down to 1, j = first 8 bytes of SHA-256(seed || uint64be(i)) mod (i+1),
// swap i and j.
func drawOrder(seed []byte, ids []string) []string {
	order := append([]string(nil), ids...)
	sort.Strings(order)
	for i := len(order) - 1; i > 0; i-- {
		msg := make([]byte, 0, len(seed)+8)
		msg = append(msg, seed...)
		msg = binary.BigEndian.AppendUint64(msg, uint64(i))
		sum := sha256.Sum256(msg)
		j := binary.BigEndian.Uint64(sum[:8]) % uint64(i+1)
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// TestDraw: before the opening the draw shows only the seed's hash and the
// pre-queue has no positions; after it, the seed and the order, which anyone
// can recompute, and the line follows that order ahead of later arrivals.
func TestDraw(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	opens := ts.clock.Now().Add(time.Hour)
	ts.createSale(t, lineSpec("s").with("opens_at", opens.Format(time.RFC3339Nano)))

	const n = 12
	ids := map[string]string{} // queue id -> buyer
	var qids []string
	for i := range n {
		k := ts.join(t, "s", fmt.Sprintf("early-%d", i))
		requireEqual(t, k.State, "waiting")
		requireTrue(t, k.Position == nil, "no position before the opening: %+v", k)
		requireTrue(t, k.OpensInS != nil && *k.OpensInS > 3500 && *k.OpensInS <= 3600, "opens_in_s: %+v", k)
		ids[k.QueueID] = fmt.Sprintf("early-%d", i)
		qids = append(qids, k.QueueID)
	}
	requireEqual(t, ts.sale(t, "s").Queue.State, "pre_queue")
	requireEqual(t, ts.join(t, "s", "early-3").QueueID, qids[3], "one place per buyer in the pre-queue too")

	before := requireStatus(t, ts.do(t, "GET", "/v1/sales/s/draw", nil), 200)
	hash, _ := before["seed_sha256"].(string)
	requireTrue(t, len(hash) == 64 && isHex(hash), "seed_sha256 %q", hash)
	_, hasSeed := before["seed"]
	_, hasOrder := before["order"]
	requireTrue(t, !hasSeed && !hasOrder, "the seed stays secret before the opening: %v", before)

	ts.clock.Advance(time.Hour)
	var draw struct {
		SeedSHA256 string   `json:"seed_sha256"`
		Seed       string   `json:"seed"`
		Order      []string `json:"order"`
	}
	eventually(t, 5*time.Second, "the draw", func() (bool, string) {
		r := ts.do(t, "GET", "/v1/sales/s/draw", nil)
		r.decode(t, &draw)
		return draw.Seed != "", r.String()
	})
	late := ts.join(t, "s", "late")

	requireEqual(t, draw.SeedSHA256, hash, "the hash does not change")
	seed, err := hex.DecodeString(draw.Seed)
	requireNoErr(t, err, "seed is hex")
	requireEqual(t, len(seed), 32, "the seed is 32 bytes")
	sum := sha256.Sum256(seed)
	requireEqual(t, hex.EncodeToString(sum[:]), hash, "sha256(seed) == seed_sha256")
	requireEqual(t, len(draw.Order), n)
	requireEqual(t, draw.Order, drawOrder(seed, qids), "the order recomputed from the seed")
	shuffled := false
	for i := range qids {
		shuffled = shuffled || draw.Order[i] != qids[i]
	}
	requireTrue(t, shuffled, "the draw changed the join order (12! orders; the join order is 1 of them)")

	// The line follows the drawn order: the first is admitted, the rest wait
	// in order, and the late joiner is behind all of them.
	eventually(t, 5*time.Second, "first of the draw admitted", func() (bool, string) {
		k := ts.ticket(t, "s", draw.Order[0])
		return k.State == "admitted", fmt.Sprintf("%+v", k)
	})
	for i, q := range draw.Order[1:] {
		k := ts.ticket(t, "s", q)
		requireEqual(t, k.State, "waiting")
		requireEqual(t, k.pos(), int64(i+1), "%s (drawn %d) position", ids[q], i+2)
	}
	k := ts.ticket(t, "s", late.QueueID)
	requireEqual(t, k.pos(), int64(n), "the late arrival is behind the pre-queue")
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// TestSoldOutAndBack: waiting buyers see sold_out while every seat is sold,
// and are waiting again when an order is cancelled.
func TestSoldOutAndBack(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, lineSpec("s").with("max_per_buyer", 1).with("zones", []any{
		map[string]any{"id": "ga", "price_cents": 100, "capacity": 1},
	}))
	tokA := ts.admit(t, "s", "a")
	b, c := ts.join(t, "s", "b"), ts.join(t, "s", "c")
	requireEqual(t, b.State, "waiting")
	requireEqual(t, c.State, "waiting")

	h := ts.mustHold(t, "s", tokA, map[string]any{"zone": "ga", "quantity": 1})
	requireEqual(t, ts.ticket(t, "s", b.QueueID).State, "waiting", "held is not sold out")
	o := ts.checkout(t, h.HoldID, tokA, "tok_visa", "")
	requireStatus(t, o, 201)

	eventually(t, 5*time.Second, "sold out", func() (bool, string) {
		s := ts.sale(t, "s")
		return s.Queue.State == "sold_out" && s.Queue.AdmitPerS == 0, fmt.Sprintf("%+v", s.Queue)
	})
	for _, q := range []ticket{b, c} {
		k := ts.ticket(t, "s", q.QueueID)
		requireEqual(t, k.State, "sold_out")
		requireTrue(t, k.pos() > 0, "waiting buyers keep their place: %+v", k)
	}
	requireEqual(t, ts.ticket(t, "s", b.QueueID).pos(), int64(1))
	requireEqual(t, ts.ticket(t, "s", c.QueueID).pos(), int64(2))

	requireStatus(t, ts.do(t, "POST", "/v1/orders/"+o.object(t)["order_id"].(string)+"/cancel", nil, adminHdr), 200)
	eventually(t, 5*time.Second, "the line moves again", func() (bool, string) {
		k := ts.ticket(t, "s", b.QueueID)
		return k.State == "admitted", fmt.Sprintf("%+v", k)
	})
	k := ts.ticket(t, "s", c.QueueID)
	requireEqual(t, k.State, "waiting", "back to waiting")
	requireEqual(t, k.pos(), int64(1))
	requireTrue(t, ts.sale(t, "s").Queue.State != "sold_out", "no longer sold out")
}

// TestLineMovesWhenHoldExpires: in automatic mode the line admits only as
// many buyers looking for seats as the free seats serve; a buyer who holds
// stops looking, and a held seat coming back on expiry lets the next buyer in.
func TestLineMovesWhenHoldExpires(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s").with("hold_ttl_s", 60).room("admit_per_s", 0).room("active_limit", 10).
		with("zones", []any{map[string]any{"id": "ga", "price_cents": 100, "capacity": 1}}))
	a, b := ts.join(t, "s", "a"), ts.join(t, "s", "b")
	requireEqual(t, a.State, "admitted")
	requireEqual(t, b.State, "waiting", "one buyer looking for the one free seat is the cap")

	h := ts.mustHold(t, "s", a.AccessToken, map[string]any{"zone": "ga", "quantity": 1})
	requireStatus(t, ts.do(t, "DELETE", "/v1/sales/s/queue/"+a.QueueID, nil), 200, "a leaves, keeping the hold")
	eventually(t, 5*time.Second, "the room sees a leave and the seat held", func() (bool, string) {
		s := ts.sale(t, "s")
		return s.Queue.Admitted == 0 && s.Zones[0].Held == 1, fmt.Sprintf("%+v %+v", s.Queue, s.Zones)
	})
	k := ts.ticket(t, "s", b.QueueID)
	requireEqual(t, k.State, "waiting", "nothing free: b still waits, not sold out: %+v", k)

	ts.clock.Advance(61 * time.Second)
	eventually(t, 5*time.Second, "b admitted once the hold expired", func() (bool, string) {
		k := ts.ticket(t, "s", b.QueueID)
		return k.State == "admitted", fmt.Sprintf("%+v", k)
	})
	requireEqual(t, ts.do(t, "GET", "/v1/holds/"+h.HoldID, nil, adminHdr).object(t)["state"], any("expired"))
}

// TestAdmissionRate: with a long line, admissions follow admit_per_s within
// 10 %, measured over real time from the sale's admitted_total.
func TestAdmissionRate(t *testing.T) {
	const (
		rate   = 20
		buyers = 200 // more than the measurement admits
		window = 3 * time.Second
	)
	ts := startServer(t)
	opens := ts.clock.Now().Add(time.Hour)
	ts.createSale(t, newSaleSpec("s").with("opens_at", opens.Format(time.RFC3339Nano)).
		room("admit_per_s", rate).room("active_limit", 100_000))
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < buyers; i += 16 {
				r, err := ts.try("POST", "/v1/sales/s/queue", map[string]string{"buyer": fmt.Sprintf("b%d", i)})
				if err != nil || r.Status != 200 {
					errs <- fmt.Errorf("join b%d: %v %s", i, err, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	requireEqual(t, ts.sale(t, "s").Queue.Waiting, int64(buyers))

	ts.clock.Advance(time.Hour)
	// Measure between two changes of admitted_total, so that both ends sit
	// on an admission tick.
	total := func() int64 { return ts.sale(t, "s").Queue.AdmittedTotal }
	next := func(after int64) (int64, time.Time) {
		var n int64
		eventually(t, 5*time.Second, "admitted_total moves", func() (bool, string) {
			n = total()
			return n > after, strconv.FormatInt(n, 10)
		})
		return n, time.Now()
	}
	n0, t0 := next(total())
	for time.Since(t0) < window {
		time.Sleep(50 * time.Millisecond) // the measurement window is real time by design
	}
	n1, t1 := next(total())
	got := float64(n1-n0) / t1.Sub(t0).Seconds()
	t.Logf("admitted %d in %s: %.1f/s (admit_per_s %d)", n1-n0, t1.Sub(t0).Round(time.Millisecond), got, rate)
	requireTrue(t, got >= 0.9*rate && got <= 1.1*rate, "admission rate %.2f/s within 10%% of %d/s", got, rate)
	s := ts.sale(t, "s")
	requireEqual(t, s.Queue.State, "queueing")
	requireEqual(t, s.Queue.AdmitPerS, float64(rate))
	requireTrue(t, s.Queue.Waiting > 0, "the line was long enough: %+v", s.Queue)
}

// TestAccessTokens: an expired token, another sale's token and a token of a
// buyer who was never admitted are refused with 403 on every inventory
// change.
func TestAccessTokens(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s").room("access_ttl_s", 60))
	ts.createSale(t, newSaleSpec("t"))
	tokS := ts.admit(t, "s", "b1")
	tokT := ts.admit(t, "t", "b1")
	h := ts.mustHold(t, "s", tokS, map[string]any{"zone": "ga", "quantity": 1})

	// Other sale's token, on holds and on checkout.
	requireError(t, ts.hold(t, "t", tokS, map[string]any{"zone": "ga", "quantity": 1}), 403, actors.CodeNotAdmitted)
	requireError(t, ts.checkout(t, h.HoldID, tokT, "tok_visa", ""), 403, actors.CodeNotAdmitted)
	requireError(t, ts.do(t, "GET", "/v1/holds/"+h.HoldID, nil, bearerHdr(tokT)), 404, actors.CodeNotFound)

	// A token signed with another key.
	other := New(Config{SigningKey: []byte("another key")})
	forged := other.sign.Load().sign(accessClaims{Sale: "s", Buyer: "b1", ID: "q_x", Expires: ts.clock.Now().Add(time.Hour).UnixMilli()})
	requireError(t, ts.hold(t, "s", forged, map[string]any{"zone": "ga", "quantity": 1}), 403, actors.CodeNotAdmitted, "other key")

	// Expired: past access_expires_at the token opens nothing.
	ts.clock.Advance(61 * time.Second)
	requireError(t, ts.hold(t, "s", tokS, map[string]any{"zone": "ga", "quantity": 1}), 403, actors.CodeNotAdmitted, "expired token")
	requireError(t, ts.checkout(t, h.HoldID, tokS, "tok_visa", ""), 403, actors.CodeNotAdmitted, "expired token, checkout")
	requireStatus(t, ts.hold(t, "t", tokT, map[string]any{"zone": "ga", "quantity": 1}), 201, "sale t's access lasts 900 s")
	k := ts.join(t, "s", "b1")
	requireEqual(t, k.State, "admitted", "after expiry, joining again gives a new admission")
	requireStatus(t, ts.hold(t, "s", k.AccessToken, map[string]any{"zone": "ga", "quantity": 1}), 201, "the new token works")
}

// TestRateLimited: a buyer over the per-buyer rate gets 429 rate_limited
// with Retry-After, and keeps their place in line.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withBuyerRate(2))
	ts.createSale(t, lineSpec("s"))
	ts.admit(t, "s", "first")
	k := ts.join(t, "s", "second")
	requireEqual(t, k.pos(), int64(1))

	var limited response
	for range 20 {
		r := ts.do(t, "GET", "/v1/sales/s/queue/"+k.QueueID, nil)
		if r.Status == 429 {
			limited = r
			break
		}
		requireStatus(t, r, 200)
	}
	requireError(t, limited, 429, "rate_limited", "20 polls at once exceed 2/s")
	ra, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	requireTrue(t, err == nil && ra >= 1, "Retry-After is whole seconds >= 1: %q", limited.Header.Get("Retry-After"))

	// The place is kept: after Retry-After the buyer is where they were.
	ts.clock.Advance(time.Duration(ra) * time.Second)
	got := ts.ticket(t, "s", k.QueueID)
	requireEqual(t, got.State, "waiting")
	requireEqual(t, got.pos(), int64(1), "the place in line is kept")
	requireEqual(t, ts.join(t, "s", "second").QueueID, k.QueueID, "same place on joining again")

	// An admitted buyer over the rate on holds.
	tok := ts.admit(t, "s", "first")
	codes := map[int]int{}
	for range 10 {
		codes[ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1}).Status]++
	}
	requireTrue(t, codes[429] > 0, "holds over the rate are limited: %v", codes)
	requireTrue(t, codes[201]+codes[422] > 0, "some went through: %v", codes)
	requireEqual(t, ts.ticket(t, "s", k.QueueID).pos(), int64(1), "still first in line")
}

// TestAddressRateLimited: requests without a buyer identity are limited per
// client address.
func TestAddressRateLimited(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withAddressRate(3))
	ts.createSale(t, newSaleSpec("s"))
	var limited response
	for range 30 {
		r := ts.do(t, "GET", "/v1/sales/s/availability", nil)
		if r.Status == 429 {
			limited = r
			break
		}
		requireStatus(t, r, 200)
	}
	requireError(t, limited, 429, "rate_limited")
	requireTrue(t, limited.Header.Get("Retry-After") != "", "Retry-After")
	ts.clock.Advance(10 * time.Second)
	requireStatus(t, ts.do(t, "GET", "/v1/sales/s/availability", nil), 200, "allowed again")

	// A bearer that is no access token is no identity: still per address.
	ts.clock.Advance(10 * time.Second)
	codes := map[int]int{}
	for range 30 {
		codes[ts.do(t, "GET", "/v1/sales/s/availability", nil, bearerHdr("anything")).Status]++
	}
	requireTrue(t, codes[429] > 0, "a made-up bearer does not skip the address limit: %v", codes)

	// A buyer with an access token is limited per buyer, not per address.
	ts.clock.Advance(10 * time.Second)
	tok := ts.admit(t, "s", "b1")
	for i := range 30 {
		requireStatus(t, ts.do(t, "GET", "/v1/sales/s/availability", nil, bearerHdr(tok)), 200, "request %d with a token", i)
	}
}

// TestQueueEvents: the event stream sends the current state on connect,
// then each change as "data: {...}\n\n", and closes after admitted.
func TestQueueEvents(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, lineSpec("s"))
	a := ts.join(t, "s", "a")
	b := ts.join(t, "s", "b")
	x := ts.join(t, "s", "x")
	requireEqual(t, x.pos(), int64(2))

	requireError(t, ts.do(t, "GET", "/v1/sales/s/queue/q_nope/events", nil), 404, actors.CodeNotFound)

	stream, err := ts.c.Get(ts.base + "/v1/sales/s/queue/" + x.QueueID + "/events")
	requireNoErr(t, err)
	defer stream.Body.Close()
	requireEqual(t, stream.StatusCode, 200)
	requireTrue(t, strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream"), "SSE: %v", stream.Header)
	br := bufio.NewReader(stream.Body)
	event := func() ticket {
		var k ticket
		requireNoErr(t, json.Unmarshal([]byte(readEvent(t, br)), &k))
		requireEqual(t, k.QueueID, x.QueueID)
		return k
	}
	k := event()
	requireEqual(t, k.State, "waiting", "the current state on connect")
	requireEqual(t, k.pos(), int64(2))

	requireStatus(t, ts.do(t, "DELETE", "/v1/sales/s/queue/"+a.QueueID, nil), 200)
	k = event()
	requireEqual(t, k.State, "waiting", "a change: one place up")
	requireEqual(t, k.pos(), int64(1))

	requireStatus(t, ts.do(t, "DELETE", "/v1/sales/s/queue/"+b.QueueID, nil), 200)
	k = event()
	requireEqual(t, k.State, "admitted")
	requireTrue(t, k.AccessToken != "", "the admission carries the token")
	rest, err := io.ReadAll(br)
	requireNoErr(t, err, "the stream closes after admitted")
	requireEqual(t, strings.Trim(string(rest), "\n"), "", "nothing after the admission")
	requireStatus(t, ts.hold(t, "s", k.AccessToken, map[string]any{"zone": "ga", "quantity": 1}), 201, "the streamed token works")

	// An admitted ticket's stream: the state, then the end.
	stream2, err := ts.c.Get(ts.base + "/v1/sales/s/queue/" + x.QueueID + "/events")
	requireNoErr(t, err)
	defer stream2.Body.Close()
	br = bufio.NewReader(stream2.Body)
	requireEqual(t, event().State, "admitted")
	_, err = io.ReadAll(br)
	requireNoErr(t, err)

	req, _ := http.NewRequest("POST", ts.base+"/v1/sales/s/queue/"+x.QueueID+"/events", nil)
	r, err := ts.c.Do(req)
	requireNoErr(t, err)
	r.Body.Close()
	requireEqual(t, r.StatusCode, 405)
}

// TestMadeUpQueueIDsLimited: polls by queue id skip the address limit, but
// an id the line does not know costs its address a token, so made-up ids
// cannot flood the line; real ids from the same address keep polling.
func TestMadeUpQueueIDsLimited(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withAddressRate(3))
	ts.createSale(t, newSaleSpec("s"))
	codes := map[int]int{}
	for i := range 40 {
		fake := fmt.Sprintf("q_%022d", i)
		codes[ts.do(t, "GET", "/v1/sales/s/queue/"+fake, nil).Status]++
	}
	requireTrue(t, codes[429] > 0 && codes[404] > 0, "made-up ids: %v", codes)
	codes = map[int]int{}
	for i := range 20 {
		fake := fmt.Sprintf("q_%022d", 100+i)
		codes[ts.do(t, "GET", "/v1/sales/s/queue/"+fake+"/events", nil).Status]++
	}
	requireTrue(t, codes[429] > 0, "made-up ids on the event stream: %v", codes)
}
