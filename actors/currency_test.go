package actors

import (
	"encoding/json"
	"strings"
	"testing"

	"onsale/wal"
)

// TestNormalizeCurrency: a sale's currency defaults to eur, is kept when it
// has the shape of a lower-case ISO 4217 code, and is refused by name
// otherwise.
func TestNormalizeCurrency(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "" for refused
	}{
		{"", "eur"},
		{"eur", "eur"},
		{"usd", "usd"},
		{"jpy", "jpy"},
		{"EUR", ""},
		{"Eur", ""},
		{"eu", ""},
		{"euro", ""},
		{"e1r", ""},
		{"€", ""},
		{" eu", ""},
	} {
		d := SaleDef{ID: "s", Currency: c.in, Zones: []ZoneDef{{ID: "ga", Capacity: 1}}}
		err := d.Normalize(testBase)
		if c.want == "" {
			requireTrue(t, err != nil && err.Code == CodeBadRequest && strings.HasPrefix(err.Message, "currency: "),
				"%q refused naming the field: %v", c.in, err)
			continue
		}
		requireTrue(t, err == nil, "%q: %v", c.in, err)
		requireEqual(t, d.Currency, c.want, "currency %q", c.in)
	}
}

// TestOrderCurrency: an order carries its sale's currency, the gateway is
// asked to charge and refund in it, and a restart keeps it.
func TestOrderCurrency(t *testing.T) {
	h := newHarness(t)
	def := stdSaleDef()
	def.Currency = "usd"
	s := h.createSale(def)
	p := newFakePayer()
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k"}, p))
	requireEqual(t, o.Currency, "usd")

	h.restart()
	requireEqual(t, h.sale("final").Def().Currency, "usd", "the sale after a restart")
	requireEqual(t, requireOrder(t, h.e.GetOrder(o.ID)).Currency, "usd", "the order after a restart")
	requireEqual(t, requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK, IdemKey: "k"}, p)).Currency,
		"usd", "the checkout's replay after a restart")
	requireEqual(t, requireOrder(t, h.e.CancelOrder(o.ID, p)).State, "cancelled")

	var got []string
	for _, pay := range p.payments() {
		got = append(got, pay.Currency)
	}
	requireEqual(t, got, []string{"usd", "usd"}, "the charge and the refund")
}

// TestSaleWithoutCurrencyRecovers: a sale_created record written before
// sales had a currency (no "currency" in its definition) still recovers,
// as a sale in eur.
func TestSaleWithoutCurrencyRecovers(t *testing.T) {
	h := newHarness(t)
	old := map[string]any{
		"def": map[string]any{
			"id": "old", "name": "old", "opens_at": FormatTime(testBase), "hold_ttl_s": 600, "max_per_buyer": 6,
			"waiting_room": map[string]any{"active_limit": 1000, "admit_per_s": 0, "access_ttl_s": 900},
			"zones":        []any{map[string]any{"id": "ga", "name": "ga", "price_cents": 100, "capacity": 5}},
		},
		"idx": 1, "seed": strings.Repeat("ab", 32), "created_at": testBase.UnixMilli(),
	}
	blob, err := json.Marshal(old)
	requireNoError(t, err, "encode")
	done := make(chan error, 1)
	requireNoError(t, h.e.log.Append(&wal.Event{Type: wal.TypeSaleCreated, Sale: "old", Num: 1, At: testBase.UnixMilli(), Blob: blob},
		func(_ uint64, err error) { done <- err }), "append")
	requireNoError(t, <-done, "the record is durable")

	h.restart()
	s := h.sale("old")
	requireEqual(t, s.Def().Currency, "eur")
	v := mustHold(t, s, HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 1})
	o := requireOrder(t, h.e.Checkout(CheckoutRequest{HoldID: v.ID, Buyer: "b1", PaymentToken: tokOK}, newFakePayer()))
	requireEqual(t, o.Currency, "eur")
}
