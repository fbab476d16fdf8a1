package line

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"

	"onsale/wal"
)

// Limits of the waiting room. Each bounds memory or the size of one record.
const (
	// roomTicketsMax bounds the tickets of one sale, expired ones included
	// (an expired queue id still answers GET). A ticket costs about 140
	// bytes with its ids and indexes (TestRoomMemoryMillion: 131 MB for a
	// line of 1,000,000), so a full line is about 275 MB.
	roomTicketsMax = 2_000_000
	// roomPreQueueMax bounds the joiners before the opening so that the drawn
	// order fits in one queue_drawn record: 1,000,000 ids of at most 64 bytes
	// plus a length byte is 65 MB, under the log's 64 MiB blob limit.
	roomPreQueueMax = 1_000_000
	// roomIDBytesMax bounds queue ids and buyer ids: API ids are at most 64
	// characters, server-made queue ids 24.
	roomIDBytesMax = 64
	// ActiveLimitMax and AdmitPerSMax are the API's ranges for
	// waiting_room.active_limit and admit_per_s; the automatic rate is capped
	// at AdmitPerSMax too. SaleDef.Normalize (package actors) checks a
	// definition against them, so they are said once, here.
	ActiveLimitMax = 1_000_000
	AdmitPerSMax   = 100_000
	// AccessTTLMax is the API's longest access window, 86,400 s, in ms.
	AccessTTLMax = 86_400_000
	// roomAdmitBatchMax bounds the ids in one queue_admitted record: one
	// second at the highest rate, 6.5 MB at most.
	roomAdmitBatchMax = 100_000
	// roomBucketBurstMs is how much admission credit the token bucket keeps:
	// one second, so a late tick loses nothing and a slot freed after a long
	// wait on active_limit does not release more than a second's worth.
	roomBucketBurstMs = 1_000
	// roomAutoRateFloor is the automatic rate (admissions/s) before the
	// server has measured any holds, and its lowest value after: a server
	// that makes tens of thousands of durable holds a second is in no
	// danger from 500 admissions a second, and the stock cap below keeps a
	// small sale from admitting more than it can sell.
	roomAutoRateFloor = 500
	// roomAutoHoldHeadroom multiplies the measured hold rate into the
	// automatic admission rate: the measured rate is what the server did, not
	// what it could do, so admitting faster lets the rate climb while the
	// server keeps up; active_limit and the stock cap stop it.
	roomAutoHoldHeadroom = 2
	// roomAutoSeatsPerHoldGuess is how many seats a buyer is assumed to
	// want before any hold was measured (Stock.SeatsPerHold).
	roomAutoSeatsPerHoldGuess = 2
	// roomAutoFreshMs is how long an admitted buyer who has not held counts
	// against the stock cap (see slots).
	// A buyer who means to hold does so within a minute or two; after that
	// they either hold seats (and do not compete for the free ones) or have
	// gone, and an access window of 15 minutes must not keep the last seats
	// from the line meanwhile. active_limit still counts every shopper.
	roomAutoFreshMs = 120_000
	// roomRateTauMs is the time constant of the measured admission rate
	// (EWMA): eta_s follows a change of pace within about ten seconds.
	roomRateTauMs = 10_000
	// roomRateSampleMinMs is the shortest interval the measured rate is
	// sampled over; shorter ones are merged into the next, which keeps a
	// burst of ticks from making the average jumpy.
	roomRateSampleMinMs = 100
	// roomETARateFloor (admissions/s) is what eta_s assumes when the line does
	// not move (paused, sold out, blocked on active_limit): it keeps eta_s a
	// finite number.
	roomETARateFloor = 1.0
	// PollBudgetDefault is the polls per second a sale's whole line may
	// cause (Config.PollBudget): a tenth or so of what this server answers
	// on two cores, however long the line (TestRoomPollLoadBound).
	PollBudgetDefault = 10_000
	// PollBudgetMax bounds Config.PollBudget: more than a million polls a
	// second is no budget.
	PollBudgetMax = 1_000_000
	// roomPollAfterMaxS is the longest poll_after_s: the back of a long line
	// checks in hourly, and that is also what expired tickets are told.
	roomPollAfterMaxS = 3_600
	// roomPollSoldOutMinS is the shortest poll while no seat is free (sold
	// out, or all held): seats come back one ended hold at a time, and the
	// event stream tells at once.
	roomPollSoldOutMinS = 5
	// roomTicketsPerChunk is how many tickets share one allocation; chunks
	// never move, so a *Ticket stays valid as the line grows.
	roomTicketsPerChunk = 1 << 12
)

