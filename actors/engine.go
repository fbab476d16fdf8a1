package actors

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"onsale/actors/seats"
	"onsale/wal"
)

// Limits of the engine.
const (
	// salesMax is how many sales one server keeps: server-made ids route by a
	// 16-bit sale index.
	salesMax = 1<<16 - 1
	// tickInterval is how often zones release expired holds and rooms admit:
	// a hold lives at least a second, so a tenth of that is precise enough.
	tickInterval = 100 * time.Millisecond
	// callTimeoutDefault bounds how long the HTTP edge waits for an answer.
	callTimeoutDefault = 5 * time.Second
	// SnapshotRecordsDefault is how many records the log may grow by before
	// the engine snapshots every sale and truncates it: replaying 1,000,000
	// records takes well under 2 s.
	SnapshotRecordsDefault = 1_000_000
	// snapshotRetryAfter spaces attempts after a failed snapshot: each one
	// serializes every zone on its actor, so retrying every tick would
	// stall holds while the cause (a full disk, say) lasts.
	snapshotRetryAfter = 30 * time.Second
	// HoldRetentionMin is the shortest time a released or expired hold is
	// kept after it ends: API.md keeps Idempotency-Key answers at least 24
	// hours across crashes, and recovery rebuilds a hold's answer from the
	// hold, so the hold must outlive the key. The --hold-retention flag
	// refuses less; tests of the engine may pass less.
	HoldRetentionMin = idemRetention
	// HoldRetentionDefault is the retention when none is configured: the
	// least the contract allows, since memory is what it costs. At 1,000
	// holds a second that is 86 million holds a day, more than a zone keeps
	// (zoneHoldsMax): a zone that busy refuses holds until drops make room.
	HoldRetentionDefault = HoldRetentionMin
	// holdsDropPerTickMax bounds the holds one tick drops, so a mass expiry
	// a day earlier never stalls a zone for long; at about 200 ns a drop it
	// is 3 ms, and ten ticks a second drop 160,000 holds, more than a zone
	// places.
	holdsDropPerTickMax = 16_384
)

// Config configures an Engine.
type Config struct {
	Dir             string // data directory: wal/ and snap/ inside
	NoSync          bool   // skip fsync: benchmarks of the engine alone, never in production
	Now             func() time.Time
	Logger          *slog.Logger
	CallTimeout     time.Duration
	SnapshotRecords uint64 // 0: SnapshotRecordsDefault
	// HoldRetention is how long a released or expired hold is kept after
	// it ends, for reads and its idempotency key, before it is dropped from
	// memory; 0: HoldRetentionDefault. Orders are always kept.
	HoldRetention time.Duration
	// PollBudget is the polls/s each sale's line may cause (poll_after_s is
	// set so); 0: line.PollBudgetDefault.
	PollBudget float64
	OnBatch    func(records, bytes int, fsync time.Duration) // log metrics hook
	// LogFS is the file layer of the log's writes; nil: the real one. Tests
	// pass a wal.FaultFS to make the disk full or stuck.
	LogFS wal.FS
	// Payer finishes, after a restart, the payments and cancels the last
	// run left open (settle.go); nil leaves them open. Requests bring their
	// own Payer.
	Payer Payer
	// AtStep, if set, is called at each step of a checkout and a cancel
	// (checkout.after_charge, cancel.before_refund, ...): the crash tests
	// stop the process there. Nil in production.
	AtStep func(step string)
	// Journal, if set, is the log to use instead of the write-ahead log in
	// Dir/wal: the cluster's replicated log. Engine.Close closes it.
	Journal Journal
	// Follower makes an engine that never decides: it answers reads from
	// the state its Journal replays and then from the records the leader
	// commits (Follow). No expiry, admission, snapshot or settlement runs
	// on it; writes are the leader's.
	Follower bool
	// Fatal is called once when the engine cannot go on safely (the log failed,
	// an invariant broke). The server exits; recovery from the log restores
	// every acknowledged change. Default: log it.
	Fatal func(error)
}

