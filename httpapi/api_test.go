package httpapi

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"onsale/actors"
)

// Every endpoint of API.md with its success answer and each of its error
// codes, over real TCP.

func TestSalesCreateAndGet(t *testing.T) {
	t.Parallel()
	ts := startServer(t)

	spec := newSaleSpec("final-2026")
	r := ts.do(t, "POST", "/v1/sales", spec, adminHdr)
	created := requireStatus(t, r, 201, "create")
	var v saleView
	r.decode(t, &v)
	requireEqual(t, v.Sale.ID, "final-2026")
	requireEqual(t, v.Sale.HoldTTLS, 600)
	requireEqual(t, v.Sale.WaitingRoom, actors.WaitingRoomDef{ActiveLimit: 1000, AdmitPerS: 1000, AccessTTLS: 900})
	requireEqual(t, v.Zones, []actors.ZoneCounts{{ID: "ga", Free: 100}, {ID: "vip", Free: 20}})
	requireTime(t, v.Sale.OpensAt, "opens_at defaults to now")
	requireEqual(t, v.Sale.Currency, "eur", "currency defaults to eur")
	q := created["queue"].(map[string]any)
	for _, k := range []string{"state", "waiting", "admitted", "admitted_total", "admit_per_s"} {
		_, ok := q[k]
		requireTrue(t, ok, "queue.%s in %s", k, r)
	}

	// GET answers the same body as the 201: the definition and the stock
	// (the queue moves on its own, so it is compared once it settles).
	got := requireStatus(t, ts.do(t, "GET", "/v1/sales/final-2026", nil), 200)
	requireEqual(t, got["sale"], created["sale"], "GET sale equals the 201 body")
	requireEqual(t, got["zones"], created["zones"], "GET zones equal the 201 body")
	eventually(t, 5*time.Second, "an open sale with nobody waiting is open", func() (bool, string) {
		s := ts.sale(t, "final-2026")
		return s.Queue.State == "open" && s.Queue.AdmitPerS == 1000, fmt.Sprintf("%+v", s.Queue)
	})

	// Defaults, and times written back in UTC with milliseconds.
	min := saleSpec{"id": "minimal", "opens_at": "2030-01-01T12:00:00.123456789+02:00",
		"zones": []any{map[string]any{"id": "ga", "capacity": 5}}}
	m := ts.createSale(t, min)
	requireEqual(t, m.Sale.Name, "minimal", "name defaults to the id")
	requireEqual(t, m.Sale.OpensAt, "2030-01-01T10:00:00.123Z")
	requireEqual(t, m.Sale.HoldTTLS, 600)
	requireEqual(t, m.Sale.MaxPerBuyer, 6)
	requireEqual(t, m.Sale.WaitingRoom, actors.WaitingRoomDef{ActiveLimit: 1000, AdmitPerS: 0, AccessTTLS: 900})
	requireEqual(t, ts.sale(t, "minimal").Queue.State, "pre_queue")
	requireEqual(t, ts.createSale(t, min.with("id", "in-usd").with("currency", "usd")).Sale.Currency, "usd")

	// 409 sale_exists: the second create changes nothing.
	requireError(t, ts.do(t, "POST", "/v1/sales", spec.with("name", "Other"), adminHdr), 409, actors.CodeSaleExists)
	requireEqual(t, ts.sale(t, "final-2026").Sale.Name, "Sale final-2026")

	// 400 naming the offending field.
	zones := func(z ...any) []any { return z }
	for _, c := range []struct {
		spec  saleSpec
		field string
	}{
		{spec.with("id", "bad id"), "id"},
		{spec.with("id", nil), "id"},
		{spec.with("hold_ttl_s", 0), "hold_ttl_s"},
		{spec.with("hold_ttl_s", 3601), "hold_ttl_s"},
		{spec.with("max_per_buyer", 101), "max_per_buyer"},
		{spec.with("opens_at", "tomorrow"), "opens_at"},
		{spec.with("currency", "USD"), "currency"},
		{spec.with("currency", "us"), "currency"},
		{spec.with("currency", ""), "currency"},
		{spec.room("active_limit", 1_000_001), "waiting_room.active_limit"},
		{spec.room("admit_per_s", -1), "waiting_room.admit_per_s"},
		{spec.room("admit_per_s", 100_001), "waiting_room.admit_per_s"},
		{spec.room("access_ttl_s", 86_401), "waiting_room.access_ttl_s"},
		{spec.with("zones", zones()), "zones"},
		{spec.with("zones", zones(map[string]any{"id": "a", "capacity": 1}, map[string]any{"id": "a", "capacity": 1})), "zones[1].id"},
		{spec.with("zones", zones(map[string]any{"id": "a", "capacity": 1_000_001})), "zones[0].capacity"},
		{spec.with("zones", zones(map[string]any{"id": "a"})), "zones[0]"},
		{spec.with("zones", zones(map[string]any{"id": "a", "capacity": 1, "price_cents": -1})), "zones[0].price_cents"},
		{spec.with("zones", zones(map[string]any{"id": "r", "rows": []any{map[string]any{"row": "A", "seats": 1}, map[string]any{"row": "A", "seats": 1}}})), "zones[0].rows[1].row"},
		{spec.with("zones", zones(map[string]any{"id": "r", "rows": []any{map[string]any{"row": "A-1", "seats": 1}}})), "zones[0].rows[0].row"},
		{spec.with("zones", zones(map[string]any{"id": "r", "rows": []any{map[string]any{"row": "A", "seats": 1001}}})), "zones[0].rows[0].seats"},
	} {
		e := requireError(t, ts.do(t, "POST", "/v1/sales", c.spec, adminHdr), 400, actors.CodeBadRequest, c.field)
		requireTrue(t, strings.Contains(e.Error.Message, c.field), "message %q names %s", e.Error.Message, c.field)
	}

	// 401 without the admin token, or with a wrong one; syntax first.
	requireError(t, ts.do(t, "POST", "/v1/sales", newSaleSpec("s-noauth")), 401, "unauthorized")
	requireError(t, ts.do(t, "POST", "/v1/sales", newSaleSpec("s-noauth"), bearerHdr("wrong")), 401, "unauthorized")
	requireError(t, ts.do(t, "POST", "/v1/sales", newSaleSpec("s-noauth"), hdr{"Authorization", testAdminToken}), 401, "unauthorized")
	requireError(t, ts.do(t, "POST", "/v1/sales", spec.with("hold_ttl_s", 0)), 400, actors.CodeBadRequest, "syntax before auth")
	requireError(t, ts.do(t, "GET", "/v1/sales/s-noauth", nil), 404, actors.CodeNotFound, "nothing was created")

	// Unknown and impossible sale ids.
	requireError(t, ts.do(t, "GET", "/v1/sales/nope", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/sales/"+strings.Repeat("x", 65), nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/sales/_bad", nil), 404, actors.CodeNotFound)
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})

	requireError(t, ts.do(t, "POST", "/v1/sales/s/pause", nil), 401, "unauthorized")
	requireError(t, ts.do(t, "POST", "/v1/sales/s/pause", nil, bearerHdr(tok)), 401, "unauthorized", "a buyer is not the admin")
	requireError(t, ts.do(t, "GET", "/v1/sales/s/pause", nil, adminHdr), 405, "method_not_allowed")

	r := ts.do(t, "POST", "/v1/sales/s/pause", nil, adminHdr)
	requireStatus(t, r, 200, "pause")
	var v saleView
	r.decode(t, &v)
	requireEqual(t, v.Sale.ID, "s", "pause answers the sale body")
	requireEqual(t, len(v.Zones), 2)
	// The queue figures are published by the room actor after the pause is
	// durable, so they are polled (see the report: the answer itself can
	// still show the old rate).
	eventually(t, 5*time.Second, "paused: state paused, admit_per_s 0", func() (bool, string) {
		s := ts.sale(t, "s")
		return s.Queue.State == "paused" && s.Queue.AdmitPerS == 0, fmt.Sprintf("%+v", s.Queue)
	})
	requireStatus(t, ts.do(t, "POST", "/v1/sales/s/pause", nil, adminHdr), 200, "pausing twice")
	requireEqual(t, ts.sale(t, "s").Queue.State, "paused")

	// New holds are refused; the line still takes joiners but admits no one.
	e := ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	requireError(t, e, 503, actors.CodeSalePaused)
	requireTrue(t, e.Header.Get("Retry-After") != "", "503 carries Retry-After")
	k := ts.join(t, "s", "b2")
	requireEqual(t, k.State, "waiting", "no admission while paused")
	eventually(t, 5*time.Second, "paused sale reports admit_per_s 0", func() (bool, string) {
		s := ts.sale(t, "s")
		return s.Queue.State == "paused" && s.Queue.AdmitPerS == 0 && s.Queue.Waiting == 1, fmt.Sprintf("%+v", s.Queue)
	})
	// A hold that exists can be bought while paused.
	requireStatus(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "k1"), 201, "checkout while paused")

	r = ts.do(t, "POST", "/v1/sales/s/resume", nil, adminHdr)
	requireStatus(t, r, 200, "resume")
	r.decode(t, &v)
	requireEqual(t, v.Sale.ID, "s", "resume answers the sale body")
	eventually(t, 5*time.Second, "resumed", func() (bool, string) {
		s := ts.sale(t, "s")
		return s.Queue.State != "paused" && s.Queue.AdmitPerS == 1000, fmt.Sprintf("%+v", s.Queue)
	})
	ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	eventually(t, 5*time.Second, "the waiting buyer is admitted after resume", func() (bool, string) {
		k = ts.ticket(t, "s", k.QueueID)
		return k.State == "admitted", fmt.Sprintf("%+v", k)
	})
	requireError(t, ts.do(t, "POST", "/v1/sales/nope/pause", nil, adminHdr), 404, actors.CodeNotFound)
}

