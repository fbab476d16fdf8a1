// Package actors is onsale's engine: every on-sale runs as a tree of actors
// that own its state in memory, and every change is made durable in the
// write-ahead log (package wal) before anyone is told it happened.
//
// # The tree
//
//	sale-<n>            the sale actor: definition, pause/resume; supervises
//	├── room            the waiting room (line.Room): line, draw, admissions
//	└── zone-<id>       one per zone (seats.Zone): seats, holds, orders, expiry
//
// A zone actor is the only goroutine that touches its seats, so two requests
// for one seat are ordered by its mailbox: exactly one wins. There are no
// locks on seats. The HTTP edge sends a command carrying a *call straight to
// the zone's PID and waits on the call with a timeout; actors never block,
// never sleep and never wait on another actor.
//
// # Pure cores, thin actors
//
// Zone and the waiting room are deterministic state machines: no I/O, no
// clock reads, no goroutines. Their single mutator, Apply, takes a wal.Event;
// the same function runs live and during recovery, so a replayed log
// rebuilds exactly the state that answered the buyers. The waiting room is a
// package of its own, actors/line, which imports only the standard library
// and wal; room_actor.go is the thin actor around it.
//
// # Durability: apply, append, answer
//
// A zone asks its core (package actors/seats) to decide a command, hands the
// resulting event to the log writer, applies it in memory as soon as the
// writer has taken it (so the next request in its mailbox sees the seat
// taken), and goes on with its mailbox. The zone's rules are all in the
// core, starting at actors/seats/doc.go; zone_actor.go only carries the
// decisions out. The waiting room does the same (actors/line): an event the
// log refuses is never applied, so a full log queue refuses one request and
// changes nothing. The buyer's call is finished by the log writer's callback
// after the batch holding the event is fsynced. So an answer is never sent
// for a change that is not durable. A change that is applied but not yet
// durable can be seen by a reader (a seat shows as held a millisecond
// early); if the log then fails, nobody was told it succeeded, and the
// engine stops (Config.Fatal): a restart rebuilds from the log, in which
// that change does not exist.
//
// # Reading the waiting room
//
// The room actor publishes a line.View after every change, swapped whole
// through an atomic pointer on the room's handle. The sale's figures
// (Sale.Queue), the pause a hold checks (Sale.Paused) and the revoked
// admissions an access token is checked against (Sale.Revoked) are read from
// it, without a message to the room. The sale actor logs a pause; the room
// applies it once durable, publishes it, and only then is the caller
// answered.
//
// # max_per_buyer
//
// The limit spans a sale's zones, so it has one owner: the sale's ledger, a
// map of buyer to seats held plus bought, under a mutex held only for a map
// operation. A zone reserves against it (as the core's seats.Allowance)
// before it holds and gives back what a refusal, release, expiry or cancel
// returns. Reservation precedes the hold's
// append and every give-back follows its event's append, so in log order no
// buyer ever exceeds the limit; engine_model_test.go checks that by replaying
// the log.
//
// # Idempotency
//
// Hold and checkout requests with an Idempotency-Key map (buyer, endpoint,
// key) to the call that first answered them; a duplicate that arrives while
// the first is in flight waits on the same call. A success is stored in its
// own event (the hold or order carries the key and a hash of the request); a
// refusal that API.md stores (4xx) is written as an idem_result event before
// it is answered. 5xx answers are not stored, so a retry runs again.
//
// # Recovery and snapshots
//
// Open loads the snapshots, replays the log (records an owner's snapshot
// covers are skipped), rebuilds the ledger and the idempotency table from the
// cores, releases holds whose expiry passed while the process was down, and
// only then starts the actors. A snapshot is taken per owner inside its
// Receive and tagged with the sequence of a marker record appended right
// after; once all are written, the log is truncated in front of the lowest.
//
// # Failures
//
// Bad input is an *Error with a stable code and changes nothing. A log write
// or fsync error fails the waiting calls and stops the engine. A panic in a
// zone or room is a broken invariant: its supervisor stops it and the engine,
// rather than restarting it with half-updated memory.
package actors