// Engine runs every sale: their actor trees, the shared log and the ticks.
//
// Its locks, in the order they are taken: a goroutine holding one may take
// only those listed below it, never one above.
//
//	create      sale creation and Snapshot, one at a time. Held across I/O:
//	            a creation's durable record and its actors' start, a whole
//	            snapshot (up to snapshotWaitMax). Taken with nothing held.
//	mu          leaf: sales and byIdx, for a map or slice operation.
//	dispatchMu  leaf: dispatchers, for an append (or Close's stop).
//
// Outside the engine, every lock an engine method meets is a leaf too: the
// log's queue lock (Append), the deadline slots (deadline.go, a call's
// wait), a sale's ledger and idempotency table, the settler's list of what
// is owed (settle.go).
//
// create is held while their holder waits for actors and the
// log writer, so neither an actor's Receive nor a log callback may take
// it, or call anything that does (CreateSale, Snapshot): that
// would deadlock. Actors take no engine lock but dispatchMu (a sale actor
// starting its children); the sale's own locks they take (ledger,
// idempotency table, the room's board in room_board.go) are never held
// across a call into the engine.
type Engine struct {
	cfg     Config
	sys     *actor.ActorSystem
	log     Journal
	snapDir string
	logger  *slog.Logger

	mu     sync.RWMutex // guards sales and byIdx
	sales  map[string]*Sale
	byIdx  []*Sale
	create sync.Mutex // serializes sale creation and snapshots
	// settler finishes money left open; see settle.go.
	settler *settler

	// dispatchers run the zone and room mailboxes; stopped at Close.
	dispatchMu  sync.Mutex
	dispatchers []*pinnedDispatcher
	dispatchWG  sync.WaitGroup

	// followDone is the last record Follow finished: every owner has
	// applied its records up to it (Follow is serial and waits for each).
	followDone atomic.Uint64

	closeOnce sync.Once
	closeErr  error // Close's answer, the same to every caller

	failed   atomic.Pointer[error]
	stop     chan struct{}
	stopped  sync.WaitGroup
	lastSnap atomic.Uint64 // log sequence at the last snapshot
	snapping atomic.Bool
	snapFail atomic.Int64 // unix ms of the last failed snapshot, for backing off
}

// Open recovers the engine from cfg.Dir: it loads the snapshots, replays the
// log into fresh state, releases holds that expired while it was down, then
// starts the actors. When Open returns, the engine is ready.
func Open(cfg Config) (*Engine, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = callTimeoutDefault
	}
	if cfg.SnapshotRecords == 0 {
		cfg.SnapshotRecords = SnapshotRecordsDefault
	}
	if cfg.HoldRetention <= 0 {
		cfg.HoldRetention = HoldRetentionDefault
	}
	e := &Engine{
		cfg: cfg, logger: cfg.Logger, snapDir: filepath.Join(cfg.Dir, "snap"),
		sales: make(map[string]*Sale), stop: make(chan struct{}),
	}
	e.settler = newSettler(e)
	lg := cfg.Journal
	if lg == nil {
		wl, err := wal.Open(wal.Options{
			Dir: filepath.Join(cfg.Dir, "wal"), NoSync: cfg.NoSync, OnBatch: cfg.OnBatch, FS: cfg.LogFS,
			Logf: func(format string, args ...any) { e.logger.Warn(fmt.Sprintf(format, args...)) },
		})
		if err != nil {
			return nil, fmt.Errorf("open log in %q: %w", cfg.Dir, err)
		}
		lg = wl
	}
	e.log = lg
	if err := e.recover(); err != nil {
		return nil, errors.Join(err, lg.Close())
	}
	e.lastSnap.Store(lg.LastSeq())
	lg.Start()
	if !cfg.Follower {
		if err := e.expireOverdue(); err != nil {
			return nil, errors.Join(err, lg.Close())
		}
		e.oweOpen() // before the actors take the cores
	}
	e.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return e.logger.With("lib", "actor")
	}))
	for _, s := range e.byIdx {
		if s != nil {
			e.spawn(s)
		}
	}
	e.stopped.Add(1)
	go e.ticker()
	if !cfg.Follower {
		e.stopped.Add(1)
		go e.settler.run()
	}
	return e, nil
}

func (e *Engine) nowMs() int64 { return e.cfg.Now().UnixMilli() }

// Payer is the payment provider this engine was configured with
// (Config.Payer), the one its settler uses; nil if none.
func (e *Engine) Payer() Payer { return e.cfg.Payer }

