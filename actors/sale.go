package actors

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"onsale/actors/seats"
	"onsale/wal"
)

// Sale is the handle of one on-sale that the HTTP edge holds: its fixed
// definition, the PIDs of its actors, and state that many goroutines read
// (counts published by the zones, the room's View). Seat state is not here:
// each zone actor owns its own.
type Sale struct {
	e         *Engine
	idx       uint16 // routing index in server-made ids; fixed at creation
	def       SaleDef
	opensAt   int64 // unix ms
	holdTTLMs int64
	seed      [32]byte // secret draw seed, published after the opening
	createdAt int64

	pid      *actor.PID // the sale actor; set before the handle is published
	zones    []*zoneHandle
	zoneByID map[string]*zoneHandle
	room     *roomHandle

	ledger *ledger
	idem   *idemTable
	// pausedAtStart is the pause the sale's records leave, set by creation
	// and recovery and handed to the sale and room actors when they start.
	pausedAtStart bool
	// holdsPlaced counts holds made since start, for the measured hold rate.
	holdsPlaced atomic.Int64
	// seatsHeld counts the seats of those holds, for the seats a buyer
	// takes on average (the waiting room's stock cap).
	seatsHeld atomic.Int64
	// holdsExpired counts holds released by expiry since start.
	holdsExpired atomic.Int64

	// Recovery only: snapshot sequence of the sale-level state.
	snapSeq uint64
}

// zoneHandle is what others know of a zone: its definition, PID and the
// counts it publishes after every change.
type zoneHandle struct {
	idx uint16
	def *ZoneDef
	pid *actor.PID
	// counts packs free, held and sold in one word (see setCounts), so that
	// a reader never sees one change half published: free+held+sold is the
	// zone's size in every reading. Written by the zone actor (by recovery
	// before it starts).
	counts atomic.Uint64
	// version moves on with every change the zone actor applies (and once
	// when it starts), after the change is in memory: a reader that saw
	// version v and made something of the seats knows it is stale once the
	// version is past v. Written by the zone actor only.
	version atomic.Uint64
	// rowStamps has one entry per row of a reserved zone (none in general
	// admission): the version at which a seat of the row last changed, 0
	// if none has since start. It is stored before the version it names is
	// published, by the zone actor only. The largest stamp over some rows
	// moves whenever one of their seats changes and never otherwise, so
	// what a reader made of those rows is stale exactly when it moves: a
	// change elsewhere in the zone leaves it be. At most seats.RowsMax
	// words (8 KB) a zone.
	rowStamps []atomic.Uint64

	// Recovery only, then handed to the actor: the rebuilt core, the stored
	// refusals, and the sequence of the snapshot the core came from.
	// replayClock is the latest time of a record replayed into the zone.
	core        *seats.Zone
	idemFails   map[idemKey]idemFail
	snapSeq     uint64
	replayClock int64
}

// zoneCountBits is the width of each count in zoneHandle.counts: a zone has
// at most 1,000,000 seats (API.md), below 1<<20, and three counts of 21 bits
// fit one word.
const zoneCountBits = 21

// setCounts publishes a zone's counts at once.
func (zh *zoneHandle) setCounts(free, held, sold int) {
	const lim = 1 << zoneCountBits
	if free < 0 || held < 0 || sold < 0 || free >= lim || held >= lim || sold >= lim {
		panic(fmt.Sprintf("zone %q: counts %d/%d/%d out of range", zh.def.ID, free, held, sold))
	}
	zh.counts.Store(uint64(free) | uint64(held)<<zoneCountBits | uint64(sold)<<(2*zoneCountBits))
}

// loadCounts reads what setCounts published last.
func (zh *zoneHandle) loadCounts() (free, held, sold int64) {
	const mask = 1<<zoneCountBits - 1
	c := zh.counts.Load()
	return int64(c & mask), int64(c >> zoneCountBits & mask), int64(c >> (2 * zoneCountBits) & mask)
}

// ID is the sale's id.
func (s *Sale) ID() string { return s.def.ID }

// Def is the sale's definition with defaults filled in.
func (s *Sale) Def() SaleDef { return s.def }

// OpensAt is the opening time in unix ms.
func (s *Sale) OpensAt() int64 { return s.opensAt }

// Paused reports whether the organizer paused the sale: the sale actor
// logs a pause, the room applies it once durable and publishes it in its
// View, which is the one place the pause is kept.
func (s *Sale) Paused() bool { return s.room.view().Paused }

