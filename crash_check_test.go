//go:build unix

package main

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// --- after the restart ---

func (r *crashRun) verify(c *crashCycle) {
	// Every hold this cycle acknowledged or touched, and a sample of older
	// ones, read back.
	var check, old []*crashHold
	seen := make(map[*crashHold]bool)
	for _, h := range slices.Concat(c.holds, c.touched) {
		if !seen[h] {
			seen[h] = true
			check = append(check, h)
		}
	}
	for _, h := range r.holds {
		if !seen[h] {
			old = append(old, h)
		}
	}
	r.rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	check = append(check, old[:min(len(old), crashOldHoldsSample)]...)
	crashEach(check, func(h *crashHold) { r.readHold(h) })
	c.checkedHolds = len(check)

	r.settle(c)
	var bought []*crashHold
	for _, h := range check {
		if h.state == "purchased" {
			bought = append(bought, h)
		}
	}
	crashEach(bought, func(h *crashHold) { r.readOrder(h) })
	c.checkedOrders = len(bought)

	r.checkTickets(c)
	stock := r.checkStock(c)
	r.retryIdempotent(c, stock)

	for _, w := range r.workers {
		w.active = slices.DeleteFunc(w.active, func(h *crashHold) bool { return h.state != "active" })
	}
}

// readHold reads h back and checks it against what was acknowledged.
func (r *crashRun) readHold(h *crashHold) {
	st, resp, err := r.cl.call("GET", "/v1/holds/"+h.id, crashAdminToken, "", nil)
	if err != nil {
		r.errorf("cycle %d: read %s: %v", r.cycle, h, err)
		return
	}
	if st != 200 {
		r.errorf("cycle %d: %s is lost after the restart: GET /v1/holds/%s answered %d %s", r.cycle, h, h.id, st, resp)
		return
	}
	var hb crashHoldBody
	if err := json.Unmarshal(resp, &hb); err != nil {
		r.errorf("cycle %d: read %s: %q: %v", r.cycle, h, resp, err)
		return
	}
	h.read = hb
	if hb.HoldID != h.id || hb.Zone != h.zone || !slices.Equal(hb.Seats, h.seats) {
		r.errorf("cycle %d: %s reads back as %s", r.cycle, h, resp)
	}
	want := []string{h.state}
	switch h.pending {
	case "release":
		want = []string{"active", "released"}
	case "checkout":
		want = []string{"active", "purchased"}
	}
	switch {
	case hb.State == "expired" && time.Now().Before(h.expires):
		r.errorf("cycle %d: %s reads expired after the restart, but it expires only at %s", r.cycle, h, h.expires.Format(time.RFC3339))
	case hb.State == "expired":
	case !slices.Contains(want, hb.State):
		r.errorf("cycle %d: %s reads %q after the restart; want %s (a release or checkout in flight at the kill: %q)", r.cycle, h, hb.State, strings.Join(want, " or "), h.pending)
	case hb.State == "purchased" && hb.OrderID == "":
		r.errorf("cycle %d: %s reads purchased without an order_id: %s", r.cycle, h, resp)
	case h.state == "purchased" && hb.OrderID != h.orderID:
		r.errorf("cycle %d: %s reads purchased by order %q after the restart", r.cycle, h, hb.OrderID)
	}
}