// Errors of Join, Apply and Restore.
var (
	// ErrLineFull: the sale already has roomTicketsMax tickets, or
	// roomPreQueueMax before the opening.
	ErrLineFull = errors.New("waiting room: the line is full")
	// ErrBadID: a buyer or queue id is empty or longer than 64 bytes.
	ErrBadID = errors.New("waiting room: bad buyer or queue id")
	// ErrQueueIDTaken: the queue id is already in use; queue ids are random,
	// so this is a caller's bug.
	ErrQueueIDTaken = errors.New("waiting room: queue id already in use")
	// ErrEvent: Apply was given an event that does not fit the state.
	ErrEvent = errors.New("waiting room: event does not apply")
	// ErrSnapshot: Restore was given bytes that are not a valid
	// snapshot.
	ErrSnapshot = errors.New("waiting room: bad snapshot")
	// ErrLogRefused: the room's Log refused an event a decision made; the
	// log's error is wrapped too. The event was not applied.
	ErrLogRefused = errors.New("waiting room: the log refused an event")
	// ErrConfig: a Config outside the API's ranges.
	ErrConfig = errors.New("waiting room: bad config")
)

// Config is a sale's waiting-room settings. It never changes.
type Config struct {
	OpensAt     int64    // unix ms; the draw happens at the first Tick or Join at or after it
	ActiveLimit int      // buyers shopping at once, 1..1,000,000
	AdmitPerS   int      // admissions/s, 0..100,000; 0 = automatic
	AccessTTL   int64    // ms, 1..86,400,000
	Seed        [32]byte // secret draw seed; its SHA-256 is published before the opening
	// PollBudget is the polls/s the whole line may cause (poll_after_s is
	// set so), 1..PollBudgetMax; 0 means PollBudgetDefault.
	PollBudget float64
}

// pollBudget is c.PollBudget with its default.
func (c Config) pollBudget() float64 {
	if c.PollBudget > 0 {
		return c.PollBudget
	}
	return PollBudgetDefault
}

// check reports whether c is within the API's ranges. It is the room's
// assertion on what it is given, not the check of an organizer's input:
// SaleDef.Normalize refuses a definition outside these ranges with the
// field's name, so a Config that fails here is a bug (New panics) or a
// damaged record (Restore refuses).
func (c Config) check() error {
	switch {
	case c.ActiveLimit < 1 || c.ActiveLimit > ActiveLimitMax:
		return fmt.Errorf("%w: active_limit %d", ErrConfig, c.ActiveLimit)
	case c.AdmitPerS < 0 || c.AdmitPerS > AdmitPerSMax:
		return fmt.Errorf("%w: admit_per_s %d", ErrConfig, c.AdmitPerS)
	case c.AccessTTL < 1 || c.AccessTTL > AccessTTLMax:
		return fmt.Errorf("%w: access ttl %d ms", ErrConfig, c.AccessTTL)
	case !(c.PollBudget >= 0 && c.PollBudget <= PollBudgetMax):
		return fmt.Errorf("%w: poll budget %v/s", ErrConfig, c.PollBudget)
	}
	return nil
}

// TicketState is a ticket's state as the events left it.
type TicketState uint8

const (
	TicketWaiting  TicketState = iota + 1 // in line, or in the pre-queue (Num 0)
	TicketAdmitted                        // admitted; expired once AccessExpires passes
	TicketExpired                         // left, or gave up its admission
)

// Ticket is one place in line. It belongs to the Room and its actor: read it,
// never change it, and do not keep it past the actor's turn.
type Ticket struct {
	QueueID, Buyer string
	// Num is the ticket number: the place in line. 0 while in the
	// pre-queue, and for ever for a pre-queue ticket that left before the draw.
	Num           uint64
	JoinedAt      int64
	AdmittedAt    int64 // 0 until admitted
	AccessExpires int64 // 0 until admitted; access is valid while now < AccessExpires
	// State is what the events recorded. An admission whose AccessExpires
	// has passed is expired although State still says admitted: time alone
	// ends it, without an event. StateAt tells.
	State TicketState
	// Done: the buyer completed a checkout, so the ticket no longer counts
	// against ActiveLimit; it stays admitted until AccessExpires.
	Done bool
	// active: counted in Room.shopping. Admitted, not Done, not left, and
	// not yet found expired by Room.expire.
	active bool
	// held: the buyer placed a hold while shopping (Held); soft state.
	held bool
}

