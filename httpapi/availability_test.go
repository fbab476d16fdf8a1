package httpapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"onsale/actors"
)

// hallSpec is a sale with a general-admission zone "ga" and a reserved zone
// "hall" of rows R1..Rn, row i having seats[i] seats.
func hallSpec(id string, seats []int) saleSpec {
	rows := make([]any, len(seats))
	for i, n := range seats {
		rows[i] = map[string]any{"row": fmt.Sprintf("R%d", i+1), "seats": n}
	}
	return newSaleSpec(id).with("zones", []any{
		map[string]any{"id": "ga", "price_cents": 4500, "capacity": 100},
		map[string]any{"id": "hall", "price_cents": 9000, "rows": rows},
	})
}

// seatPage is one availability answer of a reserved zone.
type seatPage struct {
	Zones []struct {
		actors.ZoneCounts
		Seats []actors.SeatView `json:"seats"`
	} `json:"zones"`
	NextRow *string `json:"next_row"`
}

// page reads the page of zone that starts at row from ("" for the first).
func (ts *testServer) page(t testing.TB, sale, zone, from string, h ...hdr) seatPage {
	t.Helper()
	path := "/v1/sales/" + sale + "/availability?zone=" + zone
	if from != "" {
		path += "&from_row=" + from
	}
	r := ts.do(t, "GET", path, nil, h...)
	requireStatus(t, r, 200, "page of %s from %q", zone, from)
	var p seatPage
	r.decode(t, &p)
	requireEqual(t, len(p.Zones), 1, "one zone per answer")
	return p
}

// allPages reads a zone page by page, following next_row.
func (ts *testServer) allPages(t testing.TB, sale, zone string) []seatPage {
	t.Helper()
	var pages []seatPage
	from := ""
	for {
		p := ts.page(t, sale, zone, from)
		pages = append(pages, p)
		if p.NextRow == nil {
			return pages
		}
		requireTrue(t, *p.NextRow != "" && len(pages) <= 1000, "page %d: next_row %q", len(pages), *p.NextRow)
		from = *p.NextRow
	}
}

// metricValue reads one sample of /metrics by its full name.
func (ts *testServer) metricValue(t testing.TB, name string) float64 {
	t.Helper()
	r := ts.do(t, "GET", "/metrics", nil)
	requireStatus(t, r, 200, "metrics")
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			requireNoErr(t, err, "metric %s", name)
			return f
		}
	}
	t.Fatalf("no metric %s in /metrics", name)
	return 0
}

// splitSeat splits "R12-345" into its row and number.
func splitSeat(t testing.TB, id string) (string, int) {
	t.Helper()
	row, num, ok := strings.Cut(id, "-")
	n, err := strconv.Atoi(num)
	requireTrue(t, ok && err == nil, "seat id %q", id)
	return row, n
}