// settle learns the outcome of requests in flight at the kill: releases and
// checkouts from the read-back state (checkouts with a key by retrying them,
// which must give the order the server already has, if any), hold requests
// with a key by retrying them.
func (r *crashRun) settle(c *crashCycle) {
	var bought []*crashHold
	for _, h := range c.touched {
		if h.pending == "" || h.read.HoldID == "" {
			continue
		}
		c.resolved++
		switch {
		case h.pending == "checkout" && h.pendingKey != "":
			c.retried++
			st, resp, err := r.cl.call("POST", "/v1/holds/"+h.id+"/checkout", h.buyer.token, h.pendingKey, crashPayBody)
			o, ok := r.order(st, resp, h)
			switch {
			case err != nil:
				r.errorf("cycle %d: retry of the checkout of %s in flight at the kill: %v", c.n, h, err)
			case !ok:
				r.errorf("cycle %d: retry (same Idempotency-Key %s) of the checkout of %s in flight at the kill answered %d %s; want 201", c.n, h.pendingKey, h, st, resp)
			case h.read.State == "purchased" && o.OrderID != h.read.OrderID:
				r.errorf("cycle %d: retry (same Idempotency-Key %s) of the checkout of %s made order %s, but the hold was bought as %s before the kill: a second order", c.n, h.pendingKey, h, o.OrderID, h.read.OrderID)
			default:
				h.state, h.orderID, h.payKey = "purchased", o.OrderID, h.pendingKey
				bought = append(bought, h)
			}
		case h.read.State == "purchased":
			h.state, h.orderID = "purchased", h.read.OrderID
		default:
			h.state = h.read.State
		}
		h.stateCycle, h.pending, h.pendingKey = c.n, "", ""
	}
	// Re-read the holds a retried checkout bought.
	crashEach(bought, func(h *crashHold) { r.readHold(h) })

	// Hold requests in flight: retry those with a key; the others may have
	// taken seats nobody will ever know of.
	var learnt []*crashHold
	for _, p := range c.pending {
		if p.key == "" {
			if p.wave == nil {
				c.unknown[p.zone] += p.n
			} else {
				p.wave.unknownNoKey = true
			}
			continue
		}
		c.retried++
		st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", p.buyer.token, p.key, p.body)
		if err != nil {
			r.errorf("cycle %d: retry of hold request %s (key %s) in flight at the kill: %v", c.n, p.body, p.key, err)
			continue
		}
		switch {
		case st == 201:
			h, ok := r.newHold("retry of a hold request in flight at the kill", p.buyer, p.zone, p.n, p.seats, p.key, p.body, resp)
			if !ok {
				continue
			}
			c.resolved++
			learnt = append(learnt, h)
			if p.wave != nil {
				p.wave.resolved++
				if won := p.wave.winner(); won != nil {
					r.errorf("cycle %d: contention: seats %v were acknowledged as %s before the kill, and a retry of another buyer's request (key %s) after it won them again as %s", c.n, p.wave.seats, won, p.key, h.id)
				}
			}
		case st == 409 || (st == 422 && crashCode(resp) == "limit_exceeded"):
			c.resolved++
		default:
			r.errorf("cycle %d: retry of hold request %s (key %s) in flight at the kill answered %d %s", c.n, p.body, p.key, st, resp)
		}
	}
	for _, w := range c.waves {
		switch {
		case w.resolved > 1:
			r.errorf("cycle %d: contention: seats %v in flight at the kill were won by %d retries after the restart", c.n, w.seats, w.resolved)
		case w.resolved == 0 && w.winner() == nil && w.unknownNoKey:
			c.unknown["duel"] += len(w.seats)
		}
	}
	crashEach(learnt, func(h *crashHold) { r.readHold(h) })
	c.holds = append(c.holds, learnt...)
	r.holds = append(r.holds, learnt...)
}

// readOrder reads the order of a purchased hold.
func (r *crashRun) readOrder(h *crashHold) {
	st, resp, err := r.cl.call("GET", "/v1/orders/"+h.orderID, "", "", nil)
	if err != nil {
		r.errorf("cycle %d: read order of %s: %v", r.cycle, h, err)
		return
	}
	var o crashOrderBody
	if st != 200 || json.Unmarshal(resp, &o) != nil {
		r.errorf("cycle %d: order of %s is lost after the restart: GET /v1/orders/%s answered %d %s", r.cycle, h, h.orderID, st, resp)
		return
	}
	if o.OrderID != h.orderID || o.HoldID != h.id || o.State != "paid" || o.Zone != h.zone || !slices.Equal(o.Seats, h.seats) {
		r.errorf("cycle %d: order of %s reads back as %s; want paid, same hold and seats", r.cycle, h, resp)
	}
}

// checkTickets reads back the places in line: this cycle's joins and a
// sample of older ones; a few buyers join again and must keep their place.
func (r *crashRun) checkTickets(c *crashCycle) {
	check := slices.Clone(c.buyers)
	old := slices.DeleteFunc(slices.Clone(r.buyers), func(b *crashBuyer) bool { return b.cycle == c.n })
	r.rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	check = append(check, old[:min(len(old), crashOldTicketsSample)]...)
	crashEach(check, func(b *crashBuyer) { r.readTicket(b) })
	c.checkedTickets = len(check)
	for _, b := range check[:min(len(check), crashRejoinSample)] {
		st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/queue", "", "", crashJSON(map[string]string{"buyer": b.name}))
		var tk crashTicketBody
		if err != nil || st != 200 || json.Unmarshal(resp, &tk) != nil || tk.QueueID != b.queueID {
			r.errorf("cycle %d: buyer %s (queue_id %s) joined again after the restart and got %d %s (err %v); want the same queue_id", c.n, b.name, b.queueID, st, resp, err)
		}
	}
}

