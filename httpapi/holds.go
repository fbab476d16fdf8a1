package httpapi

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"onsale/actors"
	"onsale/actors/seats"
)

type holdInput struct {
	Zone              *string  `json:"zone"`
	Quantity          *int     `json:"quantity"`
	Seats             []string `json:"seats"`
	AcceptAlternative *bool    `json:"accept_alternative"`
}

// holdJSON is a hold as API.md shows it.
type holdJSON struct {
	HoldID     string   `json:"hold_id"`
	Sale       string   `json:"sale"`
	Zone       string   `json:"zone"`
	Seats      []string `json:"seats"`
	State      string   `json:"state"`
	ExpiresAt  string   `json:"expires_at"`
	ExpiresInS int64    `json:"expires_in_s"`
	Amount     int64    `json:"amount_cents"`
	OrderID    string   `json:"order_id,omitempty"`
}

func (s *Server) holdBody(h *actors.HoldView) holdJSON {
	left := max((h.ExpiresAt-s.cfg.Now().UnixMilli()+999)/1000, 0)
	if h.State != "active" {
		left = 0
	}
	return holdJSON{
		HoldID: h.ID, Sale: h.Sale, Zone: h.Zone, Seats: h.Seats, State: h.State,
		ExpiresAt: fmtMs(h.ExpiresAt), ExpiresInS: left, Amount: h.Amount, OrderID: h.OrderID,
	}
}

// orderJSON is an order as API.md shows it.
type orderJSON struct {
	OrderID     string   `json:"order_id"`
	HoldID      string   `json:"hold_id"`
	Sale        string   `json:"sale"`
	Zone        string   `json:"zone"`
	Seats       []string `json:"seats"`
	Amount      int64    `json:"amount_cents"`
	Currency    string   `json:"currency"`
	State       string   `json:"state"`
	PaidAt      string   `json:"paid_at"`
	CancelledAt string   `json:"cancelled_at,omitempty"`
}

func orderBody(o *actors.OrderView) orderJSON {
	v := orderJSON{OrderID: o.ID, HoldID: o.HoldID, Sale: o.Sale, Zone: o.Zone, Seats: o.Seats,
		Amount: o.Amount, Currency: o.Currency, State: o.State, PaidAt: fmtMs(o.PaidAt)}
	if o.CancelledAt != 0 {
		v.CancelledAt = fmtMs(o.CancelledAt)
	}
	return v
}

func fmtMs(ms int64) string { return actors.FormatTime(time.UnixMilli(ms)) }

func badRequest(ctx *fasthttp.RequestCtx, format string, args ...any) {
	fail(ctx, actors.CodeBadRequest, fmt.Sprintf(format, args...))
}