// TestAvailabilityPages: paging through a reserved zone with from_row gives
// every seat exactly once, in order, with its status; a page holds whole
// rows, as many as fit in 10,000 seats, and only the last has no next_row.
func TestAvailabilityPages(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	// Rows of uneven lengths, so that pages end short of 10,000 seats.
	lengths := []int{1000, 999, 7, 500, 1, 850}
	var seats []int
	total := 0
	for i := range 40 {
		seats = append(seats, lengths[i%len(lengths)])
		total += seats[i]
	}
	ts.createSale(t, hallSpec("p", seats))
	tok := ts.admit(t, "p", "b1")
	held := ts.mustHold(t, "p", tok, map[string]any{"zone": "hall", "seats": []string{"R1-1", "R1-2", "R21-7"}})
	bought := ts.mustHold(t, "p", tok, map[string]any{"zone": "hall", "seats": []string{"R40-500", "R13-1000"}})
	requireStatus(t, ts.checkout(t, bought.HoldID, tok, "tok_visa", ""), 201)
	want := map[string]string{}
	for _, s := range held.Seats {
		want[s] = "held"
	}
	for _, s := range bought.Seats {
		want[s] = "sold"
	}
	counts := ts.counts(t, "p")["hall"]

	pages := ts.allPages(t, "p", "hall")
	requireTrue(t, len(pages) >= 3, "%d seats make several pages, got %d", total, len(pages))
	seen := map[string]bool{}
	row := 0 // index of the next row expected
	for i, p := range pages {
		z := p.Zones[0]
		requireEqual(t, z.ZoneCounts, counts, "page %d: the zone's counts", i)
		requireTrue(t, len(z.Seats) <= availabilitySeatsMax && len(z.Seats) > 0, "page %d has %d seats", i, len(z.Seats))
		// Whole rows, in order, each seat numbered from 1.
		for j := 0; j < len(z.Seats); {
			name := fmt.Sprintf("R%d", row+1)
			for n := 1; n <= seats[row]; n++ {
				requireTrue(t, j < len(z.Seats), "page %d ends inside row %s", i, name)
				r, num := splitSeat(t, z.Seats[j].ID)
				requireEqual(t, [2]any{r, num}, [2]any{name, n}, "page %d, seat %d", i, j)
				j++
			}
			row++
		}
		for _, s := range z.Seats {
			requireTrue(t, !seen[s.ID], "seat %s twice", s.ID)
			seen[s.ID] = true
			st, ok := want[s.ID]
			if !ok {
				st = "free"
			}
			requireEqual(t, s.Status, st, "seat %s", s.ID)
		}
		if i < len(pages)-1 {
			requireEqual(t, *p.NextRow, fmt.Sprintf("R%d", row+1), "page %d: next_row is the first row after it", i)
			requireTrue(t, len(z.Seats)+seats[row] > availabilitySeatsMax, "page %d stops short: %d seats and row R%d of %d would fit", i, len(z.Seats), row+1, seats[row])
		}
	}
	requireEqual(t, row, len(seats), "every row")
	requireEqual(t, len(seen), total, "every seat once")

	// The last page has no next_row at all, not an empty one.
	last := requireStatus(t, ts.do(t, "GET", "/v1/sales/p/availability?zone=hall&from_row=R40", nil), 200)
	_, has := last["next_row"]
	requireTrue(t, !has, "the last page has no next_row: %v", last["next_row"])

	// Any row may start a page, not only the ones next_row names.
	mid := ts.page(t, "p", "hall", "R3")
	requireEqual(t, mid.Zones[0].Seats[0].ID, "R3-1", "from_row starts at that row")

	// Bad from_row: 400 naming the field; unknown zone is still 404.
	for _, q := range []string{"zone=hall&from_row=R41", "zone=hall&from_row=", "zone=hall&from_row=r1", "zone=hall&from_row=R1-1",
		"zone=ga&from_row=R1", "from_row=R1"} {
		e := requireError(t, ts.do(t, "GET", "/v1/sales/p/availability?"+q, nil), 400, actors.CodeBadRequest, q)
		requireTrue(t, strings.HasPrefix(e.Error.Message, "from_row: "), "%s: message %q names the field", q, e.Error.Message)
	}
	requireError(t, ts.do(t, "GET", "/v1/sales/p/availability?zone=balcony&from_row=R1", nil), 404, actors.CodeNotFound)

	// General admission and no zone: counts only, as before.
	ga := requireStatus(t, ts.do(t, "GET", "/v1/sales/p/availability?zone=ga", nil), 200)
	requireEqual(t, len(ga["zones"].([]any)), 1, "one zone")
	_, has = ga["zones"].([]any)[0].(map[string]any)["seats"]
	requireTrue(t, !has, "no seat list for general admission")
	all := requireStatus(t, ts.do(t, "GET", "/v1/sales/p/availability", nil), 200)
	requireEqual(t, len(all["zones"].([]any)), 2, "every zone's counts")
}