// readTicket reads back an acknowledged place in line.
func (r *crashRun) readTicket(b *crashBuyer) {
	st, resp, err := r.cl.call("GET", "/v1/sales/"+crashSaleID+"/queue/"+b.queueID, "", "", nil)
	var tk crashTicketBody
	switch {
	case err != nil:
		r.errorf("cycle %d: read the place in line of %s: %v", r.cycle, b.name, err)
	case st != 200 || json.Unmarshal(resp, &tk) != nil:
		r.errorf("cycle %d: the place in line %s of buyer %s (join acknowledged in cycle %d) is lost after the restart: GET answered %d %s", r.cycle, b.queueID, b.name, b.cycle, st, resp)
	case tk.QueueID != b.queueID || (tk.State != "admitted" && tk.State != "waiting"):
		// Waiting: a buyer still in line when the server was killed.
		r.errorf("cycle %d: the place in line %s of buyer %s (joined in cycle %d) reads back as %s", r.cycle, b.queueID, b.name, b.cycle, resp)
	}
}

// checkStock compares the zones' counts and seat maps with the model.
func (r *crashRun) checkStock(c *crashCycle) map[string][3]int {
	active := make(map[string]int)
	sold := make(map[string]int)
	owner := make(map[string]*crashHold) // zone/seat -> the live hold that has it
	for _, h := range r.holds {
		if h.state != "active" && h.state != "purchased" {
			continue
		}
		if h.state == "active" {
			active[h.zone] += len(h.seats)
		} else {
			sold[h.zone] += len(h.seats)
		}
		for _, s := range h.seats {
			k := h.zone + "/" + s
			if o := owner[k]; o != nil {
				r.errorf("cycle %d: seat %s is in two live holds: %s and %s", c.n, k, o, h)
			}
			owner[k] = h
		}
	}
	counts := r.stock("")
	for _, z := range crashZones {
		got, ok := counts[z]
		if !ok {
			r.errorf("cycle %d: availability has no zone %s", c.n, z)
			continue
		}
		free, held, sld := got[0], got[1], got[2]
		if free+held+sld != crashCapacity[z] {
			r.errorf("cycle %d: zone %s: free %d + held %d + sold %d != capacity %d", c.n, z, free, held, sld, crashCapacity[z])
		}
		if sld != sold[z] {
			r.errorf("cycle %d: zone %s has %d seats sold, but the acknowledged (and settled) orders cover %d", c.n, z, sld, sold[z])
		}
		extra := held - active[z]
		switch {
		case extra < 0:
			r.errorf("cycle %d: zone %s has %d seats held, fewer than the %d of acknowledged active holds: acknowledged holds are lost", c.n, z, held, active[z])
		case extra < r.extra[z]:
			r.errorf("cycle %d: zone %s: held seats that no known hold explains went from %d to %d: holds nobody released vanished", c.n, z, r.extra[z], extra)
		case extra > r.extra[z]+c.unknown[z]:
			r.errorf("cycle %d: zone %s has %d seats held: %d by known active holds, %d by holds of earlier kills, and only %d more can come from requests in flight at this kill: a write was half applied or applied without an answer",
				c.n, z, held, active[z], r.extra[z], c.unknown[z])
		}
		r.extra[z] = max(extra, 0)
	}
	for _, z := range []string{"res", "duel"} {
		seats := r.seatMap(z)
		if seats == nil {
			continue
		}
		n := map[string]int{}
		for id, st := range seats {
			n[st]++
			h := owner[z+"/"+id]
			switch {
			case h == nil:
			case h.state == "active" && st != "held":
				r.errorf("cycle %d: seat %s/%s of %s reads %q after the restart", c.n, z, id, h, st)
			case h.state == "purchased" && st != "sold":
				r.errorf("cycle %d: seat %s/%s of %s reads %q after the restart", c.n, z, id, h, st)
			}
		}
		if got := counts[z]; n["free"] != got[0] || n["held"] != got[1] || n["sold"] != got[2] || len(seats) != crashCapacity[z] {
			r.errorf("cycle %d: zone %s: seat map has %d seats, %d free, %d held, %d sold; counts say %v", c.n, z, len(seats), n["free"], n["held"], n["sold"], got)
		}
	}
	return counts
}

