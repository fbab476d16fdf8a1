package httpapi

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// Fuzz targets for every request decoder. The seeds run under plain go test;
// go test -fuzz=FuzzX ./httpapi/ explores further. The sale decoder is fuzzed
// as a function (decodeJSON, saleDef, Normalize: what createSale runs); the
// others through the handler itself, in process, so that the fuzzed path is
// exactly the handler's decode and validation.

var fuzzNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func FuzzSaleInput(f *testing.F) {
	for _, seed := range []string{
		`{"id":"final-2026","name":"Cup Final","opens_at":"2026-12-01T10:00:00.000Z","hold_ttl_s":600,"max_per_buyer":6,
		  "waiting_room":{"active_limit":5000,"admit_per_s":0,"access_ttl_s":900},
		  "zones":[{"id":"ga","name":"General admission","price_cents":4500,"capacity":40000},
		           {"id":"vip","name":"VIP","price_cents":25000,"rows":[{"row":"A","seats":20},{"row":"B","seats":20}]}]}`,
		`{"id":"m","zones":[{"id":"ga","capacity":1}]}`,
		`{"id":"t","opens_at":"2030-01-01T12:00:00.123456789+02:00","zones":[{"id":"r","rows":[{"row":"A","seats":1000}]}]}`,
		`{"id":"x","hold_ttl_s":0,"zones":[{"id":"ga","capacity":1}]}`,
		`{"id":"x","zones":[{"id":"a","capacity":1},{"id":"a","capacity":1}]}`,
		`{"id":"x","zones":[{"id":"a","rows":[{"row":"A","seats":1},{"row":"A","seats":1}]}]}`,
		`{"id":"x","zones":[{"id":"a","capacity":1000000},{"id":"b","capacity":1000000},{"id":"c","capacity":1}]}`,
		`{"id":"x","zones":[{"id":"a","capacity":1,"rows":[{"row":"A","seats":1}]}]}`,
		`{"id":"x","waiting_room":{"admit_per_s":-1},"zones":[{"id":"a","capacity":1}]}`,
		`{"id":"x","zones":[{"id":"a","capacity":1,"price_cents":-5}]}`,
		`{"id":"x","zones":[{"id":"a","rows":[]}]}`,
		`{"id":"x","zones":[{"id":"a","rows":[{"row":"A"}]}]}`,
		`{"id":"x","unknown":1}`,
		`{"id":"x"} trailing`,
		`{"id":1e400}`,
		`{"id":"x","hold_ttl_s":1e30}`,
		`{"id":"x","name":"\ud800"}`,
		`[]`, `null`, ``, `{`, `{"zones":null}`, `{"id":"x","zones":[null]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in saleInput
		if err := decodeJSON(body, &in); err != nil {
			requireTrue(t, err.Error() != "", "decode errors explain themselves")
			return
		}
		def, e := in.saleDef()
		if e == nil {
			e = def.Normalize(fuzzNow)
		}
		if e != nil {
			requireEqual(t, e.Code, actors.CodeBadRequest, "a refused definition is a bad request")
			requireTrue(t, strings.Contains(e.Message, ":"), "the message names a field: %q", e.Message)
			return
		}
		// An accepted definition is within API.md's ranges, in canonical
		// form, and stays the same when normalized again.
		requireTrue(t, actors.ValidID(def.ID), "id %q", def.ID)
		requireTrue(t, def.Name != "", "name filled in")
		requireTrue(t, rfc3339Ms.MatchString(def.OpensAt), "opens_at %q canonical", def.OpensAt)
		requireTrue(t, def.HoldTTLS >= 1 && def.HoldTTLS <= 3600, "hold_ttl_s %d", def.HoldTTLS)
		requireTrue(t, def.MaxPerBuyer >= 1 && def.MaxPerBuyer <= 100, "max_per_buyer %d", def.MaxPerBuyer)
		w := def.WaitingRoom
		requireTrue(t, w.ActiveLimit >= 1 && w.ActiveLimit <= 1_000_000, "active_limit %d", w.ActiveLimit)
		requireTrue(t, w.AdmitPerS >= 0 && w.AdmitPerS <= 100_000, "admit_per_s %d", w.AdmitPerS)
		requireTrue(t, w.AccessTTLS >= 1 && w.AccessTTLS <= 86_400, "access_ttl_s %d", w.AccessTTLS)
		requireTrue(t, len(def.Zones) >= 1 && len(def.Zones) <= 100, "zones %d", len(def.Zones))
		seats, ids := 0, map[string]bool{}
		for _, z := range def.Zones {
			requireTrue(t, actors.ValidID(z.ID) && !ids[z.ID], "zone id %q valid and unique", z.ID)
			ids[z.ID] = true
			requireTrue(t, (z.Capacity > 0) != (len(z.Rows) > 0), "zone %q is GA or reserved", z.ID)
			requireTrue(t, z.PriceCents >= 0, "price of %q", z.ID)
			seats += z.Capacity
			rows := map[string]bool{}
			for _, r := range z.Rows {
				requireTrue(t, r.Seats >= 1 && r.Seats <= 1000 && !rows[r.Row], "row %+v", r)
				rows[r.Row] = true
				seats += r.Seats
			}
		}
		requireTrue(t, seats <= 2_000_000, "seats %d", seats)
		again := def
		again.Zones = append([]actors.ZoneDef(nil), def.Zones...)
		requireTrue(t, again.Normalize(fuzzNow) == nil, "normalizing again is accepted")
		a, _ := json.Marshal(def)
		b, _ := json.Marshal(again)
		requireEqual(t, string(b), string(a), "normalizing is idempotent")
	})
}

// fuzzServer is a server without fsync (the fuzzed requests may change
// state) with sale "s" and one admitted buyer.
type fuzzServer struct {
	*testServer
	tok    string
	holdID string
}

func newFuzzServer(f *testing.F) *fuzzServer {
	ts := startServer(f, withNoSync())
	ts.createSale(f, newSaleSpec("s").with("max_per_buyer", 100))
	fs := &fuzzServer{testServer: ts, tok: ts.admit(f, "s", "fuzzer")}
	fs.holdID = ts.mustHold(f, "s", fs.tok, map[string]any{"zone": "ga", "quantity": 1}).HoldID
	return fs
}

// serve runs one request through the server's root handler in process.
func (ts *testServer) serve(method, uri string, body []byte, h hdr) (int, []byte, string) {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	for i := 0; i+1 < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	ts.srv.handle(&ctx)
	return ctx.Response.StatusCode(), bytes.Clone(ctx.Response.Body()), string(ctx.Response.Header.ContentType())
}

// requireAnswer checks an in-process answer: a status from the allowed set,
// and for an error the JSON shape with the code that status implies.
func requireAnswer(t *testing.T, status int, body []byte, ctype string, allowed ...int) map[string]any {
	t.Helper()
	ok := false
	for _, a := range allowed {
		ok = ok || status == a
	}
	requireTrue(t, ok, "status %d (%s) not in %v", status, body, allowed)
	r := response{Status: status, Header: map[string][]string{"Content-Type": {ctype}}, Body: body}
	if status >= 400 {
		var e errorBody
		r.decode(t, &e)
		requireEqual(t, statusOf(e.Error.Code), status, "code %q for status %d", e.Error.Code, status)
		requireErrorShape(t, r, e.Error.Code)
		return nil
	}
	return r.object(t)
}

func FuzzHoldRequest(f *testing.F) {
	fs := newFuzzServer(f)
	for _, seed := range []struct {
		body  string
		token bool
		key   string
	}{
		{`{"zone":"ga","quantity":2}`, true, ""},
		{`{"zone":"vip","seats":["A-3","A-4"]}`, true, "k1"},
		{`{"zone":"vip","seats":["A-3"],"accept_alternative":true}`, true, ""},
		{`{"zone":"vip","seats":["A-3","A-3"]}`, true, ""},
		{`{"zone":"ga","seats":["1"]}`, true, ""},
		{`{"zone":"ga","quantity":0}`, true, ""},
		{`{"zone":"ga","quantity":101}`, false, ""},
		{`{"zone":"nope","quantity":1}`, true, ""},
		{`{"zone":"vip","seats":["A-01","B-1"]}`, true, ""},
		{`{"zone":"vip","seats":["-1"]}`, true, ""},
		{`{"zone":"vip","seats":["A--1"]}`, true, ""},
		{`{"zone":"vip","seats":[null]}`, true, ""},
		{`{"zone":"vip","quantity":1,"seats":[]}`, true, ""},
		{`{"zone":"ga","quantity":1}`, true, strings.Repeat("k", 129)},
		{`{"zone":"ga","quantity":1}`, true, "\x01"},
		{`{"zone":"ga","quantity":9223372036854775807}`, true, ""},
		{`{"zone":"ga","quantity":-9223372036854775808}`, true, ""},
		{`{}`, true, ""}, {`null`, true, ""}, {`{"zone":null}`, true, ""}, {``, false, ""},
	} {
		f.Add([]byte(seed.body), seed.token, seed.key)
	}
	f.Fuzz(func(t *testing.T, body []byte, withToken bool, key string) {
		var h hdr
		if withToken {
			h = append(h, "Authorization", "Bearer "+fs.tok)
		}
		if key != "" {
			h = append(h, "Idempotency-Key", key)
		}
		status, out, ct := fs.serve("POST", "/v1/sales/s/holds", body, h)
		if !withToken {
			requireAnswer(t, status, out, ct, 400, 403)
			return
		}
		got := requireAnswer(t, status, out, ct, 201, 400, 409, 422)
		if status == 201 {
			requireEqual(t, got["state"], any("active"))
			requireEqual(t, got["sale"], any("s"))
		}
	})
}

func FuzzCheckoutRequest(f *testing.F) {
	fs := newFuzzServer(f)
	for _, seed := range []struct {
		hold, body string
		token      bool
	}{
		{"", `{"payment":{"token":"tok_decline"}}`, true},
		{"", `{"payment":{"token":"tok_error"}}`, true},
		{"", `{"payment":{"token":""}}`, true},
		{"", `{"payment":{"token":"tok_visa","cvc":1}}`, true},
		{"", `{"payment":"tok_visa"}`, true},
		{"", `{"payment":null}`, true},
		{"", `{}`, false},
		{"h_AAAAAAAAAAAAAAAAAAAAAA", `{"payment":{"token":"tok_visa"}}`, true},
		{"h_AAAAAAAAAAAAAAAAAAAAAA", `{"payment":{"token":"tok_visa"}}`, false},
		{"h_////////////////////////", `{"payment":{"token":"tok_visa"}}`, true},
		{"o_AAAAAAAAAAAAAAAAAAAAAA", `{"payment":{"token":"tok_visa"}}`, true},
		{"", `{"payment":{"token":"` + strings.Repeat("t", 257) + `"}}`, true},
		{"", `{"payment":{"token":"tok_visa"}}`, true},
	} {
		f.Add(seed.hold, []byte(seed.body), seed.token)
	}
	f.Fuzz(func(t *testing.T, hold string, body []byte, withToken bool) {
		if hold == "" {
			hold = fs.holdID
		}
		var h hdr
		if withToken {
			h = hdr{"Authorization", "Bearer " + fs.tok}
		}
		status, out, ct := fs.serve("POST", "/v1/holds/"+url.PathEscape(hold)+"/checkout", body, h)
		got := requireAnswer(t, status, out, ct, 201, 400, 402, 403, 404, 405, 409, 410, 422, 502)
		if status == 201 {
			requireEqual(t, got["state"], any("paid"))
			requireEqual(t, got["hold_id"], any(hold))
		}
	})
}

func FuzzJoinRequest(f *testing.F) {
	fs := newFuzzServer(f)
	for _, seed := range []string{
		`{"buyer":"b-123"}`, `{"buyer":""}`, `{"buyer":"a b"}`, `{"buyer":".x"}`,
		`{"buyer":"` + strings.Repeat("b", 64) + `"}`, `{"buyer":"` + strings.Repeat("b", 65) + `"}`,
		`{"buyer":5}`, `{"buyer":null}`, `{"buyer":"x","extra":1}`, `{}`, `[]`, `"b"`, ``,
		`{"buyer":"\u0000"}`, `{"buyer":"é"}`, `{"buyer":"x"}{"buyer":"y"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		status, out, ct := fs.serve("POST", "/v1/sales/s/queue", body, nil)
		got := requireAnswer(t, status, out, ct, 200, 400)
		if status != 200 {
			return
		}
		var in struct{ Buyer string }
		requireNoErr(t, json.Unmarshal(body, &in))
		requireTrue(t, actors.ValidID(in.Buyer), "joined with a valid buyer id %q", in.Buyer)
		q, _ := got["queue_id"].(string)
		requireTrue(t, strings.HasPrefix(q, "q_"), "queue id %q", q)
	})
}