// TestAvailabilityFollowsChanges: an answer is never older than the request
// that asked: a hold, its release and a purchase each show in the next read,
// on every page of the zone, not only the one the seat is on.
func TestAvailabilityFollowsChanges(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	seats := make([]int, 30)
	for i := range seats {
		seats[i] = 1000
	}
	ts.createSale(t, hallSpec("c", seats))
	tok := ts.admit(t, "c", "b1")
	status := func(from, seat string) (string, actors.ZoneCounts) {
		p := ts.page(t, "c", "hall", from)
		for _, s := range p.Zones[0].Seats {
			if s.ID == seat {
				return s.Status, p.Zones[0].ZoneCounts
			}
		}
		t.Fatalf("no seat %s on the page from %q", seat, from)
		return "", actors.ZoneCounts{}
	}
	st, c := status("R11", "R12-5")
	requireEqual(t, st, "free")
	requireEqual(t, c.Held, 0)
	ts.page(t, "c", "hall", "") // cached too

	h := ts.mustHold(t, "c", tok, map[string]any{"zone": "hall", "seats": []string{"R12-5"}})
	st, c = status("R11", "R12-5")
	requireEqual(t, st, "held", "a hold shows in the next read")
	requireEqual(t, c.Held, 1)
	requireEqual(t, ts.page(t, "c", "hall", "").Zones[0].Held, 1, "another page's counts moved too")

	requireStatus(t, ts.do(t, "DELETE", "/v1/holds/"+h.HoldID, nil, bearerHdr(tok)), 200)
	st, c = status("R11", "R12-5")
	requireEqual(t, st, "free", "a release shows in the next read")
	requireEqual(t, c.Held, 0)

	h = ts.mustHold(t, "c", tok, map[string]any{"zone": "hall", "seats": []string{"R12-5"}})
	requireStatus(t, ts.checkout(t, h.HoldID, tok, "tok_visa", ""), 201)
	st, c = status("R11", "R12-5")
	requireEqual(t, st, "sold", "a purchase shows in the next read")
	requireEqual(t, c.Sold, 1)
}

// TestAvailabilityRebuildsChangedPages: a change re-encodes the pages whose
// rows it touched and no other, while every page's counts follow the zone.
func TestAvailabilityRebuildsChangedPages(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	seats := make([]int, 30)
	for i := range seats {
		seats[i] = 1000
	}
	ts.createSale(t, hallSpec("s", seats)) // pages from R1, R11 and R21
	tok := ts.admit(t, "s", "b1")
	const encoded = "onsale_availability_pages_encoded_total"
	// readAll reads every page and returns the encodes it cost and the
	// status of the named seats.
	readAll := func(held int, names ...string) (float64, map[string]string) {
		t.Helper()
		before := ts.metricValue(t, encoded)
		st := map[string]string{}
		for i, p := range ts.allPages(t, "s", "hall") {
			requireEqual(t, p.Zones[0].ZoneCounts, actors.ZoneCounts{ID: "hall", Free: 30_000 - held, Held: held},
				"page %d: the zone's counts, whichever page changed", i)
			for _, seat := range p.Zones[0].Seats {
				if slices.Contains(names, seat.ID) {
					st[seat.ID] = seat.Status
				}
			}
		}
		return ts.metricValue(t, encoded) - before, st
	}
	n, _ := readAll(0)
	requireEqual(t, n, 3.0, "every page encoded once")
	n, _ = readAll(0)
	requireEqual(t, n, 0.0, "nothing changed, nothing encoded")

	h := ts.mustHold(t, "s", tok, map[string]any{"zone": "hall", "seats": []string{"R12-5"}})
	n, st := readAll(1, "R12-5")
	requireEqual(t, n, 1.0, "a hold on one page re-encodes that page only")
	requireEqual(t, st["R12-5"], "held", "the hold shows in the next read")

	requireStatus(t, ts.do(t, "DELETE", "/v1/holds/"+h.HoldID, nil, bearerHdr(tok)), 200)
	n, st = readAll(0, "R12-5")
	requireEqual(t, n, 1.0, "a release re-encodes its page only")
	requireEqual(t, st["R12-5"], "free")

	ts.mustHold(t, "s", tok, map[string]any{"zone": "hall", "seats": []string{"R1-1", "R30-1000"}})
	n, st = readAll(2, "R1-1", "R30-1000")
	requireEqual(t, n, 2.0, "a hold over two pages re-encodes both")
	requireEqual(t, st, map[string]string{"R1-1": "held", "R30-1000": "held"})
}