// StateAt is the ticket's state at now, with time-based expiry applied.
func (t *Ticket) StateAt(now int64) TicketState {
	if t.State == TicketAdmitted && now >= t.AccessExpires {
		return TicketExpired
	}
	return t.State
}

// Stock is what the zones report (the caller reads it from atomics): seats
// free and held across the sale, and the server's measured hold rate.
type Stock struct {
	Free, Held int64
	HoldsPerS  float64
	// SeatsPerHold is the measured mean of seats per hold; 0 before any.
	SeatsPerHold float64
}

func (st Stock) soldOut() bool { return st.Free <= 0 && st.Held <= 0 }

// TicketView is what GET queue/{id} shows.
type TicketView struct {
	State         string // waiting, admitted, sold_out or expired
	Position      int64  // 1 = next; 0 = absent (pre-queue, admitted, expired)
	ETAS          int64  // seconds until admission as estimated now; always >= 0
	PollAfterS    int64  // when to ask again, >= 1
	OpensInS      int64  // seconds until opens_at for the pre-queue; -1 = absent
	AccessExpires int64  // unix ms while admitted; 0 = absent
}

// Room is one sale's waiting room. The decision methods (Join, Leave,
// Complete, Tick) return the events to make durable and have already applied
// them through Apply, the single mutator, which recovery calls with the same
// events in the same order. Owned by the room actor; never touched from
// another goroutine. Use it through its pointer only: its indexes point
// into its own ticket store, so a copy would share and corrupt them.
type Room struct {
	sale     string
	cfg      Config
	seedHash string // hex SHA-256 of cfg.Seed, published before the opening

	tickets  roomTickets
	byID     roomIndex // queue id -> ticket index
	byBuyer  roomIndex // buyer -> index of their latest ticket
	byNum    []uint32  // byNum[n-1] = index of the ticket numbered n
	line     roomLine  // 1 at each waiting number
	head     uint64    // lowest number that may still be waiting; from 1
	preQueue []uint32  // tickets that joined before the draw, in join order; nil after it

	drawn       bool
	drawCount   uint64 // tickets numbered by the draw: numbers 1..drawCount
	lineWaiting int64  // numbered tickets waiting
	preWaiting  int64  // pre-queue tickets waiting
	shopping    int64  // tickets with active set
	// fresh holds the tickets admitted within the last roomAutoFreshMs, in
	// admission order, from freshHead on; freshCount counts the active ones
	// among them, and freshCut is the admission time at or before which a
	// ticket has left fresh (see age). Not in the snapshot: rebuilt from the
	// tickets, and a pure function of them and the time once aged.
	fresh         []uint32
	freshHead     int
	freshCount    int64
	freshCut      int64
	admittedTotal int64
	access        roomAccessHeap // active tickets by AccessExpires
	// gone marks the numbers that no longer wait, and revoked holds the
	// queue ids that left after being admitted: both for the View, which
	// shares them. Not in the snapshot: rebuilt from the tickets.
	gone    roomGone
	revoked *revokedSet

	paused bool  // set by the sale; the pause itself is the sale's event
	clock  int64 // latest time seen; decisions never go back before it

	// Soft state (see the package comment above).
	bucketOn     bool
	tokens       float64 // admission credit
	refilledAt   int64
	sampleOn     bool
	sampledAt    int64
	sampledTotal int64
	sampleLine   bool    // a line existed at sampledAt
	rateOn       bool    // rate holds a measurement
	rate         float64 // EWMA of admissions/s while a line exists

	onAdmitted func(*Ticket)
	onChange   func(*Ticket)
	// span caches budgetSpan for a line of spanFor waiting (pollSpan).
	span    float64
	spanFor int64
	log     Log // nil: every event is accepted

	// Limits, as fields so that tests can lower them.
	ticketsMax  int
	preQueueMax int
}

