package httpapi

// The Stripe gateway: a Gateway on the official client library, for
// `--payments stripe`. Charges are PaymentIntents created and confirmed in
// one call; refunds are Refunds of the order's PaymentIntent; lookups read
// the order's PaymentIntent. Every call that moves money carries the
// payment's idempotency key (Payment.ChargeKey, RefundKey), so a retry
// after a timeout or a crash moves no money twice.
//
// Finding an order's PaymentIntent. Stripe makes the PaymentIntent's id; we
// do not record it in our log. Re-sending the idempotent create to get it
// back does not work for refunds and lookups: they carry no payment method,
// so the request differs from the first (idempotency_error), and after 24 h,
// when Stripe forgets the key, the same create would charge again. So:
//
//  1. Charge remembers order id → PaymentIntent id in memory (bounded by
//     stripeIntentsMax). A refund right after a charge (the hold expired
//     during the payment) finds it there, with no lag.
//  2. Otherwise (after a restart, or past the bound) the PaymentIntent is
//     found with the Search API by the metadata every charge carries
//     (order_id). Stripe's search index lags writes by about a minute, so a
//     search within a minute of the charge may find nothing: Lookup then
//     says ChargeNone. Callers that finish payments after a crash must ask
//     again after stripeSearchLag before they trust a ChargeNone.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stripe/stripe-go/v82"

	"onsale/actors"
)

// Stripe gateway limits and defaults.
const (
	// stripeTimeoutDefault bounds one Stripe call: under gatewayTimeout, so
	// the gateway answers (down) before the bulkhead gives up on it.
	stripeTimeoutDefault = 8 * time.Second
	// stripeIntentsMax bounds the memory of PaymentIntent ids: about 100
	// bytes each, 10 MB at most; past it the Search API finds the rest.
	stripeIntentsMax = 100_000
	// stripeSearchLag is how far Stripe's search index may lag a write in
	// normal operation (Stripe's search documentation: "under a minute").
	stripeSearchLag = time.Minute
	// stripeSearchMargin is added to the lag before "not found" is trusted.
	stripeSearchMargin = 30 * time.Second
)

// Stripe gateway outcomes besides ErrDeclined and ErrGatewayDown.
var (
	// ErrAuthRequired is a charge that stopped at requires_action: the card
	// asks for authentication (3-D Secure), which a server-side checkout
	// cannot do. No money was taken; it is a decline to the buyer, who must
	// use another card.
	ErrAuthRequired = fmt.Errorf("%w: the card requires authentication (3-D Secure), which this checkout cannot complete", ErrDeclined)
	// errNoIntent: no PaymentIntent was found for an order.
	errNoIntent = errors.New("no Stripe PaymentIntent for the order")
)

// StripeConfig configures a Stripe gateway.
type StripeConfig struct {
	Key     string        // secret key, sk_test_… or sk_live_…
	APIBase string        // "" for Stripe itself; stripe-mock or a test server otherwise
	Timeout time.Duration // one call at most; 0 for stripeTimeoutDefault
	Logger  *slog.Logger  // provider errors that are not the buyer's; nil for slog.Default()
}

// Stripe is the Stripe gateway. Safe for concurrent use.
type Stripe struct {
	sc      *stripe.Client
	timeout time.Duration
	logger  *slog.Logger

	mu      sync.Mutex
	intents map[string]string // order id → PaymentIntent id; bounded by stripeIntentsMax
}

// NewStripe makes a Stripe gateway. The client library's own retries are
// off: they sleep without watching the context, and a checkout that fails
// is retried by the buyer with the same idempotency key anyway.
func NewStripe(c StripeConfig) (*Stripe, error) {
	if c.Key == "" {
		return nil, errors.New("the Stripe gateway needs a secret key (STRIPE_SECRET_KEY)")
	}
	if c.Timeout <= 0 {
		c.Timeout = stripeTimeoutDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	cfg := &stripe.BackendConfig{
		MaxNetworkRetries: stripe.Int64(0),
		HTTPClient:        &http.Client{Timeout: c.Timeout},
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if c.APIBase != "" {
		cfg.URL = stripe.String(strings.TrimRight(c.APIBase, "/"))
	}
	return &Stripe{
		sc:      stripe.NewClient(c.Key, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg))),
		timeout: c.Timeout,
		logger:  c.Logger,
		intents: make(map[string]string),
	}, nil
}