func (s *Server) createHold(ctx *fasthttp.RequestCtx, sale *actors.Sale) {
	var in holdInput
	if !decode(ctx, &in) {
		return
	}
	if in.Zone == nil {
		badRequest(ctx, "zone: is required")
		return
	}
	exists, reserved := sale.Zone(*in.Zone)
	if !exists {
		badRequest(ctx, "zone: sale %q has no zone %q", sale.ID(), *in.Zone)
		return
	}
	req := actors.HoldRequest{Zone: *in.Zone, Seats: in.Seats}
	switch {
	case in.Quantity != nil && in.Seats != nil:
		badRequest(ctx, "give quantity or seats, not both")
		return
	case in.Quantity != nil:
		if *in.Quantity < 1 || *in.Quantity > seats.HoldSeatsMax {
			badRequest(ctx, "quantity: must be 1 to %d", seats.HoldSeatsMax)
			return
		}
		req.Quantity = *in.Quantity
	case in.Seats != nil:
		if !reserved {
			badRequest(ctx, "seats: zone %q is general admission; ask for a quantity", *in.Zone)
			return
		}
		if len(in.Seats) < 1 || len(in.Seats) > seats.HoldSeatsMax {
			badRequest(ctx, "seats: must name 1 to %d seats", seats.HoldSeatsMax)
			return
		}
		seen := make(map[string]bool, len(in.Seats))
		for _, seat := range in.Seats {
			if !sale.ValidSeat(*in.Zone, seat) {
				badRequest(ctx, "seats: zone %q has no seat %q", *in.Zone, seat)
				return
			}
			if seen[seat] {
				badRequest(ctx, "seats: seat %q is named twice", seat)
				return
			}
			seen[seat] = true
		}
	default:
		badRequest(ctx, "give quantity (a number of seats) or seats (a list of seat ids)")
		return
	}
	if in.AcceptAlternative != nil {
		req.AcceptAlternative = *in.AcceptAlternative
	}
	key, ok := idemKey(ctx)
	if !ok {
		return
	}
	claims, ok := s.access(ctx, sale)
	if !ok || !s.limitBuyer(ctx, claims.Buyer) {
		return
	}
	req.Buyer, req.IdemKey = claims.Buyer, key
	r := sale.Hold(req)
	if r.Err != nil {
		writeError(ctx, r.Err)
		return
	}
	sale.HoldPlaced(claims.ID)
	// The hot path: written by hand, not by reflection
	// (TestHoldAppendJSON checks that the two agree).
	ctx.SetStatusCode(201)
	ctx.SetContentType("application/json")
	ctx.SetBody(s.holdBody(r.Hold).appendJSON(ctx.Response.Body()[:0]))
}

// holdAuth returns who asks about a hold: the admin, or the buyer of a valid
// access token for the hold's sale.
func (s *Server) holdAuth(ctx *fasthttp.RequestCtx, eng *actors.Engine, holdID string) (buyer string, admin bool) {
	if s.isAdmin(ctx) {
		return "", true
	}
	c, ok := s.claims(ctx)
	if !ok {
		return "", false
	}
	sale, ok := eng.HoldSale(holdID)
	if !ok || sale.ID() != c.Sale || sale.Revoked(c.ID) {
		return "", false
	}
	return c.Buyer, false
}

// releaseAuth answers a buyer's DELETE of a hold that its token does not
// allow, as for any change of inventory (API.md, Authentication): without a
// valid access token for the hold's sale 403, before anything reveals
// whether the hold exists. A valid token of another buyer goes on to the
// owner check, which answers 404.
func (s *Server) releaseAuth(ctx *fasthttp.RequestCtx, eng *actors.Engine, holdID string) bool {
	sale, found := eng.HoldSale(holdID)
	if !found {
		if _, ok := s.claims(ctx); !ok {
			fail(ctx, actors.CodeNotAdmitted, "releasing a hold needs a valid access token for its sale")
			return false
		}
		return true // the owner check answers 404
	}
	_, ok := s.access(ctx, sale)
	return ok
}

func (s *Server) routeHolds(ctx *fasthttp.RequestCtx, eng *actors.Engine, parts []string) string {
	if len(parts) == 0 || len(parts) > 2 || (len(parts) == 2 && parts[1] != "checkout") {
		fail(ctx, actors.CodeNotFound, "no such resource")
		return "unknown"
	}
	id := parts[0]
	if len(parts) == 2 {
		if method(ctx, "POST") {
			s.checkout(ctx, eng, id)
		}
		return "/v1/holds/{hold}/checkout"
	}
	if !method(ctx, "GET", "DELETE") {
		return "/v1/holds/{hold}"
	}
	if string(ctx.Method()) == "DELETE" && !s.isAdmin(ctx) && !s.releaseAuth(ctx, eng, id) {
		return "/v1/holds/{hold}"
	}
	buyer, admin := s.holdAuth(ctx, eng, id)
	if buyer == "" && !admin {
		fail(ctx, actors.CodeNotFound, "no such hold")
		return "/v1/holds/{hold}"
	}
	if buyer != "" && !s.limitBuyer(ctx, buyer) {
		return "/v1/holds/{hold}"
	}
	var r actors.Result
	if string(ctx.Method()) == "DELETE" {
		r = eng.ReleaseHold(id, buyer, admin)
	} else {
		r = eng.GetHold(id, buyer, admin)
	}
	answer(ctx, r, 200, func() any { return s.holdBody(r.Hold) })
	return "/v1/holds/{hold}"
}