// New returns an empty waiting room. cfg must be within the API's ranges
// (SaleDef.Normalize checked the definition): New panics otherwise.
func New(sale string, cfg Config) *Room {
	if err := cfg.check(); err != nil {
		panic(fmt.Sprintf("New(%q): %v", sale, err))
	}
	return newRoom(sale, cfg)
}

func newRoom(sale string, cfg Config) *Room {
	sum := sha256.Sum256(cfg.Seed[:])
	r := &Room{
		sale:        sale,
		cfg:         cfg,
		seedHash:    hex.EncodeToString(sum[:]),
		head:        1,
		ticketsMax:  roomTicketsMax,
		preQueueMax: roomPreQueueMax,
	}
	r.access.ts = &r.tickets
	r.byID = newRoomIndex(&r.tickets, false)
	r.byBuyer = newRoomIndex(&r.tickets, true)
	return r
}

// OnAdmitted sets a function that Join and Tick call for each ticket they
// admit, after applying the admission and before returning its event. The
// event is not durable yet: to tell the buyer, wait until it is (or decode
// the returned queue_admitted events with QueueIDs). Apply never calls it, so
// recovery is silent.
func (r *Room) OnAdmitted(fn func(t *Ticket)) { r.onAdmitted = fn }

// OnChange sets a function that Apply (and so every decision, and
// recovery) calls with each ticket an event changed: a join, a number given
// by the draw, an admission, a departure, a completed checkout. The ticket is
// the room's: the function copies what it keeps and must not block. Time
// alone (an access window running out) changes no ticket.
func (r *Room) OnChange(fn func(t *Ticket)) { r.onChange = fn }

// Log takes an event that a decision made, before the room applies it. nil
// means the log accepted it (it will be made durable, or the log will fail
// as a whole) and the room applies it; an error refuses it, and the room
// applies nothing of it. The event is the room's: Log must copy what it
// keeps (wal.Log.Append encodes it before it returns).
type Log func(ev *wal.Event) error

// SetLog sets where decisions write their events. Without one (tests,
// tools), every event is accepted.
func (r *Room) SetLog(log Log) { r.log = log }

// SetPaused stops (true) or resumes admissions. The pause is logged by the
// sale, which calls this again after recovery.
func (r *Room) SetPaused(paused bool) { r.paused = paused }

// Paused reports what SetPaused set.
func (r *Room) Paused() bool { return r.paused }

// Ticket returns the ticket with this queue id, or nil.
func (r *Room) Ticket(queueID string) *Ticket {
	i, ok := r.byID.get(queueID)
	if !ok {
		return nil
	}
	return r.tickets.at(i)
}

// ByBuyer returns the buyer's live ticket (waiting, or admitted with access
// not expired) as of the latest time the room has seen, or nil.
func (r *Room) ByBuyer(buyer string) *Ticket { return r.byBuyerAt(buyer, r.clock) }

func (r *Room) byBuyerAt(buyer string, now int64) *Ticket {
	i, ok := r.byBuyer.get(buyer)
	if !ok {
		return nil
	}
	t := r.tickets.at(i)
	if t.StateAt(now) == TicketExpired {
		return nil
	}
	return t
}

// Waiting is how many tickets wait, the pre-queue included.
func (r *Room) Waiting() int64 { return r.lineWaiting + r.preWaiting }

// Admitted is how many buyers shop now (admitted, access not expired, not
// done), as of the latest Tick or Join.
func (r *Room) Admitted() int64 { return r.shopping }

// AdmittedTotal is how many admissions there have been.
func (r *Room) AdmittedTotal() int64 { return r.admittedTotal }

// Position is the ticket's place in line, 1 = next, or 0 when it is not
// numbered and waiting. O(log n).
func (r *Room) Position(t *Ticket) int64 {
	if t.State != TicketWaiting || t.Num == 0 {
		return 0
	}
	return r.line.prefix(t.Num-1) + 1
}

// SeedSHA256 is the hex SHA-256 of the draw seed.
func (r *Room) SeedSHA256() string { return r.seedHash }

// Draw returns the seed in hex and the drawn order of the pre-queue once the
// draw has happened; done is false before it (and the seed stays secret).
func (r *Room) Draw() (seedHex string, order []string, done bool) {
	if !r.drawn {
		return "", nil, false
	}
	// The draw numbered its order 1..drawCount, so the order is read back
	// from the numbers instead of being kept twice.
	order = make([]string, r.drawCount)
	for n := range order {
		order[n] = r.tickets.at(r.byNum[n]).QueueID
	}
	return hex.EncodeToString(r.cfg.Seed[:]), order, true
}