func TestAvailability(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-3"}})
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"B-10"}})
	requireStatus(t, ts.checkout(t, h.HoldID, tok, "tok_visa", ""), 201)
	ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 2})

	c := ts.counts(t, "s")
	requireEqual(t, c["ga"], actors.ZoneCounts{ID: "ga", Free: 98, Held: 2})
	requireEqual(t, c["vip"], actors.ZoneCounts{ID: "vip", Free: 18, Held: 1, Sold: 1})

	var seats struct {
		Zones []struct {
			actors.ZoneCounts
			Seats []actors.SeatView `json:"seats"`
		} `json:"zones"`
	}
	r := ts.do(t, "GET", "/v1/sales/s/availability?zone=vip", nil)
	requireStatus(t, r, 200)
	r.decode(t, &seats)
	requireEqual(t, len(seats.Zones), 1)
	requireEqual(t, seats.Zones[0].ZoneCounts, c["vip"])
	requireEqual(t, len(seats.Zones[0].Seats), 20)
	status := map[string]string{}
	for i, s := range seats.Zones[0].Seats {
		status[s.ID] = s.Status
		want := fmt.Sprintf("%c-%d", 'A'+i/10, i%10+1)
		requireEqual(t, s.ID, want, "seat order")
	}
	requireEqual(t, status["A-3"], "held")
	requireEqual(t, status["B-10"], "sold")
	requireEqual(t, status["A-1"], "free")

	// General admission: counts only, no seat list.
	ga := requireStatus(t, ts.do(t, "GET", "/v1/sales/s/availability?zone=ga", nil), 200)
	z := ga["zones"].([]any)[0].(map[string]any)
	_, hasSeats := z["seats"]
	requireTrue(t, !hasSeats, "GA availability has no seat list: %v", z)
	requireEqual(t, z["free"], 98.0)

	requireError(t, ts.do(t, "GET", "/v1/sales/s/availability?zone=nope", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/sales/nope/availability", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "POST", "/v1/sales/s/availability", "{}"), 405, "method_not_allowed")
}

func TestQueueJoinGetDelete(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))

	k := ts.join(t, "s", "b-123")
	requireEqual(t, k.State, "admitted", "nobody waits: admitted at once")
	exp := requireTime(t, k.AccessExpiresAt, "access_expires_at")
	left := time.Until(exp) - time.Duration(ts.clock.off.Load())
	requireTrue(t, left > 890*time.Second && left <= 900*time.Second, "access window %s", left)
	requireTrue(t, k.PollAfterS != nil && *k.PollAfterS >= 1, "poll_after_s %v", k.PollAfterS)

	again := ts.join(t, "s", "b-123")
	requireEqual(t, again.QueueID, k.QueueID, "one place per buyer")
	got := ts.ticket(t, "s", k.QueueID)
	requireEqual(t, got.State, "admitted")
	requireEqual(t, got.AccessExpiresAt, k.AccessExpiresAt, "access_expires_at is fixed at admission")

	r := ts.do(t, "DELETE", "/v1/sales/s/queue/"+k.QueueID, nil)
	requireStatus(t, r, 200, "leave")
	var left1 ticket
	r.decode(t, &left1)
	requireEqual(t, left1.State, "expired")
	requireEqual(t, ts.ticket(t, "s", k.QueueID).State, "expired")
	requireStatus(t, ts.do(t, "DELETE", "/v1/sales/s/queue/"+k.QueueID, nil), 200, "leaving twice")

	fresh := ts.join(t, "s", "b-123")
	requireTrue(t, fresh.QueueID != k.QueueID, "after expired, a new place")

	requireError(t, ts.do(t, "GET", "/v1/sales/s/queue/q_nope", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "DELETE", "/v1/sales/s/queue/q_nope", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/sales/nope/queue/"+k.QueueID, nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "POST", "/v1/sales/s/queue", map[string]string{"buyer": "bad buyer"}), 400, actors.CodeBadRequest)
	requireError(t, ts.do(t, "PUT", "/v1/sales/s/queue/"+k.QueueID, nil), 405, "method_not_allowed")
}

func TestHolds(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")

	// 201 shape, named seats.
	before := ts.clock.Now()
	r := ts.hold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-3", "A-4"}})
	obj := requireStatus(t, r, 201)
	for _, k := range []string{"hold_id", "sale", "zone", "seats", "state", "expires_at", "expires_in_s", "amount_cents"} {
		_, ok := obj[k]
		requireTrue(t, ok, "hold answer has %s: %s", k, r)
	}
	var h holdView
	r.decode(t, &h)
	requireTrue(t, strings.HasPrefix(h.HoldID, "h_"), "hold id %q", h.HoldID)
	requireEqual(t, h.Sale, "s")
	requireEqual(t, h.Zone, "vip")
	requireEqual(t, h.Seats, []string{"A-3", "A-4"})
	requireEqual(t, h.State, "active")
	requireEqual(t, h.Amount, int64(50000))
	requireTrue(t, h.ExpiresInS >= 599 && h.ExpiresInS <= 600, "expires_in_s %d", h.ExpiresInS)
	exp := requireTime(t, h.ExpiresAt, "expires_at")
	d := exp.Sub(before)
	requireTrue(t, d >= 599*time.Second && d <= 601*time.Second, "expires_at is hold_ttl_s ahead: %s", d)

	// Quantity in general admission: the server picks.
	g := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 2})
	requireEqual(t, len(g.Seats), 2)
	requireEqual(t, g.Amount, int64(9000))

	// 400s: unknown zone or seat, duplicates, seats in GA, quantity out of range.
	for _, body := range []map[string]any{
		{"zone": "nope", "quantity": 1},
		{"zone": "vip", "seats": []string{"Z-1"}},
		{"zone": "vip", "seats": []string{"A-11"}},
		{"zone": "vip", "seats": []string{"A-5", "A-5"}},
		{"zone": "ga", "seats": []string{"1"}},
		{"zone": "ga", "quantity": 0},
		{"zone": "ga", "quantity": 101},
	} {
		requireError(t, ts.hold(t, "s", tok, body), 400, actors.CodeBadRequest, "%v", body)
	}

	// 403: missing, forged, other sale.
	ts.createSale(t, newSaleSpec("other"))
	otherTok := ts.admit(t, "other", "b1")
	body := map[string]any{"zone": "ga", "quantity": 1}
	requireError(t, ts.do(t, "POST", "/v1/sales/s/holds", body), 403, actors.CodeNotAdmitted, "missing token")
	requireError(t, ts.hold(t, "s", tok[:len(tok)-2]+"AA", body), 403, actors.CodeNotAdmitted, "forged token")
	requireError(t, ts.hold(t, "s", otherTok, body), 403, actors.CodeNotAdmitted, "other sale's token")
	requireError(t, ts.hold(t, "s", testAdminToken, body), 403, actors.CodeNotAdmitted, "admin token is no access token")

	// 409 seats_taken, by anyone (this buyer included), with alternatives of
	// the same size that exclude the taken seats and are free.
	tok2 := ts.admit(t, "s", "b2")
	for _, who := range []string{tok, tok2} {
		e := requireError(t, ts.hold(t, "s", who, map[string]any{"zone": "vip", "seats": []string{"A-3", "A-4"}}), 409, actors.CodeSeatsTaken)
		requireTrue(t, e.Error.Alternatives != nil, "alternatives present")
		alts := *e.Error.Alternatives
		requireTrue(t, len(alts) >= 1 && len(alts) <= 3, "1..3 alternatives: %v", alts)
		seen := map[string]bool{}
		for _, alt := range alts {
			requireEqual(t, len(alt), 2, "alternative size")
			for _, s := range alt {
				requireTrue(t, s != "A-3" && s != "A-4", "alternative %v avoids the taken seats", alt)
				requireTrue(t, !seen[s], "alternatives are disjoint: %v", alts)
				seen[s] = true
			}
		}
		// An alternative can be held right away.
		if who == tok2 {
			a := ts.mustHold(t, "s", tok2, map[string]any{"zone": "vip", "seats": alts[0]})
			requireEqual(t, a.Seats, alts[0])
		}
	}

	// accept_alternative holds the best alternative in the same request.
	alt := ts.mustHold(t, "s", tok2, map[string]any{"zone": "vip", "seats": []string{"A-3"}, "accept_alternative": true})
	requireEqual(t, len(alt.Seats), 1)
	requireTrue(t, alt.Seats[0] != "A-3", "an alternative seat, not A-3: %v", alt.Seats)

	// 422 limit_exceeded with the remaining count: b1 holds 4 of 6.
	e := requireError(t, ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 3}), 422, actors.CodeLimitExceeded)
	requireTrue(t, e.Error.Remaining != nil && *e.Error.Remaining == 2, "remaining 2: %+v", e.Error)
	requireError(t, ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 100}), 422, actors.CodeLimitExceeded,
		"quantity within 1..100 but over what the buyer may take")
	ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 2})
	e = requireError(t, ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1}), 422, actors.CodeLimitExceeded)
	requireEqual(t, *e.Error.Remaining, 0)
	requireError(t, ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 0}), 400, actors.CodeBadRequest,
		"ranges are checked before limits")
	// A released hold gives its seats back to the buyer's allowance.
	requireStatus(t, ts.do(t, "DELETE", "/v1/holds/"+g.HoldID, nil, bearerHdr(tok)), 200)
	ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 2})

	// Idempotency-Key: the same request gets the first answer again, another
	// request under the same key is refused.
	tok3 := ts.admit(t, "s", "b3")
	key := hdr{"Idempotency-Key", "hold-attempt-1"}
	first := ts.hold(t, "s", tok3, map[string]any{"zone": "vip", "seats": []string{"B-1"}}, key)
	requireStatus(t, first, 201)
	replay := ts.hold(t, "s", tok3, map[string]any{"zone": "vip", "seats": []string{"B-1"}}, key)
	requireStatus(t, replay, 201, "replay")
	requireEqual(t, replay.object(t)["hold_id"], first.object(t)["hold_id"], "replay answers the same hold")
	requireEqual(t, ts.counts(t, "s")["vip"].Held, 6, "the replay held nothing more")
	requireError(t, ts.hold(t, "s", tok3, map[string]any{"zone": "vip", "seats": []string{"B-2"}}, key), 422, actors.CodeIdemReused)
	// A stored refusal is replayed too.
	key2 := hdr{"Idempotency-Key", "hold-attempt-2"}
	requireError(t, ts.hold(t, "s", tok3, map[string]any{"zone": "vip", "seats": []string{"A-3"}}, key2), 409, actors.CodeSeatsTaken)
	requireError(t, ts.hold(t, "s", tok3, map[string]any{"zone": "vip", "seats": []string{"A-3"}}, key2), 409, actors.CodeSeatsTaken, "replayed refusal")
	// Keys are per buyer: another buyer's same key is a new request.
	tok4 := ts.admit(t, "s", "b4")
	requireStatus(t, ts.hold(t, "s", tok4, map[string]any{"zone": "vip", "seats": []string{"B-2"}}, key), 201, "same key, other buyer")
	// Bad keys.
	requireError(t, ts.hold(t, "s", tok3, map[string]any{"zone": "ga", "quantity": 1}, hdr{"Idempotency-Key", strings.Repeat("k", 129)}), 400, actors.CodeBadRequest)

	requireError(t, ts.do(t, "GET", "/v1/sales/s/holds", nil, bearerHdr(tok)), 405, "method_not_allowed")
}