// FuzzAccessToken: the token decoder never panics, accepts only what the
// key signed, and reads back what was signed.
func FuzzAccessToken(f *testing.F) {
	s := newSigner([]byte("fuzz key"))
	good := s.sign(accessClaims{Sale: "s", Buyer: "b", ID: "q_1", Expires: 1})
	for _, seed := range []string{good, good + "x", "x" + good, ".", "", "a.b", strings.Repeat("A", 600) + ".x",
		good[:strings.IndexByte(good, '.')] + ".", "AQ." + good[strings.IndexByte(good, '.')+1:]} {
		f.Add(seed, "s", "b", "q_1", int64(1))
	}
	f.Fuzz(func(t *testing.T, tok, sale, buyer, id string, exp int64) {
		if c, err := s.verify(tok); err == nil {
			// Only a signed payload verifies; signing its claims again gives a
			// token that reads the same.
			c2, err := s.verify(s.sign(c))
			requireNoErr(t, err)
			requireEqual(t, c2, c)
		}
		if len(sale) > 64 || len(buyer) > 64 || len(id) > 64 {
			return // ids are at most 64 bytes
		}
		want := accessClaims{Sale: sale, Buyer: buyer, ID: id, Expires: exp}
		got, err := s.verify(s.sign(want))
		requireNoErr(t, err, "a signed token verifies")
		requireEqual(t, got, want)
		_, err = newSigner([]byte("other key")).verify(s.sign(want))
		requireTrue(t, err != nil, "another key's signature is refused")
	})
}