// Charge implements Gateway: one PaymentIntent, created and confirmed at
// once with the card the buyer gave, keyed by p.ChargeKey().
func (s *Stripe) Charge(ctx context.Context, p actors.Payment) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	params := &stripe.PaymentIntentCreateParams{
		Amount:        stripe.Int64(p.AmountCents),
		Currency:      stripe.String(p.Currency),
		PaymentMethod: stripe.String(p.Token),
		Confirm:       stripe.Bool(true),
		// Cards only: no redirect-based methods, so Stripe needs no
		// return_url and a confirmed intent ends at once, paid or not.
		PaymentMethodTypes: []*string{stripe.String("card")},
		Metadata:           map[string]string{"sale_id": p.Sale, "hold_id": p.HoldID, "order_id": p.OrderID},
	}
	params.SetIdempotencyKey(p.ChargeKey())
	pi, err := s.sc.V1PaymentIntents.Create(ctx, params)
	if err != nil {
		return s.chargeError(p, err)
	}
	s.remember(p.OrderID, pi.ID)
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		return nil
	case stripe.PaymentIntentStatusRequiresAction:
		return ErrAuthRequired
	case stripe.PaymentIntentStatusProcessing:
		// The outcome comes later; a retry with the same key or a lookup
		// learns it. Not a decline: the money may yet be taken.
		return fmt.Errorf("%w: PaymentIntent %s is still processing", ErrGatewayDown, pi.ID)
	default:
		// requires_payment_method (the card failed), canceled, or a status
		// a one-step card charge never ends in: no money was taken.
		return fmt.Errorf("%w: PaymentIntent %s ended %s", ErrDeclined, pi.ID, pi.Status)
	}
}

// chargeError sorts a failed create: the card's fault is a decline, the
// rest is the provider's (or ours, logged for the operator).
func (s *Stripe) chargeError(p actors.Payment, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("%w: %v", ErrGatewayDown, err) // network, timeout
	}
	if se.PaymentIntent != nil && se.PaymentIntent.ID != "" {
		s.remember(p.OrderID, se.PaymentIntent.ID)
	}
	switch {
	case se.Code == stripe.ErrorCodeIdempotencyKeyInUse || se.HTTPStatusCode == 409:
		// Another request with this key is in progress (a deposed
		// leader's charge, say): it may yet take the money, so the
		// outcome is unknown, never "closed".
		return fmt.Errorf("%w: another request with the charge key is in progress", ErrGatewayDown)
	case se.Type == stripe.ErrorTypeIdempotency:
		// The charge key was closed by a void (or used otherwise): no
		// money is taken under it.
		return errVoided
	case se.Type == stripe.ErrorTypeCard && se.Code == stripe.ErrorCodeAuthenticationRequired:
		return ErrAuthRequired
	case se.Type == stripe.ErrorTypeCard:
		return fmt.Errorf("%w: %s %s", ErrDeclined, se.Code, se.DeclineCode)
	case se.Type == stripe.ErrorTypeInvalidRequest && se.Param == "payment_method":
		// The token names no usable payment method: the buyer's to fix.
		return fmt.Errorf("%w: %s", ErrDeclined, se.Msg)
	}
	s.logger.Warn("stripe charge failed", "order", p.OrderID, "type", se.Type, "code", se.Code,
		"status", se.HTTPStatusCode, "request_id", se.RequestID, "message", se.Msg)
	return fmt.Errorf("%w: %s %s", ErrGatewayDown, se.Type, se.Code)
}

