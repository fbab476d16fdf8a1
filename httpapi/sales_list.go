package httpapi

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// salesPageMax is how many sales one GET /v1/sales answer lists (API.md):
// enough for a front page, small enough that the answer stays a few KiB.
const salesPageMax = 100

// saleListItem is one sale of GET /v1/sales: what a buyer needs to pick a
// sale, nothing an organizer has not published.
type saleListItem struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	OpensAt string        `json:"opens_at"`
	Queue   saleListQueue `json:"queue"`
}

type saleListQueue struct {
	State string `json:"state"`
}

type saleListJSON struct {
	Sales []saleListItem `json:"sales"`
	Next  string         `json:"next,omitempty"`
}

// listCursor is where a page of the list goes on: after the sale that
// opens at opensAt (unix ms) with that id. On the wire it is opaque.
type listCursor struct {
	opensAt int64
	id      string
}

func (c listCursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.opensAt, 10) + ":" + c.id))
}

func parseListCursor(s string) (listCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listCursor{}, false
	}
	ms, id, ok := strings.Cut(string(b), ":")
	if !ok || !actors.ValidID(id) {
		return listCursor{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return listCursor{}, false
	}
	return listCursor{opensAt: n, id: id}, true
}

// listOrder orders sales by opening time, then id, as API.md lists them.
func listOrder(a, b *actors.Sale) int {
	if a.OpensAt() != b.OpensAt() {
		if a.OpensAt() < b.OpensAt() {
			return -1
		}
		return 1
	}
	return strings.Compare(a.ID(), b.ID())
}

// listSales answers GET /v1/sales, public: the sales in order of opens_at,
// then id, salesPageMax at a time.
func (s *Server) listSales(ctx *fasthttp.RequestCtx, eng *actors.Engine) {
	var after *listCursor
	if raw := ctx.QueryArgs().Peek("cursor"); raw != nil {
		c, ok := parseListCursor(string(raw))
		if !ok {
			fail(ctx, actors.CodeBadRequest, "cursor: not a cursor this server gave out")
			return
		}
		after = &c
	}
	all := eng.Sales()
	slices.SortFunc(all, listOrder)
	var lastOpensAt int64
	out := saleListJSON{Sales: make([]saleListItem, 0, min(len(all), salesPageMax))}
	for _, sale := range all {
		if after != nil && (sale.OpensAt() < after.opensAt || sale.OpensAt() == after.opensAt && sale.ID() <= after.id) {
			continue
		}
		if len(out.Sales) == salesPageMax {
			out.Next = listCursor{opensAt: lastOpensAt, id: out.Sales[len(out.Sales)-1].ID}.String()
			break
		}
		d := sale.Def()
		out.Sales = append(out.Sales, saleListItem{ID: d.ID, Name: d.Name, OpensAt: d.OpensAt, Queue: saleListQueue{State: sale.Queue().State}})
		lastOpensAt = sale.OpensAt()
	}
	writeJSON(ctx, 200, out)
}
