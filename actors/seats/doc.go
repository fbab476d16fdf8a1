// Package seats is the seat-and-hold core of one zone: its layout, best
// available and adjacent picks, holds and their states, orders, the expiry
// heap, and the snapshot of all of it. It is a deterministic state machine:
// no I/O, no clock reads (times are Unix ms passed in), no goroutines, no
// locks. The zone actor in package actors owns one Zone per zone and is the
// only goroutine that touches it.
//
// # What it may import
//
// The standard library and onsale/wal, for the record types (wal.Event,
// wal.FieldReader) that the core changes by and snapshots with. Nothing
// else: not the actor library, not HTTP, not package actors. deps_test.go
// holds that.
//
// # Invariants
//
// Decisions do not change seats, holds, payments or cancels. Apply is the only mutator of seats
// and holds, and runs the same way live and in recovery replay, so a zone
// rebuilt from the log equals the zone that wrote the log. Every check runs before the first write: an event that does
// not fit changes nothing. After every Apply:
//   - free+held+sold == Size();
//   - a seat is held by exactly one active hold, or sold to exactly one
//     purchased, not cancelled hold, or free;
//   - the expiry heap holds every active hold (and, lazily, some ended ones).
//   - the ended heap holds every released or expired hold kept, except
//     those parked by an open payment; DropEnded drops from it (see
//     zone_retention.go), so the holds kept are the live ones, the orders,
//     and ended ones within the caller's retention.
//
// ZoneDef is part of the sale definition, written as JSON in the
// sale_created record; the snapshot format is documented in
// zone_snapshot.go. Both are on disk: change them only with a new version.
//
// # Where to start reading
//
// zone_decide.go first: the decisions a zone makes for each request (hold,
// release, checkout, order, cancel, expiry) and the Decision they return,
// which the zone actor carries out: write Decision.Event, Apply it once the
// log has taken it, answer once it is durable. Then zone.go (Zone, Hold,
// Apply), zone_payment.go (payment attempts and cancels, recorded before
// money moves), zone_layout.go (seat names), zone_pick.go (best available),
// zone_expiry.go (the expiry heap), zone_retention.go (dropping ended
// holds) and zone_snapshot.go.
//
// What belongs to the sale and not to one zone comes in from the caller:
// the buyer's max_per_buyer account (Allowance), the other zones' free
// counts, the pause flag and the hold lifetime (Terms, HoldRequest). Ids are
// made by the caller too (Terms.NewHoldID), since they need randomness.
package seats