// State is queue.state: "paused", then "pre_queue" (until the draw), then
// "sold_out", then "queueing" (someone waits), then "open".
func (r *Room) State(now int64, st Stock) string {
	switch {
	case r.paused:
		return "paused"
	case !r.drawn:
		return "pre_queue"
	case st.soldOut():
		return "sold_out"
	case r.lineWaiting > 0:
		return "queueing"
	}
	return "open"
}

// RateInForce is the admission rate (admissions/s) in force: 0 while paused,
// before the draw and while sold out; else admit_per_s, or in automatic mode
// roomAutoHoldHeadroom × the measured hold rate, at least roomAutoRateFloor
// and at most AdmitPerSMax.
func (r *Room) RateInForce(now int64, st Stock) float64 {
	if r.paused || !r.drawn || st.soldOut() {
		return 0
	}
	if r.cfg.AdmitPerS > 0 {
		return float64(r.cfg.AdmitPerS)
	}
	rate := float64(roomAutoRateFloor)
	// The comparison is false for NaN, so a broken measurement is ignored.
	if h := roomAutoHoldHeadroom * st.HoldsPerS; h > rate {
		rate = min(h, AdmitPerSMax)
	}
	return rate
}

// MeasuredRate is the EWMA of actual admissions/s while a line existed, or 0
// before the first measurement.
func (r *Room) MeasuredRate() float64 { return r.rate }

// slots is how many may be admitted now, the rate aside.
func (r *Room) slots(st Stock) int64 {
	if r.paused || !r.drawn || st.soldOut() {
		return 0
	}
	n := int64(r.cfg.ActiveLimit) - r.shopping
	if r.cfg.AdmitPerS == 0 {
		n = min(n, autoSeekersMax(st)-r.freshCount)
	}
	return max(n, 0)
}

// autoSeekersMax is the automatic mode's stock cap: how many admitted buyers
// may be looking for seats at once (admitted lately, no hold yet, still
// shopping: freshCount) so that each can find what a buyer usually takes
// among the seats free. Buyers who hold are out of the count, so the line
// refills as soon as seats come back (a hold expires, an order is
// cancelled), and a sale never admits many times more buyers than it can
// serve, which would only turn them away with 409s.
func autoSeekersMax(st Stock) int64 {
	q := st.SeatsPerHold
	if !(q >= 1) { // NaN too
		q = roomAutoSeatsPerHoldGuess
	}
	return int64(math.Ceil(float64(max(st.Free, 0)) / q))
}

// etaRate is the admissions/s that eta_s and poll_after_s assume: the
// measured rate, or before any measurement the rate in force, never below
// a floor. While every shopping place is taken (active_limit), the line
// moves only as shoppers leave, and each leaves by the end of their access
// window at the latest: the floor is then active_limit / access window,
// the pace the line keeps however slow the shoppers, so that a still shop
// shows the wait it may really be. Otherwise the floor is
// roomETARateFloor.
func (r *Room) etaRate(now int64, st Stock) float64 {
	rate := r.rate
	if !r.rateOn {
		rate = r.RateInForce(now, st)
	}
	floor := roomETARateFloor
	if r.shopFull(st) {
		floor = float64(r.cfg.ActiveLimit) * 1000 / float64(r.cfg.AccessTTL)
	}
	return max(rate, floor)
}

// shopFull reports whether the line waits for shoppers to leave: it would
// admit (open, drawn, seats to sell) but active_limit buyers are shopping.
func (r *Room) shopFull(st Stock) bool {
	return !r.paused && r.drawn && !st.soldOut() && r.shopping >= int64(r.cfg.ActiveLimit)
}