// fatal records the first fatal error and reports it.
func (e *Engine) fatal(err error) {
	if e.failed.CompareAndSwap(nil, &err) {
		e.logger.Error("fatal: the engine stops taking writes", "err", err)
		if e.cfg.Fatal != nil {
			e.cfg.Fatal(err)
		}
	}
}

// Fail stops the engine's writes with err, as its own fatal errors do: a
// follower's copy whose records can no longer reach it (its cluster node
// replaced the state it was built from) is failed so that it is rebuilt.
func (e *Engine) Fail(err error) { e.fatal(err) }

// Err returns the fatal error, if one happened.
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// StorageErr returns why the log cannot write now (its disk is full, a
// write failed, a write or fsync is stuck), or nil. Writes answer
// CodeStorageUnavailable meanwhile; reads go on. It clears by itself.
func (e *Engine) StorageErr() error {
	if err := e.log.Unavailable(); err != nil && errors.Is(err, wal.ErrUnavailable) {
		return err
	}
	return nil
}

// unavailable is the answer to a change the log refused or failed: nothing
// was changed. A log that cannot write for now (wal.ErrUnavailable) refused
// the record before its owner applied anything, so the engine goes on and
// the answer says to retry once the disk recovers.
func unavailable(err error) *Error {
	if errors.Is(err, wal.ErrUnavailable) {
		e := errorf(CodeStorageUnavailable, "the server cannot write to its disk for now (%v); nothing was changed: retry in a few seconds", err)
		e.notDone = true
		e.transient = true // a retry after the disk recovers may succeed
		return e
	}
	if errors.Is(err, wal.ErrLeadershipLost) {
		return errorf(CodeUnavailable, "this node lost the cluster's leadership while making the change (%v): it may or may not have been made; retry with the same Idempotency-Key, or read it back", err)
	}
	if errors.Is(err, wal.ErrNotLeader) {
		e := errorf(CodeUnavailable, "this node is no longer the cluster's leader (%v); nothing was changed: retry, another node takes over within seconds", err)
		e.notDone = true
		e.transient = true
		return e
	}
	e := errorf(CodeUnavailable, "the change could not be made durable (%v); retry later", err)
	e.notDone = true
	return e
}

// expiryDone is the log callback of writes that nobody waits for.
func (e *Engine) expiryDone(_ uint64, err error) {
	if err != nil {
		e.fatal(fmt.Errorf("write expiry: %w", err))
	}
}

// Sale returns the sale with that id.
func (e *Engine) Sale(id string) (*Sale, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	s, ok := e.sales[id]
	return s, ok
}