// Counts returns the live stock of every zone, in definition order.
func (s *Sale) Counts() []ZoneCounts {
	out := make([]ZoneCounts, len(s.zones))
	for i, zh := range s.zones {
		free, held, sold := zh.loadCounts()
		out[i] = ZoneCounts{ID: zh.def.ID, Free: int(free), Held: int(held), Sold: int(sold)}
	}
	return out
}

// Stock sums the counts over all zones.
func (s *Sale) Stock() (free, held, sold int64) {
	for _, zh := range s.zones {
		f, h, d := zh.loadCounts()
		free, held, sold = free+f, held+h, sold+d
	}
	return free, held, sold
}

func (s *Sale) otherZonesFree(except uint16) []ZoneFree {
	out := []ZoneFree{}
	for _, zh := range s.zones {
		if zh.idx == except {
			continue
		}
		if f, _, _ := zh.loadCounts(); f > 0 {
			out = append(out, ZoneFree{ID: zh.def.ID, Free: int(f)})
		}
	}
	return out
}

// Zone reports whether the sale has a zone with that id, and whether it is
// reserved seating.
func (s *Sale) Zone(id string) (exists, reserved bool) {
	zh, ok := s.zoneByID[id]
	if !ok {
		return false, false
	}
	return true, len(zh.def.Rows) > 0
}

// finish answers c, and forgets its idempotency key when the answer is one
// that is not stored, so that a retry runs again.
func (s *Sale) finish(c *call, r Result) {
	// Forget first: once finished, the caller may retry at once, and the
	// retry must not find this answer.
	if c.key.key != "" && !storable(r) {
		s.idem.forget(c)
	}
	c.finish(r)
}

// HoldRequest is a buyer's request for seats in one zone.
type HoldRequest struct {
	Buyer             string
	Zone              string
	Quantity          int
	Seats             []string
	AcceptAlternative bool
	IdemKey           string // "" for none
}