// Refund implements Gateway: a full refund of the order's PaymentIntent,
// keyed by p.RefundKey(). One that was refunded already counts as done.
func (s *Stripe) Refund(ctx context.Context, p actors.Payment) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	id, err := s.intent(ctx, p)
	if err != nil {
		return fmt.Errorf("%w: refund: %v", ErrGatewayDown, err)
	}
	params := &stripe.RefundCreateParams{
		PaymentIntent: stripe.String(id),
		Reason:        stripe.String(string(stripe.RefundReasonRequestedByCustomer)),
		Metadata:      map[string]string{"sale_id": p.Sale, "hold_id": p.HoldID, "order_id": p.OrderID},
	}
	params.SetIdempotencyKey(p.RefundKey())
	_, err = s.sc.V1Refunds.Create(ctx, params)
	var se *stripe.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.Code == stripe.ErrorCodeChargeAlreadyRefunded:
		return nil
	case errors.As(err, &se):
		s.logger.Warn("stripe refund failed", "order", p.OrderID, "payment_intent", id, "type", se.Type,
			"code", se.Code, "status", se.HTTPStatusCode, "request_id", se.RequestID, "message", se.Msg)
	}
	return fmt.Errorf("%w: refund: %v", ErrGatewayDown, err)
}

// Lookup implements Gateway: what the order's PaymentIntent says now. No
// PaymentIntent means no charge was made, once the attempt is older than
// stripeSearchLag: before that the search may not show it yet, and the
// answer is unknown (the caller asks again later).
func (s *Stripe) Lookup(ctx context.Context, p actors.Payment) (actors.ChargeState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	id, err := s.intent(ctx, p)
	if errors.Is(err, errNoIntent) {
		if p.StartedAt == 0 || time.Since(time.UnixMilli(p.StartedAt)) < stripeSearchLag+stripeSearchMargin {
			return actors.ChargeUnknown, fmt.Errorf("%w: lookup: no PaymentIntent found yet for order %s; Stripe's search may lag", ErrGatewayDown, p.OrderID)
		}
		return actors.ChargeNone, nil
	}
	if err != nil {
		return actors.ChargeUnknown, fmt.Errorf("%w: lookup: %v", ErrGatewayDown, err)
	}
	return s.stateOf(ctx, "lookup", id)
}

// stateOf reads the PaymentIntent id as a ChargeState; op names the call
// in an error.
func (s *Stripe) stateOf(ctx context.Context, op, id string) (actors.ChargeState, error) {
	params := &stripe.PaymentIntentRetrieveParams{}
	params.AddExpand("latest_charge")
	pi, err := s.sc.V1PaymentIntents.Retrieve(ctx, id, params)
	if err != nil {
		return actors.ChargeUnknown, fmt.Errorf("%w: %s: %v", ErrGatewayDown, op, err)
	}
	return chargeState(pi), nil
}