// Sales returns every sale, in creation order.
func (e *Engine) Sales() []*Sale {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*Sale, 0, len(e.sales))
	for _, s := range e.byIdx {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// saleRecord is the body of a sale_created event and of a sale snapshot.
type saleRecord struct {
	Def       SaleDef `json:"def"`
	Idx       uint16  `json:"idx"`
	Seed      string  `json:"seed"` // hex
	CreatedAt int64   `json:"created_at"`
	Paused    bool    `json:"paused,omitempty"`
}

// CreateSale checks def (Normalize) and creates the on-sale. It answers
// once the sale is durable.
func (e *Engine) CreateSale(def SaleDef) (*Sale, *Error) {
	if err := def.Normalize(e.cfg.Now()); err != nil {
		return nil, err
	}
	e.create.Lock()
	defer e.create.Unlock()
	if _, ok := e.Sale(def.ID); ok {
		return nil, errorf(CodeSaleExists, "a sale with id %q exists already; pick another id", def.ID)
	}
	e.mu.RLock()
	idx := len(e.byIdx)
	e.mu.RUnlock()
	if idx == 0 {
		idx = 1 // index 0 is never used, so a zeroed id never routes
	}
	if idx > salesMax {
		return nil, errorf(CodeUnavailable, "this server holds %d sales, its limit", salesMax)
	}
	rec := saleRecord{Def: def, Idx: uint16(idx), Seed: hex.EncodeToString(randomSeed()), CreatedAt: e.nowMs()}
	blob, err := json.Marshal(rec)
	if err != nil {
		panic("encode a normalized sale definition: " + err.Error()) // plain strings and numbers
	}
	c := newCall()
	if err := e.log.Append(&wal.Event{Type: wal.TypeSaleCreated, Sale: def.ID, Num: uint64(idx), At: rec.CreatedAt, Blob: blob}, func(_ uint64, err error) {
		if err != nil {
			c.finish(Result{Err: unavailable(err)})
			return
		}
		c.finish(Result{})
	}); err != nil {
		return nil, unavailable(err)
	}
	// No timeout here: the log resolves every append, and a sale answered
	// 503 whose record became durable anyway would come back at recovery
	// unlike the engine that gave up on it.
	<-c.done
	if r := c.res; r.Err != nil {
		return nil, r.Err
	}
	s, serr := e.newSale(rec)
	if serr != nil {
		e.fatal(serr) // Normalize accepted it; a refusal here is a bug
		return nil, unavailable(serr)
	}
	// Actors first, then the handle: the ticker and the HTTP edge find the
	// sale through register and send to its PIDs at once.
	e.spawn(s)
	e.register(s)
	return s, nil
}

// newSale builds a sale's handle and fresh cores from its record.
func (e *Engine) newSale(rec saleRecord) (*Sale, error) {
	def := rec.Def
	if def.Currency == "" {
		def.Currency = CurrencyDefault // recorded before sales had a currency
	}
	opens, err := parseTime(def.OpensAt)
	if err != nil {
		return nil, fmt.Errorf("sale %q: opens_at: %w", def.ID, err)
	}
	seed, err := hex.DecodeString(rec.Seed)
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("sale %q: bad draw seed", def.ID)
	}
	s := &Sale{
		e: e, idx: rec.Idx, def: def, opensAt: opens.UnixMilli(), holdTTLMs: int64(def.HoldTTLS) * 1000,
		createdAt: rec.CreatedAt, zoneByID: make(map[string]*zoneHandle, len(def.Zones)),
		ledger: newLedger(def.MaxPerBuyer), idem: newIdemTable(),
	}
	copy(s.seed[:], seed)
	s.pausedAtStart = rec.Paused
	for i := range s.def.Zones {
		zd := &s.def.Zones[i]
		zh := &zoneHandle{idx: uint16(i), def: zd, core: seats.NewZone(def.ID, *zd), idemFails: make(map[idemKey]idemFail),
			rowStamps: make([]atomic.Uint64, len(zd.Rows))}
		s.zones = append(s.zones, zh)
		s.zoneByID[zd.ID] = zh
	}
	s.room = newRoomHandle(s)
	return s, nil
}

func (e *Engine) register(s *Sale) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.byIdx) <= int(s.idx) {
		e.byIdx = append(e.byIdx, nil)
	}
	e.byIdx[s.idx] = s
	e.sales[s.def.ID] = s
}

// spawn starts a sale's actor tree and waits until its children exist.
func (e *Engine) spawn(s *Sale) {
	started := make(chan struct{})
	a := &saleActor{s: s, started: started, log: ownerLog{log: e.log, followed: e.followedFrom(s.snapSeq)}, paused: s.pausedAtStart}
	props := actor.PropsFromProducer(func() actor.Actor { return a },
		actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
			// A zone or room that panicked broke an invariant; its memory
			// cannot be trusted. Stop it and stop the engine: a restart
			// rebuilds everything from the log.
			e.fatal(fmt.Errorf("sale %q: an actor failed: %v", s.def.ID, reason))
			return actor.StopDirective
		})))
	pid, err := e.sys.Root.SpawnNamed(props, fmt.Sprintf("sale-%d", s.idx))
	if err != nil {
		panic(fmt.Sprintf("spawn sale actor %d: %v", s.idx, err))
	}
	s.pid = pid
	<-started
}

// dispatcher makes a pinned dispatcher for one actor.
func (e *Engine) dispatcher() *pinnedDispatcher {
	e.dispatchMu.Lock()
	defer e.dispatchMu.Unlock()
	d := newPinnedDispatcher(&e.dispatchWG)
	e.dispatchers = append(e.dispatchers, d)
	return d
}

