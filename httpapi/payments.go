package httpapi

// The gateway side of payments: the Gateway a checkout charges through, the
// built-in simulator, and the bulkhead that caps calls in flight and turns
// gateway errors into API errors. The bulkhead is the actors.Payer that
// checkouts and cancels use; their flow (begin, charge, end, refund; decide,
// refund, record) is in actors/checkout.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"onsale/actors"
)

// Gateway is a payment provider.
type Gateway interface {
	// Charge takes p.AmountCents from the payment method p.Token, with
	// p.ChargeKey() as its idempotency key: the same key never charges
	// twice. It returns ErrDeclined or ErrGatewayDown (or another error,
	// treated as down).
	Charge(ctx context.Context, p actors.Payment) error
	// Refund gives an order's amount back, once per p.RefundKey().
	Refund(ctx context.Context, p actors.Payment) error
	// Lookup says what became of the charge keyed p.ChargeKey().
	Lookup(ctx context.Context, p actors.Payment) (actors.ChargeState, error)
	// Void closes p.ChargeKey() if no charge was made with it, so that
	// none can be (actors.Payer.Void), and answers ChargeNone; if one was,
	// it answers what became of it.
	Void(ctx context.Context, p actors.Payment) (actors.ChargeState, error)
}

// Gateway outcomes.
var (
	ErrDeclined    = errors.New("payment declined")
	ErrGatewayDown = errors.New("payment gateway unavailable")
)

// Simulator is the built-in gateway: any token pays, except tok_decline
// (always declined) and tok_error (gateway error). Latency and FailureRate
// model a slow or flaky provider for benchmarks. Like a real provider it
// remembers each idempotency key's outcome, so a retried charge or refund
// moves no money twice and Lookup answers; the memory lives as long as the
// process (a restart forgets, as a real provider would not).
type Simulator struct {
	Latency     time.Duration // each call takes this long
	FailureRate float64       // share of calls that fail as gateway errors, 0..1

	mu      sync.Mutex
	keys    map[string]actors.ChargeState // by charge key; bounded by simulatorKeysMax
	journal *os.File                      // optional: see OpenJournal
	read    int64                         // the journal's bytes applied to keys
}

// chargeVoided is the simulator's mark of a key closed unused by Void:
// Lookup reads it as ChargeNone, and a charge with it fails.
const chargeVoided actors.ChargeState = 255

// errVoided is a charge with a key that Void closed: the attempt was
// settled as unpaid meanwhile, so nothing is taken and the buyer retries.
// Not a gateway failure: it is not counted in the payment error rate.
var errVoided = fmt.Errorf("%w: the attempt was settled as unpaid meanwhile", ErrGatewayDown)

// simulatorKeysMax bounds the simulator's memory of keys: far more orders
// than a rehearsal makes; past it the oldest are not dropped but new keys
// are simply not remembered (a retry then pays as a first call would).
const simulatorKeysMax = 10_000_000

func (s *Simulator) remember(key string, st actors.ChargeState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberLocked(key, st)
}

func (s *Simulator) rememberLocked(key string, st actors.ChargeState) {
	if s.keys == nil {
		s.keys = make(map[string]actors.ChargeState)
	}
	have, ok := s.keys[key]
	if ok && st == actors.ChargeNone && have != actors.ChargeNone {
		return // a decline under a key charged or closed meanwhile changes nothing
	}
	if ok || len(s.keys) < simulatorKeysMax {
		s.keys[key] = st
	}
}

// JournalEntry is one line of the simulator's journal: money that moved,
// and keys closed. Op is "charge" (the key went from nothing to paid),
// "refund" (a refund was asked for; Paid says whether the key was paid
// then, so the money went back, rather than a refund of nothing) or "void"
// (the key was closed unused: no charge can be made with it).
type JournalEntry struct {
	Op     string `json:"op"`
	Key    string `json:"key"` // the charge key, onsale-charge-<order>
	Order  string `json:"order"`
	Hold   string `json:"hold"`
	Amount int64  `json:"amount"`
	Paid   bool   `json:"paid,omitempty"`
}

