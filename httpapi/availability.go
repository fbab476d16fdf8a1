package httpapi

import (
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// Limits of the availability answers.
const (
	// availabilitySeatsMax is API.md's cap on the seats of one answer. Rows
	// have at most 1,000 seats, so every page holds at least ten whole rows.
	availabilitySeatsMax = 10_000
	// availabilityCacheBytesMax bounds the encoded pages kept, in bytes. A
	// page of 10,000 seats is 300–400 KB, so this keeps about 170 full
	// pages: every page of the largest zone (1,000,000 seats, 100 pages)
	// with room for a few busy smaller ones. Past it the least recently read
	// pages go; they are encoded again when read.
	availabilityCacheBytesMax = 64 << 20
	// availabilityCachePagesMax bounds the pages kept whatever their size:
	// many small zones would otherwise fill the map with tiny entries.
	availabilityCachePagesMax = 4096
)

// availability answers GET /v1/sales/{sale}/availability. The counts of
// every zone are read from the zones' published atomics; a reserved zone's
// seat list is answered from pages that the pageCache encodes once per
// change of their rows and shares between readers.
func (s *Server) availability(ctx *fasthttp.RequestCtx, sale *actors.Sale) {
	// Requests without an identity met the address limit in route; a
	// buyer's are limited per buyer here, as API.md counts them, so that a
	// token is no licence to loop on the seat map.
	if c, ok := s.claims(ctx); ok && !s.isAdmin(ctx) && !s.limitBuyer(ctx, c.Buyer) {
		return
	}
	args := ctx.QueryArgs()
	zone := string(args.Peek("zone"))
	fromRow, hasFrom := string(args.Peek("from_row")), args.Has("from_row")
	if zone == "" {
		if hasFrom {
			fail(ctx, actors.CodeBadRequest, "from_row: needs zone, the reserved zone whose rows it names")
			return
		}
		writeJSON(ctx, 200, map[string]any{"zones": sale.Counts()})
		return
	}
	exists, reserved := sale.Zone(zone)
	if !exists {
		fail(ctx, actors.CodeNotFound, fmt.Sprintf("sale %q has no zone %q", sale.ID(), zone))
		return
	}
	if !reserved {
		if hasFrom {
			fail(ctx, actors.CodeBadRequest, fmt.Sprintf("from_row: zone %q is general admission and has no rows", zone))
			return
		}
		// General admission: counts only, no seat list (API.md).
		for _, c := range sale.Counts() {
			if c.ID == zone {
				writeJSON(ctx, 200, map[string]any{"zones": []actors.ZoneCounts{c}})
				return
			}
		}
	}
	rows := zoneRows(sale, zone)
	first := 0
	if hasFrom {
		first = rowIndex(rows, fromRow)
		if first < 0 {
			fail(ctx, actors.CodeBadRequest, fmt.Sprintf("from_row: zone %q has no row %q", zone, fromRow))
			return
		}
	}
	seatsPart, err := s.pages.get(sale, zone, first, rows, s.m)
	if err != nil {
		writeError(ctx, err)
		return
	}
	// The counts are read after the page, so they are as new as the
	// request too. They are the zone's, not the page's: baked into the
	// page, they would make every page stale at every change of the zone.
	counts, _ := sale.ZoneCounts(zone)
	ctx.SetStatusCode(200)
	ctx.SetContentType("application/json")
	// The seats part is shared and never changed once made: it goes out
	// behind this answer's own head, with no copy per reader.
	a := &pageAnswer{head: appendPageHead(make([]byte, 0, pageHeadBytesMax), counts), seats: seatsPart}
	ctx.SetBodyStream(a, len(a.head)+len(a.seats))
}

// pageHeadBytesMax is the size of a page's head at most: the keys, a zone
// id of at most 64 bytes and three counts of at most 7 digits.
const pageHeadBytesMax = 128

// appendPageHead appends the head of a page answer, what comes before its
// seats part (see encodePage): {"zones":[{"id":"vip","free":1,"held":2,"sold":3
func appendPageHead(b []byte, c actors.ZoneCounts) []byte {
	b = append(b, `{"zones":[{"id":"`...)
	b = append(b, c.ID...)
	b = append(b, `","free":`...)
	b = strconv.AppendInt(b, int64(c.Free), 10)
	b = append(b, `,"held":`...)
	b = strconv.AppendInt(b, int64(c.Held), 10)
	b = append(b, `,"sold":`...)
	b = strconv.AppendInt(b, int64(c.Sold), 10)
	return b
}

// pageAnswer is the body of one page answer: this answer's head, then the
// shared seats part. Its WriteTo hands both to the connection's writer as
// they are, which for the large seats part writes around the buffer.
type pageAnswer struct {
	head, seats []byte
	off         int // bytes read so far, of head then seats
}

func (a *pageAnswer) Read(p []byte) (int, error) {
	n := 0
	if a.off < len(a.head) {
		n = copy(p, a.head[a.off:])
	}
	if n < len(p) && a.off+n >= len(a.head) {
		n += copy(p[n:], a.seats[a.off+n-len(a.head):])
	}
	a.off += n
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (a *pageAnswer) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for a.off < len(a.head)+len(a.seats) {
		var part []byte
		if a.off < len(a.head) {
			part = a.head[a.off:]
		} else {
			part = a.seats[a.off-len(a.head):]
		}
		n, err := w.Write(part)
		a.off += n
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// zoneRows is the rows of a zone of sale, in definition order.
func zoneRows(sale *actors.Sale, zone string) []actors.RowDef {
	for _, z := range sale.Def().Zones {
		if z.ID == zone {
			return z.Rows
		}
	}
	return nil
}

// rowIndex is the index of the row named row, or -1. Rows are at most 1,000:
// a scan costs less than a map kept per zone.
func rowIndex(rows []actors.RowDef, row string) int {
	for i, r := range rows {
		if r.Row == row {
			return i
		}
	}
	return -1
}

// pageEnd is the end (exclusive) of the page that starts at row first: as
// many whole rows as fit in availabilitySeatsMax.
func pageEnd(rows []actors.RowDef, first int) int {
	n, last := 0, first
	for last < len(rows) && n+rows[last].Seats <= availabilitySeatsMax {
		n += rows[last].Seats
		last++
	}
	if last == first && first < len(rows) {
		panic(fmt.Sprintf("row %q has %d seats, more than a page of %d", rows[first].Row, rows[first].Seats, availabilitySeatsMax))
	}
	return last
}

// pageKey names one page: a zone of a sale from one row on. Sale and zone
// ids are a sale's own, and a sale is never deleted, so keys never clash.
type pageKey struct {
	sale, zone string
	first      int
}

// page is the seats part of one cached answer, and the encode that is
// remaking it.
type page struct {
	body   []byte  // the last seats part encoded; shared, never changed; nil before the first
	stamp  uint64  // the stamp of the page's rows that body shows (Sale.SeatRowsStamp)
	flight *flight // the encode under way, nil when none
	used   uint64  // pageCache.tick of the last read, for eviction
}

// flight is one encode of a page; readers that need it wait on done.
type flight struct {
	done  chan struct{} // closed once the fields below are set
	body  []byte
	stamp uint64
	err   *actors.Error
}

// pageCache keeps the encoded seats parts of the availability pages of
// reserved zones. A page is encoded when read after a change of its rows
// (lazily, so an unread zone costs nothing; a change in other rows of the
// zone leaves it be), at most one encode of a page at a time, and every
// reader that finds the page stale while it is being made waits for that
// encode instead of making its own: the work is one encode per change of a
// page however many read. Owned by the Server; safe for any goroutine.
type pageCache struct {
	mu    sync.Mutex
	pages map[pageKey]*page // guarded by mu; at most availabilityCachePagesMax
	bytes int               // guarded by mu; the bodies' sizes, at most availabilityCacheBytesMax
	tick  uint64            // guarded by mu; counts reads, for least recently read
}

func newPageCache() *pageCache {
	return &pageCache{pages: make(map[pageKey]*page)}
}

// get returns the seats part of the page of zone from row first on, as of
// its rows' stamp now or later: a reader never gets an answer older than
// its request, so a buyer who just held a seat sees it held.
func (c *pageCache) get(sale *actors.Sale, zone string, first int, rows []actors.RowDef, m *Metrics) ([]byte, *actors.Error) {
	k := pageKey{sale: sale.ID(), zone: zone, first: first}
	want := sale.SeatRowsStamp(zone, first, pageEnd(rows, first))
	// At most two rounds: a flight that started before this request may be
	// older than want; the one started after it is not.
	for {
		c.mu.Lock()
		c.tick++
		p := c.pages[k]
		if p == nil {
			p = &page{}
			c.pages[k] = p
		}
		p.used = c.tick
		if p.body != nil && p.stamp >= want {
			c.mu.Unlock()
			m.availabilityShared.Inc()
			return p.body, nil
		}
		if f := p.flight; f != nil {
			c.mu.Unlock()
			// The encoder waits for the zone at most the engine's call
			// timeout, so this wait is bounded too.
			<-f.done
			if f.err != nil {
				return nil, f.err
			}
			if f.stamp >= want {
				m.availabilityShared.Inc()
				return f.body, nil
			}
			continue
		}
		f := &flight{done: make(chan struct{})}
		p.flight = f
		c.mu.Unlock()
		c.fly(k, p, f, func() ([]byte, uint64, *actors.Error) { return encodePage(sale, zone, rows, first) })
		m.availabilityEncodes.Inc()
		if f.err != nil {
			return nil, f.err
		}
		return f.body, nil
	}
}

// fly runs encode as flight f of page p and lets its waiters go, whatever
// happens: an encode that panics still answers them (with an internal
// error) before the panic goes on to the root handler.
func (c *pageCache) fly(k pageKey, p *page, f *flight, encode func() ([]byte, uint64, *actors.Error)) {
	f.err = &actors.Error{Code: codeInternal, Message: "the seat map could not be made; it is logged"}
	defer func() {
		c.land(k, p, f)
		close(f.done)
	}()
	f.body, f.stamp, f.err = encode()
}

// land stores what flight f made in p, and evicts pages past the limits.
func (c *pageCache) land(k pageKey, p *page, f *flight) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.flight = nil
	if c.pages[k] != p {
		return // evicted meanwhile; f's readers have their answer anyway
	}
	if f.err != nil {
		if p.body == nil {
			delete(c.pages, k)
		}
		return
	}
	c.bytes += len(f.body) - len(p.body)
	p.body, p.stamp = f.body, f.stamp
	c.evict(p)
}

// evict drops the least recently read pages, keep aside, until the cache is
// within its limits. Pages being encoded stay: their readers wait on them.
// A scan per eviction: the map is small (availabilityCachePagesMax), and an
// eviction comes with an encode that costs far more.
func (c *pageCache) evict(keep *page) {
	for c.bytes > availabilityCacheBytesMax || len(c.pages) > availabilityCachePagesMax {
		var oldK pageKey
		var old *page
		for k, p := range c.pages {
			if p != keep && p.flight == nil && (old == nil || p.used < old.used) {
				oldK, old = k, p
			}
		}
		if old == nil {
			return // everything else is being encoded; it lands and evicts in turn
		}
		c.bytes -= len(old.body)
		delete(c.pages, oldK)
	}
}

// encodePage copies the page's rows from the zone and writes the seats
// part of the answer, all that follows the head (appendPageHead) of
// {"zones":[{"id","free","held","sold","seats":[{"id","status"},...]}]}
// and "next_row" when rows remain; with the stamp of the rows copied. It is
// written by hand: encoding/json would reflect over 10,000 values per page.
// Zone ids and row names are of the forms API.md fixes (letters, digits,
// '.', '_', '-'), so they need no escaping.
func encodePage(sale *actors.Sale, zone string, rows []actors.RowDef, first int) ([]byte, uint64, *actors.Error) {
	last := pageEnd(rows, first)
	r, err := sale.SeatRows(zone, first, last)
	if err != nil {
		return nil, 0, err
	}
	// About 34 bytes a seat ({"id":"R12-345","status":"free"},), so one
	// allocation in the common case.
	b := make([]byte, 0, 64+len(r.States)*36)
	b = append(b, `,"seats":[`...)
	i := 0
	for _, row := range r.Rows {
		for n := 1; n <= row.Seats; n++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":"`...)
			b = append(b, row.Row...)
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(n), 10)
			b = append(b, `","status":"`...)
			b = append(b, r.Status(i)...)
			b = append(b, `"}`...)
			i++
		}
	}
	b = append(b, "]}]"...)
	if last < len(rows) {
		b = append(b, `,"next_row":"`...)
		b = append(b, rows[last].Row...)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	return b, r.Stamp, nil
}
