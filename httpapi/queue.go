package httpapi

import (
	"bufio"
	"encoding/json"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

type joinInput struct {
	Buyer *string `json:"buyer"`
}

// ticketJSON is a place in line as API.md shows it.
type ticketJSON struct {
	QueueID         string `json:"queue_id"`
	State           string `json:"state"`
	Position        *int64 `json:"position,omitempty"`
	ETAS            *int64 `json:"eta_s,omitempty"`
	PollAfterS      int64  `json:"poll_after_s"`
	OpensInS        *int64 `json:"opens_in_s,omitempty"`
	AccessToken     string `json:"access_token,omitempty"`
	AccessExpiresAt string `json:"access_expires_at,omitempty"`
}

func (s *Server) ticketBody(sale *actors.Sale, t *actors.QueueTicket) ticketJSON {
	v := t.View
	out := ticketJSON{QueueID: t.QueueID, State: v.State, PollAfterS: v.PollAfterS}
	if v.Position > 0 {
		p, eta := v.Position, v.ETAS
		out.Position, out.ETAS = &p, &eta
	}
	if v.OpensInS >= 0 && v.Position == 0 && v.State == "waiting" {
		o := v.OpensInS
		out.OpensInS = &o
	}
	if v.State == "admitted" && v.AccessExpires > 0 {
		out.AccessToken = s.sign.Load().sign(accessClaims{Sale: sale.ID(), Buyer: t.Buyer, ID: t.QueueID, Expires: v.AccessExpires})
		out.AccessExpiresAt = fmtMs(v.AccessExpires)
	}
	return out
}

func (s *Server) routeQueue(ctx *fasthttp.RequestCtx, sale *actors.Sale, parts []string) string {
	switch len(parts) {
	case 0:
		if method(ctx, "POST") {
			s.join(ctx, sale)
		}
		return "/v1/sales/{sale}/queue"
	case 1:
		if !method(ctx, "GET", "DELETE") {
			return "/v1/sales/{sale}/queue/{queue}"
		}
		var r actors.Result
		if string(ctx.Method()) == "DELETE" {
			if !s.limitBuyer(ctx, parts[0]) {
				return "/v1/sales/{sale}/queue/{queue}"
			}
			r = sale.Leave(parts[0])
		} else {
			r = sale.QueueStatus(parts[0])
			if !s.limitPoll(ctx, parts[0], r) {
				return "/v1/sales/{sale}/queue/{queue}"
			}
		}
		answer(ctx, r, 200, func() any { return s.ticketBody(sale, r.Ticket) })
		return "/v1/sales/{sale}/queue/{queue}"
	case 2:
		if parts[1] == "events" {
			if method(ctx, "GET") {
				s.events(ctx, sale, parts[0])
			}
			return "/v1/sales/{sale}/queue/{queue}/events"
		}
	}
	fail(ctx, actors.CodeNotFound, "no such resource")
	return "unknown"
}

// limitPoll applies the rate limits to a read of a place in line, after the
// lookup (r): a known queue id is limited as its buyer, while an unknown one
// costs its client address a token, so that made-up ids can neither skip
// the address limit nor fill the per-buyer limiter. Polls of real ids are
// not limited per address: thousands of buyers share one mobile network.
func (s *Server) limitPoll(ctx *fasthttp.RequestCtx, queueID string, r actors.Result) bool {
	if r.Err != nil && r.Err.Code == actors.CodeNotFound {
		return s.limit(ctx, s.byAddr, s.clientAddr(ctx))
	}
	return s.limitBuyer(ctx, queueID)
}

func (s *Server) join(ctx *fasthttp.RequestCtx, sale *actors.Sale) {
	var in joinInput
	if !decode(ctx, &in) {
		return
	}
	if in.Buyer == nil || !actors.ValidID(*in.Buyer) {
		badRequest(ctx, "buyer: is required and must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
		return
	}
	if !s.limitBuyer(ctx, "b:"+*in.Buyer) {
		return
	}
	r := sale.Join(*in.Buyer)
	answer(ctx, r, 200, func() any { return s.ticketBody(sale, r.Ticket) })
}

// events streams a ticket's changes as Server-Sent Events. Nothing polls:
// the stream subscribes to its ticket (Sale.Watch) and is woken when the
// ticket changes (an admission reaches it within the room's tick) or when
// the whole line changes (sold out and back, pause, the draw; the line
// moving, at most once a second). An event is written only when what the
// buyer sees changed: the state, the position, the access. Before the
// opening that is once: the page counts down to opens_at itself. With
// nothing changing, a stream costs a heartbeat every heartbeatInterval.
func (s *Server) events(ctx *fasthttp.RequestCtx, sale *actors.Sale, queueID string) {
	first := sale.QueueStatus(queueID)
	if !s.limitPoll(ctx, queueID, first) {
		return
	}
	if first.Err != nil {
		writeError(ctx, first.Err)
		return
	}
	// The stream takes the connection over (Hijack): one goroutine and
	// one small buffer per stream, instead of fasthttp's body-stream
	// goroutine and pipe beside the connection's own. The response head is
	// written here; the body ends when the connection closes.
	closing := s.closing
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		// Counted here: fasthttp may drop a hijack whose connection failed.
		s.m.streams.Add(1)
		defer s.m.streams.Add(-1)
		s.stream(c, closing, sale, queueID, first)
	})
}