type checkoutInput struct {
	Payment *struct {
		Token *string `json:"token"`
	} `json:"payment"`
}

// paymentTokenBytesMax bounds a payment token; real ones are short.
const paymentTokenBytesMax = 256

func (s *Server) checkout(ctx *fasthttp.RequestCtx, eng *actors.Engine, holdID string) {
	var in checkoutInput
	if !decode(ctx, &in) {
		return
	}
	if in.Payment == nil || in.Payment.Token == nil || *in.Payment.Token == "" || len(*in.Payment.Token) > paymentTokenBytesMax {
		badRequest(ctx, "payment.token: is required (1 to %d characters)", paymentTokenBytesMax)
		return
	}
	key, ok := idemKey(ctx)
	if !ok {
		return
	}
	sale, found := eng.HoldSale(holdID)
	if !found {
		// The token decides between 403 and 404: without a valid one, say
		// not admitted, as for any inventory change.
		if _, ok := s.claims(ctx); !ok {
			fail(ctx, actors.CodeNotAdmitted, "this needs a valid access token for this sale")
			return
		}
		fail(ctx, actors.CodeNotFound, "no such hold")
		return
	}
	claims, ok := s.access(ctx, sale)
	if !ok || !s.limitBuyer(ctx, claims.Buyer) {
		return
	}
	// The engine's own payer: on a cluster, bound to the leadership that
	// built the engine (inEpoch).
	payer := eng.Payer()
	if payer == nil {
		payer = s.pay
	}
	r := eng.Checkout(actors.CheckoutRequest{HoldID: holdID, Buyer: claims.Buyer, PaymentToken: *in.Payment.Token, IdemKey: key}, payer)
	if r.Err == nil {
		sale.CheckoutDone(claims.ID)
	}
	answer(ctx, r, 201, func() any { return orderBody(r.Order) })
}

func (s *Server) routeOrders(ctx *fasthttp.RequestCtx, eng *actors.Engine, parts []string) string {
	switch {
	case len(parts) == 1:
		if method(ctx, "GET") {
			r := eng.GetOrder(parts[0])
			answer(ctx, r, 200, func() any { return orderBody(r.Order) })
		}
		return "/v1/orders/{order}"
	case len(parts) == 2 && parts[1] == "cancel":
		if method(ctx, "POST") && s.requireAdmin(ctx) {
			r := eng.CancelOrder(parts[0], s.pay)
			answer(ctx, r, 200, func() any { return orderBody(r.Order) })
		}
		return "/v1/orders/{order}/cancel"
	}
	fail(ctx, actors.CodeNotFound, "no such resource")
	return "unknown"
}

// appendJSON appends h as encoding/json would write it, plus a newline.
func (h holdJSON) appendJSON(b []byte) []byte {
	b = append(b, `{"hold_id":`...)
	b = appendJSONString(b, h.HoldID)
	b = append(b, `,"sale":`...)
	b = appendJSONString(b, h.Sale)
	b = append(b, `,"zone":`...)
	b = appendJSONString(b, h.Zone)
	b = append(b, `,"seats":[`...)
	for i, seat := range h.Seats {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, seat)
	}
	b = append(b, `],"state":`...)
	b = appendJSONString(b, h.State)
	b = append(b, `,"expires_at":`...)
	b = appendJSONString(b, h.ExpiresAt)
	b = append(b, `,"expires_in_s":`...)
	b = strconv.AppendInt(b, h.ExpiresInS, 10)
	b = append(b, `,"amount_cents":`...)
	b = strconv.AppendInt(b, h.Amount, 10)
	if h.OrderID != "" {
		b = append(b, `,"order_id":`...)
		b = appendJSONString(b, h.OrderID)
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string. The escapes match
// encoding/json's: quote, backslash, control characters, and <, >, & and
// U+2028/U+2029 as \u escapes; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