// TestHoldsEmptyAlternatives: a zone with nothing free answers seats_taken
// with "alternatives": [] and sold_out with the other zones free ("zones": []
// when none).
func TestHoldsEmptyAlternatives(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s").with("zones", []any{
		map[string]any{"id": "r", "price_cents": 100, "rows": []any{map[string]any{"row": "A", "seats": 2}}},
		map[string]any{"id": "ga", "price_cents": 100, "capacity": 3},
	}))
	t1, t2 := ts.admit(t, "s", "b1"), ts.admit(t, "s", "b2")
	ts.mustHold(t, "s", t1, map[string]any{"zone": "r", "seats": []string{"A-1", "A-2"}})

	r := ts.hold(t, "s", t2, map[string]any{"zone": "r", "seats": []string{"A-1"}})
	e := requireError(t, r, 409, actors.CodeSeatsTaken)
	requireTrue(t, e.Error.Alternatives != nil && len(*e.Error.Alternatives) == 0, "alternatives: [] in %s", r)

	r = ts.hold(t, "s", t2, map[string]any{"zone": "r", "seats": []string{"A-1"}, "accept_alternative": true})
	e = requireError(t, r, 409, actors.CodeSoldOut, "accept_alternative without an alternative")
	requireTrue(t, e.Error.Zones != nil, "zones present in %s", r)
	requireEqual(t, *e.Error.Zones, []zoneFreeJSON{{ID: "ga", Free: 3}})

	r = ts.hold(t, "s", t2, map[string]any{"zone": "r", "quantity": 1})
	e = requireError(t, r, 409, actors.CodeSoldOut)
	requireEqual(t, *e.Error.Zones, []zoneFreeJSON{{ID: "ga", Free: 3}})

	ts.mustHold(t, "s", t1, map[string]any{"zone": "ga", "quantity": 3})
	r = ts.hold(t, "s", t2, map[string]any{"zone": "ga", "quantity": 1})
	e = requireError(t, r, 409, actors.CodeSoldOut)
	requireTrue(t, e.Error.Zones != nil && len(*e.Error.Zones) == 0, "zones: [] when nothing is free: %s", r)
}

