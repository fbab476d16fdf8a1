package httpapi

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// saleInput is POST /v1/sales as sent. Numbers are pointers so that an
// explicit 0 is told apart from an absent field: absent takes the default,
// 0 where the range starts at 1 is refused.
type saleInput struct {
	ID          *string     `json:"id"`
	Name        *string     `json:"name"`
	OpensAt     *string     `json:"opens_at"`
	Currency    *string     `json:"currency"`
	HoldTTLS    *int        `json:"hold_ttl_s"`
	MaxPerBuyer *int        `json:"max_per_buyer"`
	WaitingRoom *roomInput  `json:"waiting_room"`
	Zones       []zoneInput `json:"zones"`
}

type roomInput struct {
	ActiveLimit *int `json:"active_limit"`
	AdmitPerS   *int `json:"admit_per_s"`
	AccessTTLS  *int `json:"access_ttl_s"`
}

type zoneInput struct {
	ID         *string    `json:"id"`
	Name       *string    `json:"name"`
	PriceCents *int64     `json:"price_cents"`
	Capacity   *int       `json:"capacity"`
	Rows       []rowInput `json:"rows"`
}

type rowInput struct {
	Row   *string `json:"row"`
	Seats *int    `json:"seats"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// positive turns an optional number into Normalize's form (0 = absent) and
// refuses an explicit value below 1.
func positive(field string, p *int) (int, *actors.Error) {
	if p == nil {
		return 0, nil
	}
	if *p < 1 {
		return 0, &actors.Error{Code: actors.CodeBadRequest, Message: field + ": must be at least 1"}
	}
	return *p, nil
}

// saleDef turns the input into a definition; Normalize checks the rest.
func (in *saleInput) saleDef() (actors.SaleDef, *actors.Error) {
	var d actors.SaleDef
	var err *actors.Error
	if in.ID == nil {
		return d, &actors.Error{Code: actors.CodeBadRequest, Message: "id: is required"}
	}
	d.ID, d.Name = *in.ID, str(in.Name)
	if in.Name != nil && *in.Name == "" {
		return d, &actors.Error{Code: actors.CodeBadRequest, Message: "name: must not be empty"}
	}
	if in.OpensAt != nil {
		if *in.OpensAt == "" {
			return d, &actors.Error{Code: actors.CodeBadRequest, Message: "opens_at: must be an RFC 3339 time"}
		}
		d.OpensAt = *in.OpensAt
	}
	if in.Currency != nil {
		if *in.Currency == "" {
			return d, &actors.Error{Code: actors.CodeBadRequest, Message: "currency: must be an ISO 4217 code in lower case, such as eur"}
		}
		d.Currency = *in.Currency
	}
	if d.HoldTTLS, err = positive("hold_ttl_s", in.HoldTTLS); err != nil {
		return d, err
	}
	if d.MaxPerBuyer, err = positive("max_per_buyer", in.MaxPerBuyer); err != nil {
		return d, err
	}
	if w := in.WaitingRoom; w != nil {
		if d.WaitingRoom.ActiveLimit, err = positive("waiting_room.active_limit", w.ActiveLimit); err != nil {
			return d, err
		}
		if d.WaitingRoom.AccessTTLS, err = positive("waiting_room.access_ttl_s", w.AccessTTLS); err != nil {
			return d, err
		}
		if w.AdmitPerS != nil {
			d.WaitingRoom.AdmitPerS = *w.AdmitPerS
		}
	}
	for i, z := range in.Zones {
		f := fmt.Sprintf("zones[%d]", i)
		if z.ID == nil {
			return d, &actors.Error{Code: actors.CodeBadRequest, Message: f + ".id: is required"}
		}
		zd := actors.ZoneDef{ID: *z.ID, Name: str(z.Name)}
		if z.PriceCents != nil {
			if *z.PriceCents < 0 {
				return d, &actors.Error{Code: actors.CodeBadRequest, Message: f + ".price_cents: must not be negative"}
			}
			zd.PriceCents = *z.PriceCents
		}
		if zd.Capacity, err = positive(f+".capacity", z.Capacity); err != nil {
			return d, err
		}
		if z.Rows != nil && len(z.Rows) == 0 {
			return d, &actors.Error{Code: actors.CodeBadRequest, Message: f + ".rows: must list at least one row"}
		}
		for j, r := range z.Rows {
			rf := fmt.Sprintf("%s.rows[%d]", f, j)
			if r.Row == nil {
				return d, &actors.Error{Code: actors.CodeBadRequest, Message: rf + ".row: is required"}
			}
			if r.Seats == nil {
				return d, &actors.Error{Code: actors.CodeBadRequest, Message: rf + ".seats: is required"}
			}
			n, err := positive(rf+".seats", r.Seats)
			if err != nil {
				return d, err
			}
			zd.Rows = append(zd.Rows, actors.RowDef{Row: *r.Row, Seats: n})
		}
		d.Zones = append(d.Zones, zd)
	}
	return d, nil
}

// saleJSON is GET /v1/sales/{sale}.
type saleJSON struct {
	Sale  actors.SaleDef      `json:"sale"`
	Zones []actors.ZoneCounts `json:"zones"`
	Queue actors.QueueSummary `json:"queue"`
}

func saleBody(s *actors.Sale) any {
	return saleJSON{Sale: s.Def(), Zones: s.Counts(), Queue: s.Queue()}
}

func (s *Server) routeSales(ctx *fasthttp.RequestCtx, eng *actors.Engine, parts []string) string {
	if len(parts) == 0 {
		if method(ctx, "GET", "POST") {
			if ctx.IsPost() {
				s.createSale(ctx, eng)
			} else {
				s.listSales(ctx, eng)
			}
		}
		return "/v1/sales"
	}
	sale, ok := eng.Sale(parts[0])
	if !ok || !actors.ValidID(parts[0]) {
		fail(ctx, actors.CodeNotFound, fmt.Sprintf("no sale %q", parts[0]))
		return "/v1/sales/{sale}"
	}
	rest := parts[1:]
	switch {
	case len(rest) == 0:
		if method(ctx, "GET") {
			writeJSON(ctx, 200, saleBody(sale))
		}
		return "/v1/sales/{sale}"
	case len(rest) == 1 && (rest[0] == "pause" || rest[0] == "resume"):
		if method(ctx, "POST") && s.requireAdmin(ctx) {
			r := sale.SetPaused(rest[0] == "pause")
			answer(ctx, r, 200, func() any { return saleBody(sale) })
		}
		return "/v1/sales/{sale}/" + rest[0]
	case len(rest) == 1 && rest[0] == "availability":
		if method(ctx, "GET") {
			s.availability(ctx, sale)
		}
		return "/v1/sales/{sale}/availability"
	case len(rest) == 1 && rest[0] == "holds":
		if method(ctx, "POST") {
			s.createHold(ctx, sale)
		}
		return "/v1/sales/{sale}/holds"
	case len(rest) == 1 && rest[0] == "draw":
		if method(ctx, "GET") {
			s.draw(ctx, sale)
		}
		return "/v1/sales/{sale}/draw"
	case rest[0] == "queue":
		return s.routeQueue(ctx, sale, rest[1:])
	}
	fail(ctx, actors.CodeNotFound, "no such resource")
	return "unknown"
}

func (s *Server) createSale(ctx *fasthttp.RequestCtx, eng *actors.Engine) {
	var in saleInput
	if !decode(ctx, &in) {
		return
	}
	def, err := in.saleDef()
	if err == nil {
		err = def.Normalize(s.cfg.Now())
	}
	if err != nil {
		writeError(ctx, err)
		return
	}
	if !s.requireAdmin(ctx) {
		return
	}
	sale, err := eng.CreateSale(def)
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeJSON(ctx, 201, saleBody(sale))
}
