package httpapi

// The gateway side of payments: the Gateway a checkout charges through, the
// built-in simulator, and the bulkhead that caps calls in flight and turns
// gateway errors into API errors. The bulkhead is the actors.Payer that
// checkouts and cancels use; their flow (begin, charge, end, refund; decide,
// refund, record) is in actors/checkout.go.

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"onsale/actors"
)

// Gateway is a payment provider.
type Gateway interface {
	// Charge takes amount from the card behind token. It returns
	// ErrDeclined or ErrGatewayDown (or another error, treated as down).
	Charge(ctx context.Context, orderID string, amountCents int64, token string) error
	// Refund gives an order's amount back.
	Refund(ctx context.Context, orderID string, amountCents int64) error
}

// Gateway outcomes.
var (
	ErrDeclined    = errors.New("payment declined")
	ErrGatewayDown = errors.New("payment gateway unavailable")
)

// Simulator is the built-in gateway: any token pays, except tok_decline
// (always declined) and tok_error (gateway error). Latency and FailureRate
// model a slow or flaky provider for benchmarks.
type Simulator struct {
	Latency     time.Duration // each call takes this long
	FailureRate float64       // share of calls that fail as gateway errors, 0..1
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
func (s *Simulator) Charge(ctx context.Context, _ string, _ int64, token string) error {
	if err := s.wait(ctx); err != nil {
		return err
	}
	switch {
	case token == "tok_decline":
		return ErrDeclined
	case token == "tok_error":
		return ErrGatewayDown
	case s.FailureRate > 0 && rand.Float64() < s.FailureRate:
		return ErrGatewayDown
	}
	return nil
}

// Refund implements Gateway.
func (s *Simulator) Refund(ctx context.Context, _ string, _ int64) error {
	return s.wait(ctx)
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
}

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
	b.m.totals.payments.Add(1)
	b.m.totals.paymentNanos.Add(int64(time.Since(start)))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDeclined):
		b.m.paymentDeclines.Inc()
		return &actors.Error{Code: actors.CodePaymentDecline, Message: "the payment was declined; try another card, your hold stays until it expires"}
	default:
		b.m.paymentErrors.Inc()
		return &actors.Error{Code: actors.CodePaymentDown, Message: "the payment provider failed (" + op + "); retry, your hold stays until it expires"}
	}
}

// Charge implements actors.Payer.
func (b *bulkhead) Charge(orderID string, amount int64, token string) *actors.Error {
	return b.call("charge", func(ctx context.Context) error { return b.gw.Charge(ctx, orderID, amount, token) })
}

// Refund implements actors.Payer.
func (b *bulkhead) Refund(orderID string, amount int64) *actors.Error {
	return b.call("refund", func(ctx context.Context) error { return b.gw.Refund(ctx, orderID, amount) })
}