func TestHoldReadDelete(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	owner, other := ts.admit(t, "s", "b1"), ts.admit(t, "s", "b2")
	h := ts.mustHold(t, "s", owner, map[string]any{"zone": "vip", "seats": []string{"A-1", "A-2"}})
	path := "/v1/holds/" + h.HoldID

	var got holdView
	r := ts.do(t, "GET", path, nil, bearerHdr(owner))
	requireStatus(t, r, 200, "owner reads")
	r.decode(t, &got)
	requireEqual(t, got, h, "the hold reads as it was made")
	requireStatus(t, ts.do(t, "GET", path, nil, adminHdr), 200, "admin reads")
	requireError(t, ts.do(t, "GET", path, nil, bearerHdr(other)), 404, actors.CodeNotFound, "another buyer")
	requireError(t, ts.do(t, "GET", path, nil), 404, actors.CodeNotFound, "no token")
	requireError(t, ts.do(t, "GET", path, nil, bearerHdr("forged.token")), 404, actors.CodeNotFound, "forged token")
	requireError(t, ts.do(t, "DELETE", path, nil, bearerHdr(other)), 404, actors.CodeNotFound, "another buyer deletes")
	requireError(t, ts.do(t, "DELETE", path, nil), 403, actors.CodeNotAdmitted, "delete without a token")
	requireError(t, ts.do(t, "DELETE", path, nil, bearerHdr("forged.token")), 403, actors.CodeNotAdmitted, "delete with a forged token")
	requireError(t, ts.do(t, "DELETE", "/v1/holds/h_AAAAAAAAAAAAAAAAAAAAAA", nil), 403, actors.CodeNotAdmitted, "delete of an unknown hold without a token")
	requireError(t, ts.do(t, "DELETE", "/v1/holds/h_AAAAAAAAAAAAAAAAAAAAAA", nil, bearerHdr(other)), 404, actors.CodeNotFound, "delete of an unknown hold with a valid token")
	requireEqual(t, ts.counts(t, "s")["vip"].Held, 2, "refused deletes changed nothing")
	requireError(t, ts.do(t, "GET", "/v1/holds/h_AAAAAAAAAAAAAAAAAAAAAA", nil, adminHdr), 404, actors.CodeNotFound, "unknown id")
	requireError(t, ts.do(t, "GET", "/v1/holds/nonsense", nil, adminHdr), 404, actors.CodeNotFound, "impossible id")

	// Delete: 200, seats free at once; again 200.
	r = ts.do(t, "DELETE", path, nil, bearerHdr(owner))
	requireStatus(t, r, 200, "delete")
	r.decode(t, &got)
	requireEqual(t, got.State, "released")
	requireEqual(t, ts.counts(t, "s")["vip"], actors.ZoneCounts{ID: "vip", Free: 20})
	requireStatus(t, ts.do(t, "DELETE", path, nil, bearerHdr(owner)), 200, "delete twice")
	requireEqual(t, ts.do(t, "GET", path, nil, adminHdr).object(t)["state"], "released")

	// Admin may release a buyer's hold.
	h2 := ts.mustHold(t, "s", other, map[string]any{"zone": "ga", "quantity": 1})
	requireStatus(t, ts.do(t, "DELETE", "/v1/holds/"+h2.HoldID, nil, adminHdr), 200, "admin delete")

	// Purchased: reads purchased with the order id; delete is 409.
	h3 := ts.mustHold(t, "s", owner, map[string]any{"zone": "vip", "seats": []string{"B-1"}})
	o := ts.checkout(t, h3.HoldID, owner, "tok_visa", "")
	requireStatus(t, o, 201)
	r = ts.do(t, "GET", "/v1/holds/"+h3.HoldID, nil, bearerHdr(owner))
	r.decode(t, &got)
	requireEqual(t, got.State, "purchased")
	requireEqual(t, any(got.OrderID), o.object(t)["order_id"])
	requireError(t, ts.do(t, "DELETE", "/v1/holds/"+h3.HoldID, nil, bearerHdr(owner)), 409, actors.CodeHoldNotActive)

	// Expired: the clock passes expires_at; the seats come back; delete 409.
	h4 := ts.mustHold(t, "s", owner, map[string]any{"zone": "vip", "seats": []string{"B-5"}})
	ts.clock.Advance(601 * time.Second)
	eventually(t, 5*time.Second, "hold expires", func() (bool, string) {
		r := ts.do(t, "GET", "/v1/holds/"+h4.HoldID, nil, bearerHdr(owner))
		return r.Status == 200 && r.object(t)["state"] == "expired", r.String()
	})
	requireEqual(t, ts.counts(t, "s")["vip"], actors.ZoneCounts{ID: "vip", Free: 19, Sold: 1}, "expired seats are free again")
	requireError(t, ts.do(t, "DELETE", "/v1/holds/"+h4.HoldID, nil, bearerHdr(owner)), 409, actors.CodeHoldNotActive)
	requireError(t, ts.do(t, "PATCH", "/v1/holds/"+h4.HoldID, nil, bearerHdr(owner)), 405, "method_not_allowed")
}

