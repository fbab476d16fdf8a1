package actors

import (
	"testing"
)

type okPayer struct{}

func (okPayer) Charge(string, int64, string) *Error { return nil }
func (okPayer) Refund(string, int64) *Error         { return nil }

func TestEngineSmoke(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Config{Dir: dir})
	requireNoError(t, err)
	def := SaleDef{ID: "s1", Zones: []ZoneDef{{ID: "ga", Capacity: 10, PriceCents: 100}, {ID: "vip", PriceCents: 1000, Rows: []RowDef{{Row: "A", Seats: 5}}}}}
	s, cerr := e.CreateSale(def)
	if cerr != nil {
		t.Fatal(cerr)
	}
	r := s.Hold(HoldRequest{Buyer: "b1", Zone: "ga", Quantity: 2})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	t.Logf("%+v", r.Hold)
	r2 := s.Hold(HoldRequest{Buyer: "b2", Zone: "vip", Seats: []string{"A-2", "A-3"}})
	if r2.Err != nil {
		t.Fatal(r2.Err)
	}
	r3 := s.Hold(HoldRequest{Buyer: "b3", Zone: "vip", Seats: []string{"A-3"}})
	t.Logf("%+v", r3.Err)
	o := e.Checkout(CheckoutRequest{HoldID: r.Hold.ID, Buyer: "b1", PaymentToken: "x"}, okPayer{})
	if o.Err != nil {
		t.Fatal(o.Err)
	}
	t.Logf("%+v %+v", o.Order, s.Counts())
	j := s.Join("b9")
	t.Logf("%+v %+v", j.Ticket, j.Err)
	requireNoError(t, e.Snapshot())
	requireNoError(t, e.Close())
	e, err = Open(Config{Dir: dir})
	requireNoError(t, err)
	s, _ = e.Sale("s1")
	t.Logf("%+v", s.Counts())
	g := e.GetOrder(o.Order.ID)
	t.Logf("%+v %+v", g.Order, g.Err)
	requireNoError(t, e.Close())
}
