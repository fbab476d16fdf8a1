package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"onsale/actors"
)

// TestBadRequests sends a table of bad requests: each gets its 4xx and code
// in the JSON error shape, none changes anything, and the server stays well.
func TestBadRequests(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	ts.createSale(t, newSaleSpec("s"))
	ts.createSale(t, newSaleSpec("t"))
	tok := ts.admit(t, "s", "b1")
	tokOther := ts.admit(t, "s", "b2")
	tokT := ts.admit(t, "t", "b1")
	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-1", "A-2"}})
	o := ts.checkout(t, ts.mustHold(t, "s", tokOther, map[string]any{"zone": "ga", "quantity": 1}).HoldID, tokOther, "tok_visa", "")
	requireStatus(t, o, 201)
	orderID := o.object(t)["order_id"].(string)

	// b2's checkout completed, so only b1 shops, once the room has heard.
	eventually(t, 5*time.Second, "the line settles", func() (bool, string) {
		q := ts.sale(t, "s").Queue
		return q.Admitted == 1, fmt.Sprintf("%+v", q)
	})
	before := snapshotState(t, ts, "s", h.HoldID, tok)

	admin := adminHdr
	buyer := bearerHdr(tok)
	forged := bearerHdr(tok[:len(tok)-4] + "AAAA")
	spec := newSaleSpec("new-sale")
	raw := func(s string) string { return s } // sent as is
	salesBody := func(key string, v any) saleSpec { return spec.with(key, v) }
	manyZones := make([]any, 101)
	for i := range manyZones {
		manyZones[i] = map[string]any{"id": fmt.Sprintf("z%d", i), "capacity": 1}
	}
	manyRows := make([]any, 1001)
	for i := range manyRows {
		manyRows[i] = map[string]any{"row": fmt.Sprintf("R%d", i), "seats": 1}
	}
	manySeats := make([]string, 101)
	for i := range manySeats {
		manySeats[i] = fmt.Sprintf("A-%d", i%10+1)
	}
	pay := func(v any) map[string]any { return map[string]any{"payment": v} }
	big := oversize(`{"zone":"ga","quantity":1,"pad":"` + strings.Repeat("x", 1<<20) + `"}`)
	holds := "/v1/sales/s/holds"
	checkout := "/v1/holds/" + h.HoldID + "/checkout"
	join := "/v1/sales/s/queue"

	cases := []struct {
		name   string
		method string
		path   string
		body   any
		h      hdr
		status int
		code   string
	}{
		// Creating a sale.
		{"sale: no body", "POST", "/v1/sales", nil, admin, 400, actors.CodeBadRequest},
		{"sale: null", "POST", "/v1/sales", raw("null"), admin, 400, actors.CodeBadRequest},
		{"sale: array", "POST", "/v1/sales", raw("[]"), admin, 400, actors.CodeBadRequest},
		{"sale: truncated JSON", "POST", "/v1/sales", raw(`{"id":"x",`), admin, 400, actors.CodeBadRequest},
		{"sale: trailing data", "POST", "/v1/sales", raw(`{"id":"x"} {}`), admin, 400, actors.CodeBadRequest},
		{"sale: not JSON", "POST", "/v1/sales", raw("id=x"), admin, 400, actors.CodeBadRequest},
		{"sale: unknown field", "POST", "/v1/sales", salesBody("colour", "red"), admin, 400, actors.CodeBadRequest},
		{"sale: typo of a field", "POST", "/v1/sales", salesBody("hold_ttl", 60), admin, 400, actors.CodeBadRequest},
		{"sale: field in another case", "POST", "/v1/sales", raw(`{"ID":"case","zones":[{"id":"ga","capacity":1}]}`), admin, 400, actors.CodeBadRequest},
		{"sale: nested field in another case", "POST", "/v1/sales", raw(`{"id":"case","zones":[{"id":"ga","Capacity":1}]}`), admin, 400, actors.CodeBadRequest},
		{"sale: field given twice", "POST", "/v1/sales", raw(`{"id":"twice","id":"again","zones":[{"id":"ga","capacity":1}]}`), admin, 400, actors.CodeBadRequest},
		{"sale: id a number", "POST", "/v1/sales", salesBody("id", 7), admin, 400, actors.CodeBadRequest},
		{"sale: id with a space", "POST", "/v1/sales", salesBody("id", "a b"), admin, 400, actors.CodeBadRequest},
		{"sale: id 65 chars", "POST", "/v1/sales", salesBody("id", strings.Repeat("a", 65)), admin, 400, actors.CodeBadRequest},
		{"sale: empty name", "POST", "/v1/sales", salesBody("name", ""), admin, 400, actors.CodeBadRequest},
		{"sale: name too long", "POST", "/v1/sales", salesBody("name", strings.Repeat("n", 201)), admin, 400, actors.CodeBadRequest},
		{"sale: name with a NUL", "POST", "/v1/sales", salesBody("name", "Cup\x00Final"), admin, 400, actors.CodeBadRequest},
		{"sale: name with a newline", "POST", "/v1/sales", salesBody("name", "Cup\nFinal"), admin, 400, actors.CodeBadRequest},
		{"sale: name with an escape sequence", "POST", "/v1/sales", salesBody("name", "\x1b[2JCup"), admin, 400, actors.CodeBadRequest},
		{"sale: name with DEL", "POST", "/v1/sales", salesBody("name", "Cup\x7f"), admin, 400, actors.CodeBadRequest},
		{"sale: name with a C1 control", "POST", "/v1/sales", salesBody("name", "Cup\u009bFinal"), admin, 400, actors.CodeBadRequest},
		{"sale: zone name with a tab", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "name": "Stand\tA", "capacity": 1}}), admin, 400, actors.CodeBadRequest},
		{"sale: zone name with a C1 control", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "name": "Stand\u0085A", "capacity": 1}}), admin, 400, actors.CodeBadRequest},
		{"sale: hold_ttl_s a string", "POST", "/v1/sales", salesBody("hold_ttl_s", "600"), admin, 400, actors.CodeBadRequest},
		{"sale: hold_ttl_s fractional", "POST", "/v1/sales", salesBody("hold_ttl_s", 1.5), admin, 400, actors.CodeBadRequest},
		{"sale: hold_ttl_s overflows", "POST", "/v1/sales", salesBody("hold_ttl_s", 1e30), admin, 400, actors.CodeBadRequest},
		{"sale: hold_ttl_s 0", "POST", "/v1/sales", salesBody("hold_ttl_s", 0), admin, 400, actors.CodeBadRequest},
		{"sale: max_per_buyer negative", "POST", "/v1/sales", salesBody("max_per_buyer", -1), admin, 400, actors.CodeBadRequest},
		{"sale: max_per_buyer 101", "POST", "/v1/sales", salesBody("max_per_buyer", 101), admin, 400, actors.CodeBadRequest},
		{"sale: opens_at empty", "POST", "/v1/sales", salesBody("opens_at", ""), admin, 400, actors.CodeBadRequest},
		{"sale: opens_at month 13", "POST", "/v1/sales", salesBody("opens_at", "2026-13-01T00:00:00Z"), admin, 400, actors.CodeBadRequest},
		{"sale: opens_at no zone", "POST", "/v1/sales", salesBody("opens_at", "2026-12-01T10:00:00"), admin, 400, actors.CodeBadRequest},
		{"sale: currency upper case", "POST", "/v1/sales", salesBody("currency", "EUR"), admin, 400, actors.CodeBadRequest},
		{"sale: currency four letters", "POST", "/v1/sales", salesBody("currency", "euro"), admin, 400, actors.CodeBadRequest},
		{"sale: currency empty", "POST", "/v1/sales", salesBody("currency", ""), admin, 400, actors.CodeBadRequest},
		{"sale: currency a number", "POST", "/v1/sales", salesBody("currency", 978), admin, 400, actors.CodeBadRequest},
		{"sale: waiting_room a string", "POST", "/v1/sales", salesBody("waiting_room", "fast"), admin, 400, actors.CodeBadRequest},
		{"sale: waiting_room unknown field", "POST", "/v1/sales", salesBody("waiting_room", map[string]any{"limit": 5}), admin, 400, actors.CodeBadRequest},
		{"sale: active_limit 0", "POST", "/v1/sales", spec.room("active_limit", 0), admin, 400, actors.CodeBadRequest},
		{"sale: admit_per_s over max", "POST", "/v1/sales", spec.room("admit_per_s", 100_001), admin, 400, actors.CodeBadRequest},
		{"sale: access_ttl_s 0", "POST", "/v1/sales", spec.room("access_ttl_s", 0), admin, 400, actors.CodeBadRequest},
		{"sale: zones an object", "POST", "/v1/sales", salesBody("zones", map[string]any{"id": "ga"}), admin, 400, actors.CodeBadRequest},
		{"sale: no zones", "POST", "/v1/sales", salesBody("zones", nil), admin, 400, actors.CodeBadRequest},
		{"sale: 101 zones", "POST", "/v1/sales", salesBody("zones", manyZones), admin, 400, actors.CodeBadRequest},
		{"sale: zone without id", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"capacity": 1}}), admin, 400, actors.CodeBadRequest},
		{"sale: zone capacity and rows", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "capacity": 1, "rows": []any{map[string]any{"row": "A", "seats": 1}}}}), admin, 400, actors.CodeBadRequest},
		{"sale: zone capacity 0", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "capacity": 0}}), admin, 400, actors.CodeBadRequest},
		{"sale: zone empty rows", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "rows": []any{}}}), admin, 400, actors.CodeBadRequest},
		{"sale: row seats 0", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "rows": []any{map[string]any{"row": "A", "seats": 0}}}}), admin, 400, actors.CodeBadRequest},
		{"sale: row name too long", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "rows": []any{map[string]any{"row": "ABCDEFGHI", "seats": 1}}}}), admin, 400, actors.CodeBadRequest},
		{"sale: 1001 rows", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "rows": manyRows}}), admin, 400, actors.CodeBadRequest},
		{"sale: over 2,000,000 seats", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "a", "capacity": 1_000_000}, map[string]any{"id": "b", "capacity": 1_000_000}, map[string]any{"id": "c", "capacity": 1}}), admin, 400, actors.CodeBadRequest},
		{"sale: price fractional", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "capacity": 1, "price_cents": 1.5}}), admin, 400, actors.CodeBadRequest},
		{"sale: price too high", "POST", "/v1/sales", salesBody("zones", []any{map[string]any{"id": "z", "capacity": 1, "price_cents": int64(1e13)}}), admin, 400, actors.CodeBadRequest},
		{"sale: no admin token", "POST", "/v1/sales", spec, nil, 401, "unauthorized"},
		{"sale: wrong admin token", "POST", "/v1/sales", spec, bearerHdr("nope"), 401, "unauthorized"},
		{"sale: basic auth", "POST", "/v1/sales", spec, hdr{"Authorization", "Basic " + testAdminToken}, 401, "unauthorized"},
		{"sale: a buyer's token", "POST", "/v1/sales", spec, buyer, 401, "unauthorized"},
		{"sale: exists", "POST", "/v1/sales", newSaleSpec("s"), admin, 409, actors.CodeSaleExists},
		{"sale: body over 1 MiB", "POST", "/v1/sales", big, admin, 413, "payload_too_large"},

		// Joining the line.
		{"join: empty object", "POST", join, raw("{}"), nil, 400, actors.CodeBadRequest},
		{"join: buyer a number", "POST", join, map[string]any{"buyer": 5}, nil, 400, actors.CodeBadRequest},
		{"join: buyer empty", "POST", join, map[string]any{"buyer": ""}, nil, 400, actors.CodeBadRequest},
		{"join: buyer with a slash", "POST", join, map[string]any{"buyer": "a/b"}, nil, 400, actors.CodeBadRequest},
		{"join: buyer 65 chars", "POST", join, map[string]any{"buyer": strings.Repeat("b", 65)}, nil, 400, actors.CodeBadRequest},
		{"join: buyer starts with a dot", "POST", join, map[string]any{"buyer": ".b"}, nil, 400, actors.CodeBadRequest},
		{"join: unknown field", "POST", join, map[string]any{"buyer": "b9", "vip": true}, nil, 400, actors.CodeBadRequest},
		{"join: not JSON", "POST", join, raw("buyer=b9"), nil, 400, actors.CodeBadRequest},
		{"join: unknown sale", "POST", "/v1/sales/nope/queue", map[string]any{"buyer": "b9"}, nil, 404, actors.CodeNotFound},
		{"queue: unknown id", "GET", join + "/q_AAAAAAAAAAAAAAAAAAAAAA", nil, nil, 404, actors.CodeNotFound},

		// Holding seats.
		{"hold: empty object", "POST", holds, raw("{}"), buyer, 400, actors.CodeBadRequest},
		{"hold: zone a number", "POST", holds, map[string]any{"zone": 1, "quantity": 1}, buyer, 400, actors.CodeBadRequest},
		{"hold: quantity a string", "POST", holds, map[string]any{"zone": "ga", "quantity": "2"}, buyer, 400, actors.CodeBadRequest},
		{"hold: quantity fractional", "POST", holds, map[string]any{"zone": "ga", "quantity": 2.5}, buyer, 400, actors.CodeBadRequest},
		{"hold: quantity negative", "POST", holds, map[string]any{"zone": "ga", "quantity": -1}, buyer, 400, actors.CodeBadRequest},
		{"hold: quantity 0", "POST", holds, map[string]any{"zone": "ga", "quantity": 0}, buyer, 400, actors.CodeBadRequest},
		{"hold: quantity 101", "POST", holds, map[string]any{"zone": "ga", "quantity": 101}, buyer, 400, actors.CodeBadRequest},
		{"hold: quantity overflows", "POST", holds, raw(`{"zone":"ga","quantity":1e40}`), buyer, 400, actors.CodeBadRequest},
		{"hold: quantity and seats", "POST", holds, map[string]any{"zone": "vip", "quantity": 1, "seats": []string{"A-5"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: neither quantity nor seats", "POST", holds, map[string]any{"zone": "vip"}, buyer, 400, actors.CodeBadRequest},
		{"hold: seats a string", "POST", holds, map[string]any{"zone": "vip", "seats": "A-5"}, buyer, 400, actors.CodeBadRequest},
		{"hold: seats empty", "POST", holds, map[string]any{"zone": "vip", "seats": []string{}}, buyer, 400, actors.CodeBadRequest},
		{"hold: seats numbers", "POST", holds, map[string]any{"zone": "vip", "seats": []int{1}}, buyer, 400, actors.CodeBadRequest},
		{"hold: 101 seats", "POST", holds, map[string]any{"zone": "vip", "seats": manySeats}, buyer, 400, actors.CodeBadRequest},
		{"hold: seat 0", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"A-0"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: seat with a leading zero", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"A-05"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: seat of an unknown row", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"C-1"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: seat past the row", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"A-11"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: seat without a number", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"A"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: duplicate seats", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"A-5", "A-5"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: seats in general admission", "POST", holds, map[string]any{"zone": "ga", "seats": []string{"1"}}, buyer, 400, actors.CodeBadRequest},
		{"hold: unknown zone", "POST", holds, map[string]any{"zone": "balcony", "quantity": 1}, buyer, 400, actors.CodeBadRequest},
		{"hold: accept_alternative a string", "POST", holds, map[string]any{"zone": "ga", "quantity": 1, "accept_alternative": "yes"}, buyer, 400, actors.CodeBadRequest},
		{"hold: unknown field", "POST", holds, map[string]any{"zone": "ga", "qty": 1}, buyer, 400, actors.CodeBadRequest},
		{"hold: no token", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, nil, 403, actors.CodeNotAdmitted},
		{"hold: forged token", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, forged, 403, actors.CodeNotAdmitted},
		{"hold: garbage token", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, bearerHdr("not-a-token"), 403, actors.CodeNotAdmitted},
		{"hold: other sale's token", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, bearerHdr(tokT), 403, actors.CodeNotAdmitted},
		{"hold: admin token", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, admin, 403, actors.CodeNotAdmitted},
		{"hold: empty bearer", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, hdr{"Authorization", "Bearer "}, 403, actors.CodeNotAdmitted},
		{"hold: Idempotency-Key of 129", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, append(hdr{"Idempotency-Key", strings.Repeat("k", 129)}, buyer...), 400, actors.CodeBadRequest},
		{"hold: Idempotency-Key not ASCII", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, append(hdr{"Idempotency-Key", "clé"}, buyer...), 400, actors.CodeBadRequest},
		{"hold: Idempotency-Key with a tab", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, append(hdr{"Idempotency-Key", "a\tb"}, buyer...), 400, actors.CodeBadRequest},
		{"hold: empty Idempotency-Key", "POST", holds, map[string]any{"zone": "ga", "quantity": 1}, append(hdr{"Idempotency-Key", ""}, buyer...), 400, actors.CodeBadRequest},
		{"hold: over max_per_buyer", "POST", holds, map[string]any{"zone": "ga", "quantity": 5}, buyer, 422, actors.CodeLimitExceeded},
		{"hold: seat taken", "POST", holds, map[string]any{"zone": "vip", "seats": []string{"A-1"}}, bearerHdr(tokOther), 409, actors.CodeSeatsTaken},
		{"hold: unknown sale", "POST", "/v1/sales/nope/holds", map[string]any{"zone": "ga", "quantity": 1}, buyer, 404, actors.CodeNotFound},
		{"hold: body over 1 MiB", "POST", holds, big, buyer, 413, "payload_too_large"},

		// Reading and releasing holds.
		{"hold get: impossible id", "GET", "/v1/holds/h_short", nil, buyer, 404, actors.CodeNotFound},
		{"hold get: another buyer", "GET", "/v1/holds/" + h.HoldID, nil, bearerHdr(tokOther), 404, actors.CodeNotFound},
		{"hold delete: another buyer", "DELETE", "/v1/holds/" + h.HoldID, nil, bearerHdr(tokOther), 404, actors.CodeNotFound},
		{"hold delete: no token", "DELETE", "/v1/holds/" + h.HoldID, nil, nil, 403, actors.CodeNotAdmitted},
		{"hold delete: forged token", "DELETE", "/v1/holds/" + h.HoldID, nil, forged, 403, actors.CodeNotAdmitted},

		// Checkout.
		{"checkout: empty object", "POST", checkout, raw("{}"), buyer, 400, actors.CodeBadRequest},
		{"checkout: payment a string", "POST", checkout, pay("tok_visa"), buyer, 400, actors.CodeBadRequest},
		{"checkout: token empty", "POST", checkout, pay(map[string]any{"token": ""}), buyer, 400, actors.CodeBadRequest},
		{"checkout: token a number", "POST", checkout, pay(map[string]any{"token": 42}), buyer, 400, actors.CodeBadRequest},
		{"checkout: token too long", "POST", checkout, pay(map[string]any{"token": strings.Repeat("t", 257)}), buyer, 400, actors.CodeBadRequest},
		{"checkout: unknown field", "POST", checkout, pay(map[string]any{"token": "tok_visa", "cvc": "123"}), buyer, 400, actors.CodeBadRequest},
		{"checkout: bad Idempotency-Key", "POST", checkout, pay(map[string]any{"token": "tok_visa"}), append(hdr{"Idempotency-Key", strings.Repeat("k", 200)}, buyer...), 400, actors.CodeBadRequest},
		{"checkout: no token", "POST", checkout, pay(map[string]any{"token": "tok_visa"}), nil, 403, actors.CodeNotAdmitted},
		{"checkout: forged token", "POST", checkout, pay(map[string]any{"token": "tok_visa"}), forged, 403, actors.CodeNotAdmitted},
		{"checkout: other sale's token", "POST", checkout, pay(map[string]any{"token": "tok_visa"}), bearerHdr(tokT), 403, actors.CodeNotAdmitted},
		{"checkout: another buyer", "POST", checkout, pay(map[string]any{"token": "tok_visa"}), bearerHdr(tokOther), 404, actors.CodeNotFound},
		{"checkout: unknown hold", "POST", "/v1/holds/h_AAAAAAAAAAAAAAAAAAAAAA/checkout", pay(map[string]any{"token": "tok_visa"}), buyer, 404, actors.CodeNotFound},

		// Orders, admin actions, routes.
		{"order: impossible id", "GET", "/v1/orders/o_x", nil, nil, 404, actors.CodeNotFound},
		{"cancel: no admin token", "POST", "/v1/orders/" + orderID + "/cancel", nil, nil, 401, "unauthorized"},
		{"cancel: a buyer's token", "POST", "/v1/orders/" + orderID + "/cancel", nil, bearerHdr(tokOther), 401, "unauthorized"},
		{"cancel: unknown order", "POST", "/v1/orders/o_AAAAAAAAAAAAAAAAAAAAAA/cancel", nil, admin, 404, actors.CodeNotFound},
		{"pause: no admin token", "POST", "/v1/sales/s/pause", nil, nil, 401, "unauthorized"},
		{"availability: unknown zone", "GET", "/v1/sales/s/availability?zone=balcony", nil, nil, 404, actors.CodeNotFound},
		{"route: unknown", "GET", "/v2/sales", nil, nil, 404, actors.CodeNotFound},
		{"route: wrong method", "PUT", "/v1/sales/s", raw("{}"), admin, 405, "method_not_allowed"},
	}
	// Bad free text names its field and says what is wrong with it.
	wantMessage := map[string]string{
		"sale: name with a NUL":             "name: must not contain control characters",
		"sale: name with a C1 control":      "name: must not contain control characters",
		"sale: zone name with a tab":        "zones[0].name: must not contain control characters",
		"sale: zone name with a C1 control": "zones[0].name: must not contain control characters",
		"sale: currency upper case":         "currency: must be an ISO 4217 code in lower case, such as eur or usd",
		"sale: currency four letters":       "currency: must be an ISO 4217 code in lower case, such as eur or usd",
	}
	requireTrue(t, len(cases) >= 60, "at least 60 bad requests, have %d", len(cases))
	t.Logf("%d bad requests", len(cases))
	for _, c := range cases {
		var r response
		if b, ok := c.body.(oversize); ok {
			r = ts.rawSend(t, c.method, c.path, b, c.h)
		} else {
			r = ts.do(t, c.method, c.path, c.body, c.h)
		}
		e := requireError(t, r, c.status, c.code, c.name)
		if want, ok := wantMessage[c.name]; ok {
			requireEqual(t, e.Error.Message, want, c.name)
		}
	}

	after := snapshotState(t, ts, "s", h.HoldID, tok)
	requireEqual(t, after, before, "bad requests changed nothing")
	requireStatus(t, ts.do(t, "GET", "/v1/sales/new-sale", nil), 404, "no sale was created")
	requireStatus(t, ts.do(t, "GET", "/healthz", nil), 200, "healthy")
	requireStatus(t, ts.do(t, "GET", "/readyz", nil), 200, "ready")
	ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"B-1"}})
	requireStatus(t, ts.checkout(t, h.HoldID, tok, "tok_visa", "good"), 201, "a valid request works")
}

// oversize is a body over 1 MiB, sent on a raw connection (see rawSend).
type oversize []byte

// snapshotState is what a bad request must not change: the sale, its stock
// and seat map, its line, a hold.
func snapshotState(t testing.TB, ts *testServer, sale, holdID, tok string) string {
	t.Helper()
	s := ts.sale(t, sale)
	seats := ts.do(t, "GET", "/v1/sales/"+sale+"/availability?zone=vip", nil)
	requireStatus(t, seats, 200)
	hold := ts.do(t, "GET", "/v1/holds/"+holdID, nil, bearerHdr(tok))
	requireStatus(t, hold, 200)
	var hv holdView
	hold.decode(t, &hv)
	hv.ExpiresInS = 0 // a clock, not state
	b, err := json.Marshal([]any{s.Sale, s.Zones, s.Queue.State, s.Queue.Waiting, s.Queue.Admitted, s.Queue.AdmittedTotal,
		json.RawMessage(seats.Body), ts.counts(t, sale), hv})
	requireNoErr(t, err)
	return string(b)
}