func TestCheckoutAndOrders(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s").with("max_per_buyer", 3))
	tok := ts.admit(t, "s", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-1", "A-2"}})

	// 402 declined, then 502 gateway error: the hold stays; then it pays.
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_decline", "c1"), 402, actors.CodePaymentDecline)
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_decline", "c1"), 402, actors.CodePaymentDecline, "a stored 4xx is replayed")
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "c1"), 422, actors.CodeIdemReused, "same key, other card")
	requireEqual(t, ts.do(t, "GET", "/v1/holds/"+h.HoldID, nil, bearerHdr(tok)).object(t)["state"], "active")
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_error", "c2"), 502, actors.CodePaymentDown)
	requireEqual(t, ts.do(t, "GET", "/v1/holds/"+h.HoldID, nil, bearerHdr(tok)).object(t)["state"], "active")

	r := ts.checkout(t, h.HoldID, tok, "tok_visa", "c3")
	obj := requireStatus(t, r, 201, "checkout")
	for _, k := range []string{"order_id", "hold_id", "sale", "zone", "seats", "amount_cents", "currency", "state", "paid_at"} {
		_, ok := obj[k]
		requireTrue(t, ok, "order has %s: %s", k, r)
	}
	var o orderView
	r.decode(t, &o)
	requireTrue(t, strings.HasPrefix(o.OrderID, "o_"), "order id %q", o.OrderID)
	requireEqual(t, o.HoldID, h.HoldID)
	requireEqual(t, o.Sale, "s")
	requireEqual(t, o.Zone, "vip")
	requireEqual(t, o.Seats, []string{"A-1", "A-2"})
	requireEqual(t, o.Amount, int64(50000))
	requireEqual(t, o.Currency, "eur", "the default currency")
	requireEqual(t, o.State, "paid")
	requireTime(t, o.PaidAt, "paid_at")

	replay := ts.checkout(t, h.HoldID, tok, "tok_visa", "c3")
	requireStatus(t, replay, 201, "replay")
	requireEqual(t, replay.object(t)["order_id"], any(o.OrderID), "the replay answers the same order")
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "c4"), 409, actors.CodeHoldNotActive, "buying twice")
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_visa", ""), 409, actors.CodeHoldNotActive, "buying twice, no key")
	requireEqual(t, ts.counts(t, "s")["vip"], actors.ZoneCounts{ID: "vip", Free: 18, Sold: 2})

	// Who may check out.
	other := ts.admit(t, "s", "b2")
	requireError(t, ts.checkout(t, h.HoldID, other, "tok_visa", ""), 404, actors.CodeNotFound, "another buyer's hold")
	requireError(t, ts.do(t, "POST", "/v1/holds/"+h.HoldID+"/checkout", map[string]any{"payment": map[string]string{"token": "tok_visa"}}), 403, actors.CodeNotAdmitted, "no token")
	requireError(t, ts.checkout(t, "h_AAAAAAAAAAAAAAAAAAAAAA", tok, "tok_visa", ""), 404, actors.CodeNotFound, "unknown hold")

	// GET order: by its id alone.
	var got orderView
	r = ts.do(t, "GET", "/v1/orders/"+o.OrderID, nil)
	requireStatus(t, r, 200)
	r.decode(t, &got)
	requireEqual(t, got, o)
	requireError(t, ts.do(t, "GET", "/v1/orders/o_AAAAAAAAAAAAAAAAAAAAAA", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/orders/nonsense", nil), 404, actors.CodeNotFound)

	// b1 holds 2 + bought... max_per_buyer 3: one more, not two.
	requireError(t, ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 2}), 422, actors.CodeLimitExceeded)

	// Cancel: admin only; 200 cancelled; again the same; seats free again;
	// the hold keeps reading purchased; the buyer may take those seats again.
	cancel := "/v1/orders/" + o.OrderID + "/cancel"
	requireError(t, ts.do(t, "POST", cancel, nil), 401, "unauthorized")
	requireError(t, ts.do(t, "POST", cancel, nil, bearerHdr(tok)), 401, "unauthorized")
	c1 := ts.do(t, "POST", cancel, nil, adminHdr)
	requireStatus(t, c1, 200, "cancel")
	requireEqual(t, c1.object(t)["state"], "cancelled")
	c2 := ts.do(t, "POST", cancel, nil, adminHdr)
	requireStatus(t, c2, 200, "cancel twice")
	requireEqual(t, c2.object(t), c1.object(t), "a second cancel answers the same")
	requireEqual(t, ts.do(t, "GET", "/v1/orders/"+o.OrderID, nil).object(t)["state"], "cancelled")
	requireEqual(t, ts.counts(t, "s")["vip"], actors.ZoneCounts{ID: "vip", Free: 20})
	hv := ts.do(t, "GET", "/v1/holds/"+h.HoldID, nil, adminHdr).object(t)
	requireEqual(t, hv["state"], any("purchased"))
	requireEqual(t, hv["order_id"], any(o.OrderID))
	ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-1", "A-2", "A-3"}})
	requireError(t, ts.do(t, "POST", "/v1/orders/o_AAAAAAAAAAAAAAAAAAAAAA/cancel", nil, adminHdr), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", cancel, nil, adminHdr), 405, "method_not_allowed")
}