// OpenJournal makes the simulator keep every charge and refund in path, one
// fsynced JSON line each before the call returns, and first reads back what
// the file holds, so that a restarted simulator remembers its keys as a real
// provider would. A torn last line (a crash mid-write) is ignored.
//
// Several processes may share one journal, as the nodes of a cluster share
// one provider: each call takes the file's lock and first reads the lines
// the others wrote, so a key is charged once whichever node asks.
func (s *Simulator) OpenJournal(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("payment journal: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.journal = f
	unlock := lockFile(f)
	defer unlock()
	if err := s.catchUpLocked(); err != nil {
		s.journal = nil
		return errors.Join(fmt.Errorf("payment journal %q: %w", path, err), f.Close())
	}
	return nil
}

// catchUpLocked applies the journal's whole lines past s.read; s.mu and
// the file's lock are held.
func (s *Simulator) catchUpLocked() error {
	st, err := s.journal.Stat()
	if err != nil {
		return err
	}
	if st.Size() <= s.read {
		return nil
	}
	buf := make([]byte, st.Size()-s.read)
	if _, err := s.journal.ReadAt(buf, s.read); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return nil // a torn last line: left for a later look
		}
		var e JournalEntry
		if json.Unmarshal(buf[:i], &e) == nil {
			switch e.Op {
			case "charge":
				s.rememberLocked(e.Key, actors.ChargePaid)
			case "refund":
				s.rememberLocked(e.Key, actors.ChargeRefunded)
			case "void":
				s.rememberLocked(e.Key, chargeVoided)
			}
		}
		s.read += int64(i + 1)
		buf = buf[i+1:]
	}
}

// lock takes s.mu and, with a journal, the file's lock, after reading the
// lines other processes wrote; the returned function releases both.
func (s *Simulator) lock() (func(), error) {
	s.mu.Lock()
	if s.journal == nil {
		return s.mu.Unlock, nil
	}
	unlock := lockFile(s.journal)
	if err := s.catchUpLocked(); err != nil {
		unlock()
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: journal: %v", ErrGatewayDown, err)
	}
	return func() { unlock(); s.mu.Unlock() }, nil
}

// record writes one journal line and syncs it; s.mu is held, so lines are
// whole and in the order the keys changed.
func (s *Simulator) record(e JournalEntry) error {
	if s.journal == nil {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line := append(b, '\n')
	st, err := s.journal.Stat()
	if err != nil {
		return err
	}
	if st.Size() != s.read {
		// A torn line (a writer died mid-line): end it, or this line would
		// be joined to it and lost to every reader.
		line = append([]byte{'\n'}, line...)
	}
	if _, err := s.journal.Write(line); err != nil {
		return err
	}
	if err := s.journal.Sync(); err != nil {
		return err
	}
	// The line went at the end, after everything read (the lock is held).
	s.read = st.Size() + int64(len(line))
	return nil
}

func (s *Simulator) state(key string) (actors.ChargeState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.keys[key]
	return st, ok
}

func (s *Simulator) wait(ctx context.Context) error {
	if s.Latency <= 0 {
		return nil
	}
	t := time.NewTimer(s.Latency)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ErrGatewayDown
	}
}

// Charge implements Gateway.
func (s *Simulator) Charge(ctx context.Context, p actors.Payment) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	if st, ok := s.state(p.ChargeKey()); ok && st == chargeVoided {
		return errVoided
	} else if ok && st != actors.ChargeNone {
		return nil // the same key: the first call's charge stands
	}
	switch {
	case p.Token == "tok_decline":
		s.remember(p.ChargeKey(), actors.ChargeNone)
		return ErrDeclined
	case p.Token == "tok_error":
		return ErrGatewayDown
	case s.FailureRate > 0 && rand.Float64() < s.FailureRate:
		return ErrGatewayDown
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if st, ok := s.keys[p.ChargeKey()]; ok && st == chargeVoided {
		return errVoided
	} else if ok && st != actors.ChargeNone {
		return nil // a concurrent call with the same key charged
	}
	if err := s.record(JournalEntry{Op: "charge", Key: p.ChargeKey(), Order: p.OrderID, Hold: p.HoldID, Amount: p.AmountCents}); err != nil {
		return fmt.Errorf("%w: journal: %v", ErrGatewayDown, err)
	}
	s.rememberLocked(p.ChargeKey(), actors.ChargePaid)
	return nil
}