// TicketView is what GET queue/{id} shows of t at now. View.TicketView
// computes the same from a published View through ticketView; this is its
// own copy of that logic because it is the polling path and the shared
// function cost it half again (BenchmarkRoomView). TestRoomModel holds the
// two equal for every ticket after every step.
func (r *Room) TicketView(t *Ticket, now int64, st Stock) TicketView {
	v := TicketView{OpensInS: -1}
	switch t.StateAt(now) {
	case TicketExpired:
		v.State = "expired"
		v.PollAfterS = roomPollAfterMaxS
	case TicketAdmitted:
		v.State = "admitted"
		v.AccessExpires = t.AccessExpires
		v.PollAfterS = min(max(ceilDiv(t.AccessExpires-now, 1000), 1), roomPollAfterMaxS)
	case TicketWaiting:
		if t.Num == 0 {
			v.State = "waiting"
			v.OpensInS = max(ceilDiv(r.cfg.OpensAt-now, 1000), 0)
			v.ETAS = v.OpensInS // nobody is admitted before the opening
			v.PollAfterS = preQueuePoll(t, v.OpensInS, r.preWaiting, r.cfg.pollBudget())
			return v
		}
		v.Position = r.Position(t)
		rate := r.etaRate(now, st)
		v.ETAS = int64(math.Ceil(float64(v.Position) / rate))
		v.PollAfterS = pollAfter(v.Position, r.pollSpan(rate))
		v.State = "waiting"
		if st.Free <= 0 {
			// Nothing to admit until a hold ends: no use asking every second.
			v.PollAfterS = max(v.PollAfterS, roomPollSoldOutMinS)
		}
		if st.soldOut() {
			v.State = "sold_out"
		}
	default:
		panic(fmt.Sprintf("waiting room %q: ticket %q in state %d", r.sale, t.QueueID, t.State))
	}
	return v
}

// lineFacts is what a ticket's view needs of the line besides its position.
type lineFacts struct {
	sale       string
	opensAt    int64   // unix ms
	preWaiting int64   // tickets waiting in the pre-queue
	rate       float64 // admissions/s that eta_s assumes (etaRate)
	span       float64 // positions per poll second (pollSpan)
	budget     float64 // the pre-queue's polls/s after the opening
	soldOut    bool
	noneFree   bool // no seat free (some may be held): the line cannot move
}

// ticketView is what GET queue/{id} shows of t at now, t's position being
// pos (used only while t waits with a number): Room.TicketView's logic for
// View.TicketView.
func ticketView(t *Ticket, now, pos int64, f lineFacts) TicketView {
	v := TicketView{OpensInS: -1}
	switch t.StateAt(now) {
	case TicketExpired:
		v.State = "expired"
		v.PollAfterS = roomPollAfterMaxS
	case TicketAdmitted:
		v.State = "admitted"
		v.AccessExpires = t.AccessExpires
		v.PollAfterS = min(max(ceilDiv(t.AccessExpires-now, 1000), 1), roomPollAfterMaxS)
	case TicketWaiting:
		if t.Num == 0 {
			v.State = "waiting"
			v.OpensInS = max(ceilDiv(f.opensAt-now, 1000), 0)
			v.ETAS = v.OpensInS // nobody is admitted before the opening
			v.PollAfterS = preQueuePoll(t, v.OpensInS, f.preWaiting, f.budget)
			return v
		}
		v.Position = pos
		v.ETAS = int64(math.Ceil(float64(v.Position) / f.rate))
		v.PollAfterS = pollAfter(v.Position, f.span)
		v.State = "waiting"
		if f.noneFree {
			v.PollAfterS = max(v.PollAfterS, roomPollSoldOutMinS)
		}
		if f.soldOut {
			v.State = "sold_out"
		}
	default:
		panic(fmt.Sprintf("waiting room %q: ticket %q in state %d", f.sale, t.QueueID, t.State))
	}
	return v
}

// pollAfter is poll_after_s at a position: ceil(position / span), clamped
// to 1..roomPollAfterMaxS. Positions 1..span poll every second, span+1..2span
// every two, and so on: a line of n makes about span·(1 + ln(n/span))
// polls/s (pollSpan chooses span for the budget).
func pollAfter(position int64, span float64) int64 {
	p := int64(math.Ceil(float64(position) / max(span, 1)))
	return min(max(p, 1), roomPollAfterMaxS)
}

// pollSpan is the span of pollAfter for the line as it is: the largest
// that keeps a still line of lineWaiting within the poll budget, or, when
// the line moves faster than that, its pace (up to half the budget), so
// that buyers poll about when their turn is due: a moving line's buyer
// then polls about twice, which costs about two polls per admission.
// The budget's span is cached per line length.
func (r *Room) pollSpan(rate float64) float64 {
	b := r.cfg.pollBudget()
	if r.spanFor != r.lineWaiting || r.span == 0 {
		r.spanFor, r.span = r.lineWaiting, budgetSpan(r.lineWaiting, b)
	}
	return max(r.span, min(rate, b/2))
}