// TestCheckoutExpired: a checkout at or after expires_at is refused with 410,
// and the hold then reads expired.
func TestCheckoutExpired(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s").with("hold_ttl_s", 60))
	tok := ts.admit(t, "s", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	ts.clock.Advance(61 * time.Second)
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "k"), 410, actors.CodeHoldExpired)
	requireError(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "k"), 410, actors.CodeHoldExpired, "replayed")
	requireEqual(t, ts.do(t, "GET", "/v1/holds/"+h.HoldID, nil, bearerHdr(tok)).object(t)["state"], "expired")
	eventually(t, 5*time.Second, "expired seats are free", func() (bool, string) {
		c := ts.counts(t, "s")["ga"]
		return c.Free == 100, fmt.Sprintf("%+v", c)
	})
}

func TestOperations(t *testing.T) {
	t.Parallel()
	ts := startServer(t)

	requireEqual(t, requireStatus(t, ts.do(t, "GET", "/healthz", nil), 200)["status"], "ok")
	requireStatus(t, ts.do(t, "GET", "/readyz", nil), 200)

	r := ts.do(t, "GET", "/", nil)
	requireStatus(t, r, 200, "buyer page")
	requireTrue(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/html"), "html: %v", r.Header)
	requireTrue(t, strings.Contains(strings.ToLower(string(r.Body)), "<html"), "an html page")

	// Traffic on a few routes, then the histograms and counters.
	ts.createSale(t, newSaleSpec("s"))
	ts.do(t, "GET", "/v1/sales/s", nil)
	ts.do(t, "GET", "/v1/sales/nope", nil)
	r = ts.do(t, "GET", "/metrics", nil)
	requireStatus(t, r, 200, "metrics")
	requireTrue(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain"), "Prometheus text: %v", r.Header)
	text := string(r.Body)
	for _, want := range []string{
		`onsale_http_request_duration_seconds_bucket{route="/v1/sales/{sale}",le="`,
		`onsale_http_request_duration_seconds_bucket{route="/v1/sales/{sale}",le="+Inf"} `,
		`onsale_http_request_duration_seconds_sum{route="/v1/sales/{sale}"}`,
		`onsale_http_request_duration_seconds_count{route="/v1/sales/{sale}"}`,
		`onsale_http_requests_total{route="/v1/sales/{sale}",status="200"} `,
		`onsale_http_requests_total{route="/v1/sales/{sale}",status="404"} `,
		`onsale_http_requests_total{route="/v1/sales",status="201"} 1`,
		`onsale_seats{sale="s",zone="ga",state="free"} 100`,
	} {
		requireTrue(t, strings.Contains(text, want), "metrics have %s", want)
	}
	// Every line is a comment or "name{labels} value".
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		requireTrue(t, promLine.MatchString(line), "Prometheus line %q", line)
	}

	// Readiness while the engine recovers: a server without one.
	srv := New(Config{AdminToken: testAdminToken, SigningKey: []byte("k")})
	rts := &testServer{srv: srv, c: newTestClient(4)}
	ln := listenLocal(t)
	rts.addr, rts.base = ln.Addr().String(), "http://"+ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		rts.c.CloseIdleConnections()
		if err := srv.Shutdown(5 * time.Second); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	requireError(t, rts.do(t, "GET", "/readyz", nil), 503, "recovering")
	requireError(t, rts.do(t, "GET", "/v1/sales/s", nil), 503, "recovering")
	requireStatus(t, rts.do(t, "GET", "/healthz", nil), 200, "healthz while recovering")
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))

	r := ts.do(t, "GET", "/dashboard", nil)
	requireStatus(t, r, 200, "login form")
	requireTrue(t, strings.Contains(string(r.Body), `id="token"`), "a login form with a token field")
	login := string(r.Body)
	requireError(t, ts.do(t, "GET", "/dashboard/events", nil), 401, "unauthorized", "events without a session")

	form := func(tok string) response {
		return ts.do(t, "POST", "/dashboard/login", url.Values{"token": {tok}}.Encode(),
			hdr{"Content-Type", "application/x-www-form-urlencoded"})
	}
	r = form("wrong")
	requireError(t, r, 401, "unauthorized", "wrong token")
	requireTrue(t, r.Header.Get("Set-Cookie") == "", "no session for a wrong token")

	r = form(testAdminToken)
	requireStatus(t, r, 200, "login")
	requireTrue(t, strings.Contains(string(r.Body), `"next":"/dashboard"`), "login names the dashboard: %s", r)
	resp := http.Response{Header: r.Header}
	cookies := resp.Cookies()
	requireEqual(t, len(cookies), 1, "one session cookie: %v", r.Header)
	ck := cookies[0]
	requireTrue(t, ck.HttpOnly, "HttpOnly")
	requireEqual(t, ck.SameSite, http.SameSiteStrictMode, "SameSite=Strict")
	requireTrue(t, ck.Value != "", "a session value")
	session := hdr{"Cookie", ck.Name + "=" + ck.Value}

	r = ts.do(t, "GET", "/dashboard", nil, session)
	requireStatus(t, r, 200, "dashboard")
	requireTrue(t, string(r.Body) != login, "the dashboard, not the login form")
	forged := hdr{"Cookie", ck.Name + "=" + strings.Replace(ck.Value, ".", ".0", 1)}
	requireEqual(t, string(ts.do(t, "GET", "/dashboard", nil, forged).Body), login, "a forged session gets the form")

	// The live stream: data: {...} events with the sales.
	req, err := http.NewRequest("GET", ts.base+"/dashboard/events", nil)
	requireNoErr(t, err)
	req.Header.Set("Cookie", session[1])
	stream, err := ts.c.Do(req)
	requireNoErr(t, err)
	defer stream.Body.Close()
	requireEqual(t, stream.StatusCode, 200)
	requireTrue(t, strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream"), "SSE: %v", stream.Header)
	br := bufio.NewReader(stream.Body)
	for i := 0; i < 2; i++ {
		ev := readEvent(t, br)
		requireTrue(t, strings.Contains(ev, `"id":"s"`), "event %d has the sale: %s", i, ev)
		requireTrue(t, strings.Contains(ev, `"payments_owed":0`), "event %d says no payment is owed: %s", i, ev)
	}
}

func TestHTTPLayerErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))

	requireError(t, ts.do(t, "GET", "/nope", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/nope/x", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/sales/s/nope", nil), 404, actors.CodeNotFound)
	requireError(t, ts.do(t, "GET", "/v1/sales/s/queue/a/b/c", nil), 404, actors.CodeNotFound)

	r := ts.do(t, "DELETE", "/v1/sales", nil, adminHdr)
	requireError(t, r, 405, "method_not_allowed")
	requireEqual(t, r.Header.Get("Allow"), "GET, POST")
	requireError(t, ts.do(t, "POST", "/healthz", "{}"), 405, "method_not_allowed")
	requireError(t, ts.do(t, "PUT", "/v1/sales/s", "{}", adminHdr), 405, "method_not_allowed")

	// Over 1 MiB of body: 413, through an ordinary client and as raw bytes
	// (the server answers from Content-Length alone).
	big := []byte(`{"id":"big","name":"` + strings.Repeat("x", 1<<20) + `"}`)
	requireError(t, ts.rawSend(t, "POST", "/v1/sales", big, adminHdr), 413, "payload_too_large")
	raw := ts.rawRequest(t, "POST /v1/sales HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n{")
	requireError(t, raw, 413, "payload_too_large")

	// A 16 KiB header: 431.
	r = ts.do(t, "GET", "/healthz", nil, hdr{"X-Filler", strings.Repeat("a", 16<<10)})
	requireError(t, r, 431, "headers_too_large")

	// A malformed request line or URL: 400 in JSON.
	for _, line := range []string{
		"GET http://[::1 HTTP/1.1",
		"GET /a b HTTP/1.1",
		"NOT-HTTP",
	} {
		raw := ts.rawRequest(t, line+"\r\nHost: x\r\n\r\n")
		requireError(t, raw, 400, actors.CodeBadRequest, "%q", line)
	}

	// The server is still well.
	requireStatus(t, ts.do(t, "GET", "/healthz", nil), 200)
	requireEqual(t, ts.sale(t, "s").Sale.ID, "s")
}