// stock reads the availability counts: zone -> free, held, sold.
func (r *crashRun) stock(query string) map[string][3]int {
	st, resp, err := r.cl.call("GET", "/v1/sales/"+crashSaleID+"/availability"+query, "", "", nil)
	var s crashStock
	if err != nil || st != 200 || json.Unmarshal(resp, &s) != nil {
		r.errorf("cycle %d: availability%s answered %d %.300s (err %v)", r.cycle, query, st, resp, err)
		return nil
	}
	out := make(map[string][3]int, len(s.Zones))
	for _, z := range s.Zones {
		out[z.ID] = [3]int{z.Free, z.Held, z.Sold}
	}
	return out
}

// seatMap reads a reserved zone's seats, page by page: seat -> status.
func (r *crashRun) seatMap(zone string) map[string]string {
	out := map[string]string{}
	from := ""
	// A page holds at least one row, so the zone's rows bound the pages.
	for range crashResRows + crashDuelRows + 1 {
		path := "/v1/sales/" + crashSaleID + "/availability?zone=" + zone
		if from != "" {
			path += "&from_row=" + from
		}
		st, resp, err := r.cl.call("GET", path, "", "", nil)
		var s crashStock
		if err != nil || st != 200 || json.Unmarshal(resp, &s) != nil || len(s.Zones) != 1 {
			r.errorf("cycle %d: availability of zone %s from row %q answered %d %.300s (err %v)", r.cycle, zone, from, st, resp, err)
			return nil
		}
		for _, seat := range s.Zones[0].Seats {
			out[seat.ID] = seat.Status
		}
		if s.NextRow == "" {
			return out
		}
		from = s.NextRow
	}
	r.errorf("cycle %d: availability of zone %s never reached its last page", r.cycle, zone)
	return nil
}

// retryIdempotent sends acknowledged idempotent holds and checkouts again,
// with the same key and body: they must answer as the first time and change
// nothing.
func (r *crashRun) retryIdempotent(c *crashCycle, before map[string][3]int) {
	var mine, older, paid []*crashHold
	for _, h := range r.holds {
		switch {
		case h.key != "" && h.cycle == c.n:
			mine = append(mine, h)
		case h.key != "":
			older = append(older, h)
		}
		if h.payKey != "" {
			paid = append(paid, h)
		}
	}
	shuffle := func(s []*crashHold) {
		r.rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	}
	shuffle(mine)
	shuffle(older)
	shuffle(paid)
	holds := append(mine[:min(len(mine), crashIdemRetriesMax/2)], older[:min(len(older), crashIdemRetriesMax/2)]...)
	for _, h := range holds {
		c.retried++
		st, resp, err := r.cl.call("POST", "/v1/sales/"+crashSaleID+"/holds", h.buyer.token, h.key, h.body)
		var hb crashHoldBody
		if err != nil || st != 201 || json.Unmarshal(resp, &hb) != nil || hb.HoldID != h.id || !slices.Equal(hb.Seats, h.seats) {
			r.errorf("cycle %d: retry (same Idempotency-Key %s, same body) of the request that made %s answered %d %s (err %v); want 201 with the same hold", c.n, h.key, h, st, resp, err)
		}
	}
	for _, h := range paid[:min(len(paid), crashPayRetriesMax)] {
		c.retried++
		st, resp, err := r.cl.call("POST", "/v1/holds/"+h.id+"/checkout", h.buyer.token, h.payKey, crashPayBody)
		o, ok := r.order(st, resp, h)
		if err != nil || !ok || o.OrderID != h.orderID {
			r.errorf("cycle %d: retry (same Idempotency-Key %s) of the checkout of %s answered %d %s (err %v); want 201 with the same order", c.n, h.payKey, h, st, resp, err)
		}
	}
	if before == nil {
		return
	}
	if after := r.stock(""); !maps.Equal(before, after) {
		r.errorf("cycle %d: retries of acknowledged idempotent requests changed the stock from %v to %v", c.n, before, after)
	}
}

// crashEach runs f over items on crashWorkers goroutines.
func crashEach[T any](items []T, f func(T)) {
	ch := make(chan T)
	var wg sync.WaitGroup
	for range crashWorkers {
		wg.Go(func() {
			for it := range ch {
				f(it)
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}