// TestPageAnswerRead: the body of a page answer reads as its head then its
// seats part, whatever the size of the reads, and writes the same.
func TestPageAnswerRead(t *testing.T) {
	head, seats := []byte(`{"zones":[{"id":"v","free":1`), []byte(`,"seats":[]}]}`+"\n")
	want := string(head) + string(seats)
	for _, size := range []int{1, 3, len(head), len(head) + 1, 1000} {
		a := &pageAnswer{head: head, seats: seats}
		var got []byte
		buf := make([]byte, size)
		for range 1000 {
			n, err := a.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			requireNoErr(t, err, "read")
		}
		requireEqual(t, string(got), want, "reads of %d bytes", size)
	}
	var w bytes.Buffer
	n, err := (&pageAnswer{head: head, seats: seats}).WriteTo(&w)
	requireNoErr(t, err, "write")
	requireEqual(t, [2]any{n, w.String()}, [2]any{int64(len(want)), want})
}

// TestAvailabilityReadersShare: many readers of a large zone at once cost
// one encode per page while nothing changes, all get the same answer, and
// a change costs one more.
func TestAvailabilityReadersShare(t *testing.T) {
	t.Parallel()
	ts := startServer(t)
	seats := make([]int, 100)
	for i := range seats {
		seats[i] = 1000
	}
	ts.createSale(t, hallSpec("r", seats)) // 100,000 seats: 10 pages
	const encoded = "onsale_availability_pages_encoded_total"
	const readers, reads = 48, 4
	read := func() []string {
		var mu sync.Mutex
		var bodies []string
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for range readers {
			wg.Go(func() {
				for range reads {
					r, err := ts.try("GET", "/v1/sales/r/availability?zone=hall&from_row=R41", nil)
					if err == nil && r.Status != 200 {
						err = fmt.Errorf("answered %s", truncate(r.String(), 200))
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					bodies = append(bodies, string(r.Body))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return bodies
	}
	sameBodies := func(bodies []string) {
		t.Helper()
		requireEqual(t, len(bodies), readers*reads, "every read answered")
		for _, b := range bodies {
			requireTrue(t, b == bodies[0], "readers of an unchanged zone get one answer")
		}
	}

	before := ts.metricValue(t, encoded)
	bodies := read()
	sameBodies(bodies)
	requireEqual(t, ts.metricValue(t, encoded)-before, 1.0, "%d reads of one page, one encode", readers*reads)
	requireTrue(t, !strings.Contains(bodies[0], `"status":"held"`), "nothing held yet")

	tok := ts.admit(t, "r", "b1")
	ts.mustHold(t, "r", tok, map[string]any{"zone": "hall", "seats": []string{"R45-1"}})
	before = ts.metricValue(t, encoded)
	bodies = read()
	sameBodies(bodies)
	requireEqual(t, ts.metricValue(t, encoded)-before, 1.0, "after a change, one encode again")
	requireTrue(t, strings.Contains(bodies[0], `{"id":"R45-1","status":"held"}`), "the change is in the shared answer")
	requireTrue(t, ts.metricValue(t, "onsale_availability_pages_shared_total") >= float64(2*(readers*reads-1)), "the other reads were shared")
}

// TestAvailabilityRateLimited: seat maps are limited like every public
// read: per address without an identity, per buyer with an access token.
func TestAvailabilityRateLimited(t *testing.T) {
	t.Parallel()
	ts := startServer(t, withAddressRate(3), withBuyerRate(2))
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	for _, c := range []struct {
		name string
		h    []hdr
	}{
		{"per address", nil},
		{"per buyer", []hdr{bearerHdr(tok)}},
	} {
		ts.clock.Advance(10 * time.Second)
		var limited response
		for range 30 {
			r := ts.do(t, "GET", "/v1/sales/s/availability?zone=vip", nil, c.h...)
			if r.Status == 429 {
				limited = r
				break
			}
			requireStatus(t, r, 200, c.name)
		}
		requireError(t, limited, 429, "rate_limited", c.name)
		requireTrue(t, limited.Header.Get("Retry-After") != "", "%s: Retry-After", c.name)
	}
	ts.clock.Advance(10 * time.Second)
	ts.page(t, "s", "vip", "", bearerHdr(tok))
}