// TestSameSeatRace: 200 admitted buyers ask for the same seat at the same
// moment. Exactly one gets it; every other gets seats_taken with
// alternatives that exclude it.
func TestSameSeatRace(t *testing.T) {
	t.Parallel()
	const buyers = 200
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("race").with("zones", []any{
		map[string]any{"id": "hall", "price_cents": 1000, "rows": []any{
			map[string]any{"row": "A", "seats": 20}, map[string]any{"row": "B", "seats": 20}}},
	}))
	toks := make([]string, buyers)
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := ts.try("POST", "/v1/sales/race/queue", map[string]string{"buyer": fmt.Sprintf("racer-%d", i)})
			if err != nil || r.Status != 200 {
				errs <- fmt.Errorf("join %d: %v %s", i, err, r)
				return
			}
			var k ticket
			if err := jsonUnmarshal(r.Body, &k); err != nil || k.State != "admitted" {
				errs <- fmt.Errorf("join %d: not admitted: %s", i, r)
				return
			}
			toks[i] = k.AccessToken
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Warm one connection per buyer, so that the race is between requests,
	// not between TCP handshakes.
	warm := make(chan struct{})
	start := make(chan struct{})
	answers := make([]response, buyers)
	fails := make([]error, buyers)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ts.try("GET", "/healthz", nil); err != nil {
				fails[i] = err
			}
			warm <- struct{}{}
			<-start
			answers[i], fails[i] = ts.try("POST", "/v1/sales/race/holds",
				map[string]any{"zone": "hall", "seats": []string{"A-7"}}, bearerHdr(toks[i]))
		}()
	}
	for range toks {
		<-warm
	}
	close(start)
	wg.Wait()

	won := 0
	for i, r := range answers {
		requireNoErr(t, fails[i], "buyer %d", i)
		if r.Status == 201 {
			won++
			continue
		}
		e := requireError(t, r, 409, actors.CodeSeatsTaken, "buyer %d", i)
		requireTrue(t, e.Error.Alternatives != nil && len(*e.Error.Alternatives) > 0, "alternatives offered: %s", r)
		for _, alt := range *e.Error.Alternatives {
			requireTrue(t, len(alt) == 1 && alt[0] != "A-7", "alternative %v excludes A-7", alt)
		}
	}
	requireEqual(t, won, 1, "exactly one buyer holds A-7")
	requireEqual(t, ts.counts(t, "race")["hall"], actors.ZoneCounts{ID: "hall", Free: 39, Held: 1})
}

// TestIdempotentDuplicatesInFlight: copies of one request with one key that
// arrive together all get the first answer, and the work is done once.
func TestIdempotentDuplicatesInFlight(t *testing.T) {
	t.Parallel()
	const copies = 20
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")

	same := func(do func() (response, error)) []response {
		out := make([]response, copies)
		errs := make([]error, copies)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				out[i], errs[i] = do()
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			requireNoErr(t, err)
		}
		return out
	}

	holds := same(func() (response, error) {
		return ts.try("POST", "/v1/sales/s/holds", map[string]any{"zone": "vip", "quantity": 2},
			bearerHdr(tok), hdr{"Idempotency-Key", "one-hold"})
	})
	var first holdView
	holds[0].decode(t, &first)
	for _, r := range holds {
		requireStatus(t, r, 201)
		var h holdView
		r.decode(t, &h)
		requireEqual(t, h.HoldID, first.HoldID, "every copy answers the same hold")
	}
	requireEqual(t, ts.counts(t, "s")["vip"].Held, 2, "held once")

	orders := same(func() (response, error) {
		return ts.try("POST", "/v1/holds/"+first.HoldID+"/checkout", map[string]any{"payment": map[string]string{"token": "tok_visa"}},
			bearerHdr(tok), hdr{"Idempotency-Key", "one-order"})
	})
	id := orders[0].object(t)["order_id"]
	for _, r := range orders {
		requireStatus(t, r, 201)
		requireEqual(t, r.object(t)["order_id"], id, "every copy answers the same order")
	}
	requireEqual(t, ts.counts(t, "s")["vip"], actors.ZoneCounts{ID: "vip", Free: 18, Sold: 2})

	// Without a key, two checkouts of one hold at once: one order.
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
	race := same(func() (response, error) {
		return ts.try("POST", "/v1/holds/"+h.HoldID+"/checkout", map[string]any{"payment": map[string]string{"token": "tok_visa"}}, bearerHdr(tok))
	})
	paid := 0
	for _, r := range race {
		if r.Status == 201 {
			paid++
			continue
		}
		requireError(t, r, 409, actors.CodeHoldNotActive)
	}
	requireEqual(t, paid, 1, "one hold, one order")
	requireEqual(t, ts.counts(t, "s")["ga"].Sold, 1)
}

// readEvent reads one SSE event (up to its blank line), skipping comments,
// and returns its data. Every data line must be "data: {json}".
func readEvent(t testing.TB, br *bufio.Reader) string {
	t.Helper()
	var data []string
	for {
		line, err := br.ReadString('\n')
		requireNoErr(t, err, "read event stream")
		requireTrue(t, strings.HasSuffix(line, "\n"), "line ends in \\n")
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "" && len(data) > 0:
			return strings.Join(data, "\n")
		case line == "" || strings.HasPrefix(line, ":"):
			continue
		case strings.HasPrefix(line, "data: {") && strings.HasSuffix(line, "}"):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			t.Fatalf("unexpected event-stream line %q", line)
		}
	}
}