// hash identifies the request for idempotency: same key with another
// request is refused. FNV-1a is stable across restarts, which maphash is not.
func (r *HoldRequest) hash() uint64 {
	h := fnv.New64a()
	var b [8]byte
	h.Write([]byte(r.Zone))
	h.Write([]byte{0})
	binary.LittleEndian.PutUint64(b[:], uint64(r.Quantity))
	h.Write(b[:])
	for _, s := range r.Seats {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	if r.AcceptAlternative {
		h.Write([]byte{1})
	}
	return h.Sum64()
}

// Hold holds seats for a buyer, durably, and returns the hold or a refusal.
// The caller has checked the request's syntax and the buyer's admission.
func (s *Sale) Hold(r HoldRequest) Result {
	zh, ok := s.zoneByID[r.Zone]
	if !ok {
		return Result{Err: errorf(CodeBadRequest, "sale %q has no zone %q", s.def.ID, r.Zone)}
	}
	c, fresh, err := s.begin(r.Buyer, scopeHold, r.IdemKey, r.hash())
	if err != nil {
		return Result{Err: err}
	}
	if fresh {
		s.e.sys.Root.Send(zh.pid, &holdCmd{c: c, buyer: r.Buyer, quantity: r.Quantity, seats: r.Seats, acceptAlt: r.AcceptAlternative})
	}
	return c.wait(s.e.cfg.CallTimeout)
}

// begin returns a call for a request: a fresh one without a key, else the
// idempotency table's.
func (s *Sale) begin(buyer string, scope idemScope, key string, hash uint64) (*call, bool, *Error) {
	if key == "" {
		return newCall(), true, nil
	}
	return s.idem.begin(idemKey{buyer: buyer, scope: scope, key: key}, hash, s.e.nowMs())
}

// Seats returns the seat map of a reserved zone (nil for general
// admission), CodeNotFound for an unknown zone, CodeUnavailable when the zone
// did not answer in time.
func (s *Sale) Seats(zone string) ([]SeatView, *Error) {
	zh, ok := s.zoneByID[zone]
	if !ok {
		return nil, errorf(CodeNotFound, "sale %q has no zone %q", s.def.ID, zone)
	}
	if len(zh.def.Rows) == 0 {
		return nil, nil
	}
	r, err := s.SeatRows(zone, 0, len(zh.def.Rows))
	if err != nil {
		return nil, err
	}
	// Seat indexes run row by row in definition order, numbered from 1
	// within a row: the names are rendered here, off the zone's actor.
	out := make([]SeatView, 0, len(r.States))
	i := 0
	for _, row := range r.Rows {
		for n := 1; n <= row.Seats; n++ {
			out = append(out, SeatView{ID: row.Row + "-" + strconv.Itoa(n), Status: r.Status(i)})
			i++
		}
	}
	return out, nil
}

// SeatRows is a copy of the seat states of whole rows of a reserved zone,
// taken by the zone's actor at one moment, with the zone's counts, version
// and the rows' stamp at that moment.
type SeatRows struct {
	Counts  ZoneCounts
	Version uint64 // the zone's SeatsVersion when the copy was taken
	// Stamp is the rows' SeatRowsStamp when the copy was taken: the copy
	// is stale once SeatRowsStamp of the same rows is past it.
	Stamp  uint64
	Rows   []RowDef // the rows copied, in definition order; shared, never change it
	States []byte   // one per seat of Rows, row by row; read it with Status
}

// Status is the status of the i-th seat of r: "free", "held" or "sold".
func (r *SeatRows) Status(i int) string { return seats.SeatState(r.States[i]).String() }

// SeatRows copies the seat states of rows [first, last) of a reserved zone
// (row indexes in definition order). CodeNotFound for an unknown zone or one
// without rows, CodeUnavailable when the zone did not answer in time. The
// caller checks the row range; one outside the zone is a bug.
func (s *Sale) SeatRows(zone string, first, last int) (SeatRows, *Error) {
	zh, ok := s.zoneByID[zone]
	if !ok || len(zh.def.Rows) == 0 {
		return SeatRows{}, errorf(CodeNotFound, "sale %q has no reserved zone %q", s.def.ID, zone)
	}
	rows := zh.def.Rows
	if first < 0 || first > last || last > len(rows) {
		panic(fmt.Sprintf("zone %s/%s: rows [%d, %d) outside 0..%d", s.def.ID, zone, first, last, len(rows)))
	}
	// Seat indexes run row by row in definition order: rows are at most
	// 1,000, so summing their lengths is cheap next to the copy.
	var from, to uint32
	for i, r := range rows[:last] {
		if i < first {
			from += uint32(r.Seats)
		}
		to += uint32(r.Seats)
	}
	reply := make(chan seatsCopy, 1)
	s.e.sys.Root.Send(zh.pid, &seatsCmd{from: from, to: to, firstRow: first, lastRow: last, reply: reply})
	var c seatsCopy
	select {
	case c = <-reply:
	case <-after(s.e.cfg.CallTimeout):
		return SeatRows{}, errorf(CodeUnavailable, "zone %q did not answer in time; retry", zone)
	}
	return SeatRows{
		Counts:  ZoneCounts{ID: zone, Free: c.free, Held: c.held, Sold: c.sold},
		Version: c.version, Stamp: c.stamp, Rows: rows[first:last:last], States: c.states,
	}, nil
}

// SeatRowsStamp is the largest change stamp of rows [first, last) of a
// reserved zone (see zoneHandle.rowStamps); 0 for an unknown zone or one
// without rows. It costs one atomic load per row and no message to the
// zone, so a reader may ask it on every request: whatever was made of a
// SeatRows of those rows whose Stamp is below it is stale. The caller
// checks the row range, as for SeatRows.
func (s *Sale) SeatRowsStamp(zone string, first, last int) uint64 {
	zh, ok := s.zoneByID[zone]
	if !ok {
		return 0
	}
	return zh.rowsStamp(first, last)
}

// rowsStamp is the largest stamp of rows [first, last); see rowStamps.
func (zh *zoneHandle) rowsStamp(first, last int) uint64 {
	if first < 0 || first > last || last > len(zh.rowStamps) {
		panic(fmt.Sprintf("zone %s: rows [%d, %d) outside 0..%d", zh.def.ID, first, last, len(zh.rowStamps)))
	}
	var m uint64
	for i := first; i < last; i++ {
		m = max(m, zh.rowStamps[i].Load())
	}
	return m
}

// ZoneCounts is the live stock of one zone, as the zone last published it;
// false for an unknown zone. Counts without the slice of every zone.
func (s *Sale) ZoneCounts(zone string) (ZoneCounts, bool) {
	zh, ok := s.zoneByID[zone]
	if !ok {
		return ZoneCounts{}, false
	}
	free, held, sold := zh.loadCounts()
	return ZoneCounts{ID: zone, Free: int(free), Held: int(held), Sold: int(sold)}, true
}

// SeatsVersion is the zone's version (see zoneHandle.version); 0 for an
// unknown zone. Whatever was made of a SeatRows whose Version is below it
// is stale.
func (s *Sale) SeatsVersion(zone string) uint64 {
	zh, ok := s.zoneByID[zone]
	if !ok {
		return 0
	}
	return zh.version.Load()
}

// Stopped is closed when the engine that runs the sale stops: a reader
// that waits on the sale (an event stream) ends then.
func (s *Sale) Stopped() <-chan struct{} { return s.e.stop }

// SetPaused pauses or resumes the sale, durably.
func (s *Sale) SetPaused(paused bool) Result {
	c := newCall()
	s.e.sys.Root.Send(s.pid, &pauseCmd{c: c, paused: paused})
	return c.wait(s.e.cfg.CallTimeout)
}

// pauseCmd asks the sale actor to pause or resume.
type pauseCmd struct {
	c      *call
	paused bool
}

// saleActor owns the sale definition and the pause state, spawns the zone
// actors as its children and supervises them. It is kept thin on purpose: a
// panic here would take its children with it.
type saleActor struct {
	s       *Sale
	started chan struct{}
	log     ownerLog // the sale's own records (pause, resume)
	// paused is the pause as this actor last logged it, for its snapshot
	// and to answer a repeated pause or resume without a record. Readers
	// see the pause in the room's View once it is durable.
	paused bool
}

func (a *saleActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		for _, zh := range a.s.zones {
			zh := zh
			za := newZoneActor(a.s, zh)
			zh.core, zh.idemFails = nil, nil
			za.publish()
			pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return za },
				actor.WithDispatcher(a.s.e.dispatcher())), "zone-"+zh.def.ID)
			if err != nil {
				panic("spawn zone actor: " + err.Error())
			}
			zh.pid = pid
		}
		if rh := a.s.room; rh != nil {
			ra := newRoomActor(a.s, rh)
			pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return ra },
				actor.WithDispatcher(a.s.e.dispatcher())), "room")
			if err != nil {
				panic("spawn room actor: " + err.Error())
			}
			rh.pid = pid
		}
		close(a.started)
	case *pauseCmd:
		a.pause(m)
	case followPauseMsg:
		a.followPause(m)
	case *snapCmd:
		a.snapshot(m)
	}
}