// route finds the sale and zone of a server-made hold or order id.
func (e *Engine) route(prefix byte, id string) (*Sale, *zoneHandle, bool) {
	si, zi, ok := parseID(prefix, id)
	if !ok {
		return nil, nil, false
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if int(si) >= len(e.byIdx) || e.byIdx[si] == nil {
		return nil, nil, false
	}
	s := e.byIdx[si]
	if int(zi) >= len(s.zones) {
		return nil, nil, false
	}
	return s, s.zones[zi], true
}

// HoldSale returns the sale a hold id belongs to.
func (e *Engine) HoldSale(holdID string) (*Sale, bool) {
	s, _, ok := e.route('h', holdID)
	return s, ok
}

// GetHold reads a hold. Without admin, only its buyer may see it.
func (e *Engine) GetHold(holdID, buyer string, admin bool) Result {
	s, zh, ok := e.route('h', holdID)
	if !ok {
		return Result{Err: errHoldNotFound()}
	}
	c := newCall()
	e.sys.Root.Send(zh.pid, &getHoldCmd{c: c, holdID: holdID, buyer: buyer, admin: admin})
	return c.wait(s.e.cfg.CallTimeout)
}

// ReleaseHold gives a hold up; its seats are free at once.
func (e *Engine) ReleaseHold(holdID, buyer string, admin bool) Result {
	_, zh, ok := e.route('h', holdID)
	if !ok {
		return Result{Err: errHoldNotFound()}
	}
	c := newCall()
	e.sys.Root.Send(zh.pid, &releaseCmd{c: c, holdID: holdID, buyer: buyer, admin: admin})
	return c.wait(e.cfg.CallTimeout)
}

// GetOrder reads an order; its id is the capability.
func (e *Engine) GetOrder(orderID string) Result {
	_, zh, ok := e.route('o', orderID)
	if !ok {
		return Result{Err: errorf(CodeNotFound, "no such order")}
	}
	c := newCall()
	e.sys.Root.Send(zh.pid, &getOrderCmd{c: c, orderID: orderID})
	return c.wait(e.cfg.CallTimeout)
}

// ticker drives expiry, admissions and snapshots. It is the engine's only
// clock: actors never sleep or arm timers of their own.
func (e *Engine) ticker() {
	defer e.stopped.Done()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		if e.cfg.Follower {
			// The line's figures move with the clock: published every tick.
			for _, s := range e.Sales() {
				e.sys.Root.Send(s.room.pid, tickMsg{})
			}
		} else {
			cutoff := e.nowMs() - idemRetention.Milliseconds()
			for _, s := range e.Sales() {
				s.idem.sweep(cutoff)
				for _, zh := range s.zones {
					e.sys.Root.Send(zh.pid, tickMsg{})
				}
				if s.room != nil {
					e.sys.Root.Send(s.room.pid, tickMsg{})
				}
			}
		}
		if e.log.LastSeq()-e.lastSnap.Load() >= e.cfg.SnapshotRecords &&
			time.Since(time.UnixMilli(e.snapFail.Load())) >= snapshotRetryAfter &&
			e.snapping.CompareAndSwap(false, true) {
			e.stopped.Add(1) // Close waits for it, so no snapshot outlives the engine
			go func() {
				defer e.stopped.Done()
				defer e.snapping.Store(false)
				if err := e.Snapshot(); err != nil {
					e.snapFail.Store(time.Now().UnixMilli())
					e.logger.Error("snapshot failed; the log keeps growing until one succeeds", "err", err)
				}
			}()
		}
	}
}

// Close stops the ticks and the actors, then drains and closes the log.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.close() })
	return e.closeErr
}

// close is Close, once.
func (e *Engine) close() error {
	close(e.stop)
	e.stopped.Wait()
	sales := e.Sales()
	sort.Slice(sales, func(i, j int) bool { return sales[i].idx < sales[j].idx })
	for _, s := range sales {
		if err := e.sys.Root.PoisonFuture(s.pid).Wait(); err != nil {
			e.logger.Warn("stop sale actor", "sale", s.def.ID, "err", err)
		}
	}
	e.sys.Shutdown()
	e.dispatchMu.Lock()
	for _, d := range e.dispatchers {
		d.stop()
	}
	e.dispatchers = nil
	e.dispatchMu.Unlock()
	e.dispatchWG.Wait()
	return e.log.Close()
}

// LogSeq is the sequence of the last record in the log.
func (e *Engine) LogSeq() uint64 { return e.log.LastSeq() }