// Refund implements Gateway.
func (s *Simulator) Refund(ctx context.Context, p actors.Payment) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st := s.keys[p.ChargeKey()]
	if st == actors.ChargeRefunded {
		return nil // the same refund key: given back once
	}
	if err := s.record(JournalEntry{Op: "refund", Key: p.ChargeKey(), Order: p.OrderID, Hold: p.HoldID,
		Amount: p.AmountCents, Paid: st == actors.ChargePaid}); err != nil {
		return fmt.Errorf("%w: journal: %v", ErrGatewayDown, err)
	}
	s.rememberLocked(p.ChargeKey(), actors.ChargeRefunded)
	return nil
}

// Lookup implements Gateway.
func (s *Simulator) Lookup(ctx context.Context, p actors.Payment) (actors.ChargeState, error) {
	return s.ask(ctx, func() (actors.ChargeState, error) {
		if st, ok := s.keys[p.ChargeKey()]; ok && st != chargeVoided {
			return st, nil
		}
		return actors.ChargeNone, nil
	})
}

// ask answers a call about a key: after the provider's latency, with the
// keys caught up and locked.
func (s *Simulator) ask(ctx context.Context, f func() (actors.ChargeState, error)) (actors.ChargeState, error) {
	if err := s.wait(ctx); err != nil {
		return actors.ChargeUnknown, err
	}
	unlock, err := s.lock()
	if err != nil {
		return actors.ChargeUnknown, err
	}
	defer unlock()
	return f()
}

// Void implements Gateway.
func (s *Simulator) Void(ctx context.Context, p actors.Payment) (actors.ChargeState, error) {
	return s.ask(ctx, func() (actors.ChargeState, error) { return s.voidLocked(p) })
}

// voidLocked is Void, under the lock.
func (s *Simulator) voidLocked(p actors.Payment) (actors.ChargeState, error) {
	switch st, ok := s.keys[p.ChargeKey()]; {
	case ok && st == chargeVoided:
		return actors.ChargeNone, nil
	case ok && st != actors.ChargeNone:
		return st, nil
	}
	if err := s.record(JournalEntry{Op: "void", Key: p.ChargeKey(), Order: p.OrderID, Hold: p.HoldID, Amount: p.AmountCents}); err != nil {
		return actors.ChargeUnknown, fmt.Errorf("%w: journal: %v", ErrGatewayDown, err)
	}
	s.rememberLocked(p.ChargeKey(), chargeVoided)
	return actors.ChargeNone, nil
}

// gatewayTimeout bounds one gateway call, so that a stuck provider cannot
// hold a checkout (and its hold's payment-in-progress mark) for ever.
const gatewayTimeout = 10 * time.Second

// bulkhead caps gateway calls in flight, so a burst of checkouts queues here
// instead of overwhelming the provider. A call that waits longer than
// bulkheadWaitMax for a slot gets payment_unavailable.
type bulkhead struct {
	gw    Gateway
	slots chan struct{}
	m     *Metrics
	// confirm, if set, is asked right before a charge leaves for the
	// provider: does a majority still follow this node, in the leadership
	// (cluster.epoch) whose engine makes the charge?
	confirm atomic.Pointer[func(epoch uint64) error]
}

// inEpoch is the bulkhead as the payer of the engine of one leadership: its
// charges go out only while this node is confirmed to lead in that
// leadership, never on a later one's round (the later engine may have
// closed the attempt as never charged).
func (b *bulkhead) inEpoch(epoch uint64) actors.Payer { return epochPayer{b, epoch} }

type epochPayer struct {
	*bulkhead
	epoch uint64
}

func (p epochPayer) Charge(pm actors.Payment) *actors.Error { return p.charge(pm, p.epoch) }

// errNotConfirmed: a charge not sent because the leadership could not be
// confirmed.
var errNotConfirmed = errors.New("this node could not confirm it still leads the cluster")

const bulkheadWaitMax = 5 * time.Second

func newBulkhead(gw Gateway, n int, m *Metrics) *bulkhead {
	return &bulkhead{gw: gw, slots: make(chan struct{}, n), m: m}
}