// budgetSpan is the span at which a still line of n positions polls about
// b times a second: span·(1 + ln(n/span)) = b, found by bisection (that
// load grows with span below n). A line no longer than b polls every second.
func budgetSpan(n int64, b float64) float64 {
	if float64(n) <= b {
		return max(float64(n), 1)
	}
	lo, hi := 1.0, b
	for range 40 {
		mid := (lo + hi) / 2
		if mid*(1+math.Log(float64(n)/mid)) > b {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo
}

// preQueuePoll spreads the pre-queue's first poll after the opening over
// enough seconds that it arrives at about the poll budget, instead of the
// whole pre-queue polling in the opening second. A ticket's offset in the
// spread comes from a hash of its queue id, so it is stable from poll to
// poll. Buyers on the event stream hear of their admission at once anyway.
func preQueuePoll(t *Ticket, opensInS, preWaiting int64, budget float64) int64 {
	spread := max(int64(math.Ceil(float64(preWaiting)/budget)), 1)
	jitter := int64(roomFNV(t.QueueID) % uint64(spread))
	return min(max(opensInS, 1), roomPollAfterMaxS) + jitter
}

// ceilDiv is ⌈a/b⌉ for b > 0, rounding toward +∞ for negative a too.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// roomFNV is 64-bit FNV-1a, written out so that View does not allocate.
func roomFNV(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// ForEachTicket calls fn for every ticket ever made, in join order.
func (r *Room) ForEachTicket(fn func(t *Ticket)) {
	for i := 0; i < r.tickets.len(); i++ {
		fn(r.tickets.at(uint32(i)))
	}
}

// noteFresh adds a ticket just admitted to fresh.
func (r *Room) noteFresh(i uint32) {
	r.fresh = append(r.fresh, i)
	r.freshCount++
}

// leftShopping is called when t stops shopping (done, left, access over).
func (r *Room) leftShopping(t *Ticket) {
	if t.AdmittedAt > r.freshCut && !t.held {
		r.freshCount--
	}
}

// Held tells the room that the buyer admitted with this queue id placed a
// hold: they no longer look for seats, so they leave the automatic stock
// cap (autoSeekersMax). This is soft state, not an event: after a restart
// a buyer counts as looking until roomAutoFreshMs passes, which errs on the
// side of admitting fewer. Unknown or inactive tickets are ignored.
func (r *Room) Held(queueID string, now int64) {
	now = r.advance(now)
	t := r.Ticket(queueID)
	if t == nil || !t.active || t.held || t.StateAt(now) != TicketAdmitted {
		return
	}
	t.held = true
	if t.AdmittedAt > r.freshCut {
		r.freshCount--
	}
}

// age drops from fresh the tickets admitted at or before now -
// roomAutoFreshMs. Every decision ages first, so freshCount is then the
// number of active tickets admitted after that cut, whatever happened before.
func (r *Room) age(now int64) {
	cut := now - roomAutoFreshMs
	if cut <= r.freshCut {
		return
	}
	for r.freshHead < len(r.fresh) {
		t := r.tickets.at(r.fresh[r.freshHead])
		if t.AdmittedAt > cut {
			break
		}
		if t.active && !t.held {
			r.freshCount--
		}
		r.freshHead++
	}
	r.freshCut = cut
	if r.freshHead > len(r.fresh)/2 {
		r.fresh = append(r.fresh[:0], r.fresh[r.freshHead:]...)
		r.freshHead = 0
	}
}

// rebuildFresh sets fresh from the tickets after a restore: every active one,
// in admission order; the next decision ages it.
func (r *Room) rebuildFresh() {
	r.fresh, r.freshHead, r.freshCount, r.freshCut = r.fresh[:0], 0, 0, 0
	for i := 0; i < r.tickets.len(); i++ {
		if r.tickets.at(uint32(i)).active {
			r.fresh = append(r.fresh, uint32(i))
		}
	}
	slices.SortStableFunc(r.fresh, func(a, b uint32) int {
		return cmp.Compare(r.tickets.at(a).AdmittedAt, r.tickets.at(b).AdmittedAt)
	})
	r.freshCount = int64(len(r.fresh))
}