func (a *saleActor) pause(m *pauseCmd) {
	s := a.s
	if a.paused == m.paused {
		s.answerDurable(&a.log, m.c, Result{})
		return
	}
	t := wal.TypeSaleResumed
	if m.paused {
		t = wal.TypeSalePaused
	}
	ev := &wal.Event{Type: t, Sale: s.def.ID, At: s.e.nowMs()}
	c := m.c
	// Once durable and set, the room learns of it, publishes it and answers:
	// the answer's figures (queue.state, admit_per_s) then already show the
	// change, and the caller's next hold finds the flag as it was told. The
	// log may call back before the assignment below, so a join waits for
	// both.
	room := s.room.pid
	j := newCommitJoin(func(r Result) {
		if r.Err != nil {
			c.finish(r)
			return
		}
		s.e.sys.Root.Send(room, roomPauseMsg{paused: m.paused, c: c})
	})
	if err := a.log.append(ev, func(_ uint64, err error) {
		if err != nil {
			j.durable(Result{Err: unavailable(err)})
			return
		}
		j.durable(Result{})
	}); err != nil {
		c.finish(Result{Err: unavailable(err)})
		return
	}
	a.paused = m.paused
	j.applied()
}

// SaleStats are counters since the server started.
type SaleStats struct {
	HoldsPlaced  int64 `json:"holds_placed"`
	HoldsExpired int64 `json:"holds_expired"`
}

// Stats returns the sale's counters.
func (s *Sale) Stats() SaleStats {
	return SaleStats{HoldsPlaced: s.holdsPlaced.Load(), HoldsExpired: s.holdsExpired.Load()}
}

// ValidSeat reports whether name is a seat of a reserved zone: "ROW-N" with
// a row of the zone and N from 1 to the row's length.
func (s *Sale) ValidSeat(zone, name string) bool {
	zh, ok := s.zoneByID[zone]
	if !ok {
		return false
	}
	dash := strings.LastIndexByte(name, '-')
	if dash <= 0 {
		return false
	}
	n, err := strconv.Atoi(name[dash+1:])
	if err != nil || n < 1 || strconv.Itoa(n) != name[dash+1:] {
		return false
	}
	for _, r := range zh.def.Rows {
		if r.Row == name[:dash] {
			return n <= r.Seats
		}
	}
	return false
}