func (b *bulkhead) acquire() bool {
	select {
	case b.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(bulkheadWaitMax)
	defer t.Stop()
	select {
	case b.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (b *bulkhead) call(op string, f func(ctx context.Context) error) *actors.Error {
	if !b.acquire() {
		b.m.paymentErrors.Inc()
		return &actors.Error{Code: actors.CodePaymentDown, Message: "the payment provider is saturated; retry in a few seconds, your hold stays until it expires"}
	}
	b.m.paymentInFlight.Add(1)
	defer func() { <-b.slots; b.m.paymentInFlight.Add(-1) }()
	ctx, cancel := context.WithTimeout(context.Background(), gatewayTimeout)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	b.m.paymentLatency.UpdateDuration(start)
	b.m.livePayment.observe(time.Since(start))
	b.m.totals.payments.Add(1)
	b.m.totals.paymentNanos.Add(int64(time.Since(start)))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNotConfirmed):
		return &actors.Error{Code: actors.CodeUnavailable, Message: "nothing was charged: " + err.Error() + "; retry with the same Idempotency-Key"}
	case errors.Is(err, errVoided):
		b.m.paymentsClosed.Inc()
		return actors.KeyClosed("nothing was charged: this payment attempt was settled as unpaid while it waited; retry the checkout, your hold stays until it expires")
	case errors.Is(err, ErrAuthRequired):
		b.m.paymentDeclines.Inc()
		return &actors.Error{Code: actors.CodePaymentDecline, Message: "the card requires authentication (3-D Secure), which this checkout cannot complete; use another card, your hold stays until it expires"}
	case errors.Is(err, ErrDeclined):
		b.m.paymentDeclines.Inc()
		return &actors.Error{Code: actors.CodePaymentDecline, Message: "the payment was declined; try another card, your hold stays until it expires"}
	default:
		b.m.paymentErrors.Inc()
		return &actors.Error{Code: actors.CodePaymentDown, Message: "the payment provider failed (" + op + "); retry, your hold stays until it expires"}
	}
}

// A free ticket (a zone priced 0) moves no money: its charge and refund
// succeed without the provider, which would refuse the amount (Stripe's
// minimum is 50 cents). Lookups and voids still ask the provider, which
// knows no charge for it: an attempt left open is closed as unpaid and the
// buyer checks out again. (Answering "paid" without asking would make an
// order of the settler's stand-in for an attempt whose amount it does
// not know.)

// Charge implements actors.Payer, for one node (no leadership to confirm).
func (b *bulkhead) Charge(p actors.Payment) *actors.Error { return b.charge(p, 0) }

func (b *bulkhead) charge(p actors.Payment, epoch uint64) *actors.Error {
	if p.AmountCents == 0 {
		return nil
	}
	return b.call("charge", func(ctx context.Context) error {
		// After the slot's wait, right before the money moves: a leader
		// deposed meanwhile must not charge an attempt the new leader may
		// have closed as never charged.
		if f := b.confirm.Load(); f != nil {
			if err := (*f)(epoch); err != nil {
				return errNotConfirmed
			}
		}
		return b.gw.Charge(ctx, p)
	})
}

// Refund implements actors.Payer.
func (b *bulkhead) Refund(p actors.Payment) *actors.Error {
	if p.AmountCents == 0 {
		return nil
	}
	return b.call("refund", func(ctx context.Context) error { return b.gw.Refund(ctx, p) })
}

// Lookup implements actors.Payer.
func (b *bulkhead) Lookup(p actors.Payment) (actors.ChargeState, *actors.Error) {
	return b.ask("lookup", p, b.gw.Lookup)
}

// Void implements actors.Payer.
func (b *bulkhead) Void(p actors.Payment) (actors.ChargeState, *actors.Error) {
	return b.ask("void", p, b.gw.Void)
}

// ask makes one call that answers a charge's state.
func (b *bulkhead) ask(op string, p actors.Payment, f func(context.Context, actors.Payment) (actors.ChargeState, error)) (actors.ChargeState, *actors.Error) {
	var st actors.ChargeState
	err := b.call(op, func(ctx context.Context) error {
		var err error
		st, err = f(ctx, p)
		return err
	})
	return st, err
}