// streamWriteTimeout bounds one write to a stream: a buyer whose
// connection stopped reading is dropped, not waited for.
const streamWriteTimeout = 10 * time.Second

// stream writes one ticket's events on a hijacked connection until the
// ticket is admitted or expired, the buyer goes, the stream's lifetime
// ends or the server shuts down.
func (s *Server) stream(c net.Conn, closing <-chan struct{}, sale *actors.Sale, queueID string, first actors.Result) {
	w := bufio.NewWriterSize(c, streamBufferBytes)
	flush := func() bool {
		if c.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) != nil {
			return false
		}
		return w.Flush() == nil
	}
	w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n\r\n")
	watch := sale.Watch(queueID)
	defer watch.Close()
	end := time.NewTimer(streamLifetimeMax)
	defer end.Stop()
	beat := time.NewTicker(heartbeatInterval)
	defer beat.Stop()
	var last streamShown
	r := first
	for {
		// Taken before the state is read: a change after the read closes
		// this channel, so none is missed.
		bc := watch.Broadcast()
		if r.Err == nil {
			shown := showOf(r.Ticket.View)
			if shown != last {
				body, err := json.Marshal(s.ticketBody(sale, r.Ticket))
				if err != nil {
					return
				}
				w.WriteString("data: ")
				w.Write(body)
				w.WriteString("\n\n")
				if !flush() {
					return
				}
				last = shown
				beat.Reset(heartbeatInterval)
				if st := r.Ticket.View.State; st == "admitted" || st == "expired" {
					return
				}
			}
		}
		select {
		case <-closing:
			return
		case <-end.C:
			return // EventSource reconnects and gets the current state
		case <-sale.Stopped():
			return // the engine was swapped (a cluster's leadership moved): reconnect to the new one
		case <-beat.C:
			w.WriteString(": heartbeat\n\n")
			if !flush() {
				return // the buyer went away
			}
			// The access window or the opening may have passed by time
			// alone: look again.
		case <-watch.C:
		case <-bc:
		}
		r = sale.QueueStatus(queueID)
	}
}

// streamBufferBytes is a stream's write buffer: an event is a few hundred
// bytes.
const streamBufferBytes = 1 << 10

// streamShown is what a stream last told its buyer: a new event is sent
// when it changes. eta_s, poll_after_s and opens_in_s follow from it and
// the clock, which the page keeps itself.
type streamShown struct {
	state    string
	position int64
	access   int64
}

func showOf(v actors.TicketView) streamShown {
	return streamShown{state: v.State, position: v.Position, access: v.AccessExpires}
}

func (s *Server) draw(ctx *fasthttp.RequestCtx, sale *actors.Sale) {
	d, ok := sale.Draw()
	if !ok {
		fail(ctx, actors.CodeUnavailable, "the waiting room did not answer in time; retry")
		return
	}
	out := map[string]any{"seed_sha256": d.SeedSHA256}
	if d.Done {
		out["seed"], out["order"] = d.Seed, d.Order
	}
	writeJSON(ctx, 200, out)
}
