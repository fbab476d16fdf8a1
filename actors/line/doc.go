// Package line is a sale's waiting room as a pure state machine: the line
// of tickets, the opening draw, admissions by a token bucket bounded by
// active_limit, the measured admission rate, and the room's snapshot
// (API.md, "Waiting room (buyer)"; DESIGN.md, "Waiting room").
//
// # What it may import
//
// The standard library and onsale/wal, for the queue records it writes and
// applies (wal.Event, the field reader of its snapshot). Nothing else: no
// actor system, no HTTP, no clock, no goroutines, no locks. deps_test.go
// holds it to that. One actor owns a Room (actors/room_actor.go) and passes
// the time in, in Unix milliseconds.
//
// # Decide, log, apply
//
// A decision (Join, Leave, Complete, Tick) reads the state and makes queue
// events. Each is checked against the state, handed to the room's Log (the
// actor queues it on the write-ahead log) and applied only once the log
// accepted it, so an event the log refuses changes nothing and memory never
// runs ahead of the log. Recovery feeds the same events to Apply, which
// runs the same check and change.
//
// # The published View
//
// The room's one home is the Room, owned by one actor. Everyone else reads
// a View: an immutable picture built by Publish after every change
// (counters, rates, queue.state, stock, draw and pause, the numbers that no
// longer wait, the revoked admissions), which the actor swaps in with an
// atomic pointer. A View shares its parts with the Room's later state
// copy-on-write, so publishing costs little and reading needs no lock. From
// a View and a copy of a ticket, View.TicketView computes what
// GET /queue/{id} shows, as Room.TicketView does.
//
// # Where to start reading
//
//	room.go           Room, Config, Ticket, Stock, limits; queries and the
//	                  ticket's view (position, eta_s, poll_after_s)
//	room_decide.go    the decisions: Join, Leave, Complete, Tick; emit
//	room_apply.go     Apply (check, then change) and the queue-id blob codec
//	room_view.go      View and Publish; the copy-on-write parts they share
//	room_draw.go      DrawOrder, the published opening lottery
//	room_snapshot.go  AppendSnapshot and Restore
//	room_line.go      ticket store, the line (a Fenwick tree), expiry heap
//	room_index.go     the memory-lean queue-id and buyer indexes
//
// # Invariants
//
// Checked by the tests and by Restore:
//   - a buyer has at most one live ticket (waiting, or admitted with access
//     not yet expired); the buyer index points to the buyer's latest ticket;
//   - before the draw every ticket has number 0; the draw numbers the waiting
//     pre-queue 1..k in drawn order; after it each new ticket takes the next
//     number, so numbers 1..n are each held by exactly one ticket;
//   - the line (a Fenwick tree over numbers) holds 1 exactly at the numbers of
//     waiting tickets, so a position is a prefix sum: O(log n);
//   - shopping counts the tickets that are admitted, not done, not left, and
//     not yet found expired;
//   - every number at or above the head that no longer waits is one that
//     left, and the gone marks are set exactly at the numbers that no longer
//     wait, so a View's position agrees with the Fenwick tree's;
//   - the revoked set holds exactly the tickets that left while admitted.
//
// Soft state: the token bucket and the measured admission rate depend on when
// Tick ran, not only on the events, so replay does not rebuild them (they
// start afresh at the first Tick after recovery). Snapshots keep them.
package line