// Void implements Gateway. If the order has a PaymentIntent, it answers
// what Lookup does: a failed one is final, as a retry of its key replays
// it. If none is found, it creates one under the charge's idempotency key
// that is never confirmed (no payment method): from then on a charge with
// that key differs from the key's first request, and Stripe refuses it
// (idempotency_error) instead of taking money, for the 24 hours Stripe
// keeps a key. If the key was used already (a charge not found yet by the
// lagging search, or one still on its way), Stripe refuses the void the
// same way, and the answer is unknown: asked again later.
//
// So an attempt is closed as unpaid at once, without waiting for the
// search index, and no charge can follow: not one a timed-out call left in
// flight, nor one a deposed cluster leader sends late.
func (s *Stripe) Void(ctx context.Context, p actors.Payment) (actors.ChargeState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	id, err := s.intent(ctx, p)
	switch {
	case err == nil:
		return s.stateOf(ctx, "void", id)
	case !errors.Is(err, errNoIntent):
		return actors.ChargeUnknown, fmt.Errorf("%w: void: %v", ErrGatewayDown, err)
	}
	params := &stripe.PaymentIntentCreateParams{
		Amount:             stripe.Int64(p.AmountCents),
		Currency:           stripe.String(p.Currency),
		PaymentMethodTypes: []*string{stripe.String("card")},
		Metadata:           map[string]string{"sale_id": p.Sale, "hold_id": p.HoldID, "order_id": p.OrderID, "void": "true"},
	}
	params.SetIdempotencyKey(p.ChargeKey())
	pi, err := s.sc.V1PaymentIntents.Create(ctx, params)
	var se *stripe.Error
	switch {
	case err == nil:
	case errors.As(err, &se) && se.Type == stripe.ErrorTypeIdempotency:
		// The key was used. Once the search is past its lag, finding no
		// PaymentIntent means the key keeps a failure that made none (a
		// 500 Stripe stored): a charge under it replays that failure.
		if p.StartedAt != 0 && time.Since(time.UnixMilli(p.StartedAt)) >= stripeSearchLag+stripeSearchMargin {
			return actors.ChargeNone, nil
		}
		return actors.ChargeUnknown, fmt.Errorf("%w: void: the charge key of order %s was used already; its PaymentIntent is not found yet", ErrGatewayDown, p.OrderID)
	case errors.As(err, &se) && se.Type == stripe.ErrorTypeInvalidRequest && (se.Param == "amount" || se.Param == "currency"):
		// Stripe refuses the charge's own amount or currency (under its
		// minimum, say): a charge with them is refused the same way.
		return actors.ChargeNone, nil
	default:
		return actors.ChargeUnknown, fmt.Errorf("%w: void: %v", ErrGatewayDown, err)
	}
	// An earlier void's PaymentIntent when Stripe replays it.
	s.remember(p.OrderID, pi.ID)
	if pi.Status == stripe.PaymentIntentStatusRequiresPaymentMethod {
		// Cancelled, so that the dashboard shows it as closed rather than
		// an incomplete payment. The key stays closed either way: a
		// failure here changes nothing but that.
		cp := &stripe.PaymentIntentCancelParams{CancellationReason: stripe.String(string(stripe.PaymentIntentCancellationReasonAbandoned))}
		var se *stripe.Error
		if _, err := s.sc.V1PaymentIntents.Cancel(ctx, pi.ID, cp); err != nil &&
			!(errors.As(err, &se) && se.Code == stripe.ErrorCodePaymentIntentUnexpectedState) { // cancelled by an earlier void
			s.logger.Warn("stripe: cancel the PaymentIntent that closed a charge key", "order", p.OrderID, "payment_intent", pi.ID, "err", err)
		}
	}
	return chargeState(pi), nil
}

// chargeState reads a PaymentIntent as a ChargeState.
func chargeState(pi *stripe.PaymentIntent) actors.ChargeState {
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		if c := pi.LatestCharge; c != nil && (c.Refunded || c.AmountRefunded > 0) {
			return actors.ChargeRefunded
		}
		return actors.ChargePaid
	case stripe.PaymentIntentStatusProcessing, stripe.PaymentIntentStatusRequiresCapture:
		return actors.ChargeUnknown // money may yet move
	}
	return actors.ChargeNone
}

// intent finds the order's PaymentIntent id: remembered from its charge,
// or searched for by metadata.
func (s *Stripe) intent(ctx context.Context, p actors.Payment) (string, error) {
	s.mu.Lock()
	id, ok := s.intents[p.OrderID]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	if !actors.ValidID(p.OrderID) {
		return "", fmt.Errorf("order id %q cannot be searched for", p.OrderID) // never quoted into a query
	}
	params := &stripe.PaymentIntentSearchParams{}
	params.Query = fmt.Sprintf("metadata['order_id']:'%s'", p.OrderID)
	params.Limit = stripe.Int64(1)
	for pi, err := range s.sc.V1PaymentIntents.Search(ctx, params) {
		if err != nil {
			return "", err
		}
		s.remember(p.OrderID, pi.ID)
		return pi.ID, nil
	}
	return "", errNoIntent
}

func (s *Stripe) remember(orderID, intentID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.intents[orderID]; ok || len(s.intents) < stripeIntentsMax {
		s.intents[orderID] = intentID
	}
}
