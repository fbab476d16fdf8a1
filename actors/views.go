package actors

import "onsale/actors/seats"

// HoldView is a hold as buyers and operators see it.
type HoldView struct {
	ID        string   `json:"hold_id"`
	Sale      string   `json:"sale"`
	Zone      string   `json:"zone"`
	Buyer     string   `json:"buyer"`
	Seats     []string `json:"seats"`
	State     string   `json:"state"`
	CreatedAt int64    `json:"created_at"`
	ExpiresAt int64    `json:"expires_at"`
	Amount    int64    `json:"amount_cents"`
	OrderID   string   `json:"order_id,omitempty"`
}

// OrderView is an order: a purchased hold.
type OrderView struct {
	ID          string   `json:"order_id"`
	HoldID      string   `json:"hold_id"`
	Sale        string   `json:"sale"`
	Zone        string   `json:"zone"`
	Buyer       string   `json:"buyer"`
	Seats       []string `json:"seats"`
	Amount      int64    `json:"amount_cents"`
	Currency    string   `json:"currency"` // the sale's
	State       string   `json:"state"`    // paid or cancelled
	PaidAt      int64    `json:"paid_at"`
	CancelledAt int64    `json:"cancelled_at,omitempty"`
}

// ZoneCounts is a zone's live stock.
type ZoneCounts struct {
	ID   string `json:"id"`
	Free int    `json:"free"`
	Held int    `json:"held"`
	Sold int    `json:"sold"`
}

// SeatView is one seat of a reserved zone.
type SeatView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func holdView(sale string, z *seats.Zone, h *seats.Hold) *HoldView {
	v := &HoldView{
		ID: h.ID, Sale: sale, Zone: z.Def().ID, Buyer: h.Buyer,
		Seats: z.SeatNames(h.Seats), State: h.State.String(),
		CreatedAt: h.CreatedAt, ExpiresAt: h.ExpiresAt, Amount: h.Amount,
		OrderID: h.OrderID,
	}
	return v
}

func orderView(sale *SaleDef, z *seats.Zone, h *seats.Hold) *OrderView {
	v := &OrderView{
		ID: h.OrderID, HoldID: h.ID, Sale: sale.ID, Zone: z.Def().ID, Buyer: h.Buyer,
		Seats: z.SeatNames(h.Seats), Amount: h.Amount, Currency: sale.Currency, State: "paid", PaidAt: h.PaidAt,
	}
	if h.OrderCancelled {
		v.State, v.CancelledAt = "cancelled", h.CancelledAt
	}
	return v
}

// firstHoldAnswer is the answer a hold request got when it created h: the
// hold as it was then. Retries with the same idempotency key get it again.
func firstHoldAnswer(sale string, z *seats.Zone, h *seats.Hold) Result {
	v := holdView(sale, z, h)
	v.State, v.OrderID = seats.HoldActive.String(), ""
	return Result{Hold: v}
}

// firstOrderAnswer is the answer the checkout that bought h got.
func firstOrderAnswer(sale *SaleDef, z *seats.Zone, h *seats.Hold) Result {
	v := orderView(sale, z, h)
	v.State, v.CancelledAt = "paid", 0
	return Result{Order: v}
}
