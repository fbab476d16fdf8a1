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
// A zone's seats (package actors/seats, seats.Zone) and the waiting room
// (package actors/line, line.Room) are deterministic state machines: no I/O,
// no clock reads, no goroutines, and no imports but the standard library and
// wal. Their single mutator, Apply, takes a wal.Event; the same function runs
// live and during recovery, so a replayed log rebuilds exactly the state that
// answered the buyers. zone_actor.go and room_actor.go are the thin actors
// around them; the rules start at actors/seats/doc.go and actors/line/doc.go.
//
// # Durability: decide, append, apply, answer when durable
//
// An actor carries out each command in the same four steps:
//
//  1. decide: the core reads its state and the command and makes the record
//     to write and the answer to give, or a refusal. It leaves the core as
//     it was (but for a checkout's in-progress mark); seats a hold reserves
//     against max_per_buyer are given back if its record is refused.
//  2. append: the record goes to the log writer. One the log refuses (its
//     queue is full, or it failed) is never applied: that request is refused
//     and nothing changes.
//  3. apply: the record is applied to the core at once, before it is
//     durable, so the next request in the mailbox sees the seat taken; the
//     actor goes on with its mailbox without waiting for the disk.
//  4. answer when durable: the log writer fsyncs the batch holding the
//     record, and its callback finishes the caller's call; a zone finishes
//     it once the record is both durable and applied (zoneCommit). An answer
//     with no record of its own (a read, a checkout's begin, a repeated
//     release) may report state that the owner's earlier records changed, so
//     it waits for those to be durable (durable.go).
//
// The zone actor runs the steps around a seats.Decision (zone_actor.go,
// carry). The room's core runs the first three inside each decision, with
// the room actor as its line.Log; the actor answers once the change is
// durable and published (room_actor.go, answerPublished).
//
// So an answer is never sent for a change that is not durable. A change that
// is applied but not yet durable can be seen by a reader (a seat shows as
// held a millisecond early); if the log then fails for good (a failed fsync),
// nobody was told it succeeded, and the engine stops (Config.Fatal): a
// restart rebuilds from the log, in which that change does not exist.
//
// A disk that is full, fails a write or hangs an fsync does not stop the
// engine. The log never fails a record it took for that: it cuts off what it
// half wrote and writes the same batch again once it can, so memory and log
// stay in step, and those few requests wait (answering at their timeout if
// it lasts). Meanwhile it refuses every new record at step 2 with
// wal.ErrUnavailable, before anything is applied: the request answers
// CodeStorageUnavailable and nothing changes (Engine.StorageErr says so for
// /readyz). Reads answer from memory; one that must wait for its owner's
// records (durable.go) waits for that batch too.
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
// Answers are kept idemRetention (24 hours, API.md's minimum).
//
// # Retention
//
// A released or expired hold stays readable for Config.HoldRetention after
// it ends (the flag allows no less than idemRetention, so a hold outlives
// the answer rebuilt from it), then the zone drops it at a tick; replay
// drops it too, on the records' clock. A dropped hold answers not_found. Orders are never
// dropped, nor a hold whose payment is open. Memory follows the live holds
// and the orders, not the holds ever made.
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
