package actors

import (
	"fmt"

	"onsale/actors/seats"
)

// Error is a refusal with a stable code, as API.md names them. The HTTP layer
// maps Code to a status; the extra fields travel inside the JSON error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Remaining is set with CodeLimitExceeded: how many more seats the buyer may take.
	Remaining *int `json:"remaining,omitempty"`
	// Alternatives is set with CodeSeatsTaken: up to 3 seat lists of the same size.
	Alternatives [][]string `json:"alternatives,omitempty"`
	// Zones is set with CodeSoldOut: the other zones with seats free.
	Zones []ZoneFree `json:"zones,omitempty"`

	// notDone marks an answer that says for certain the change was not
	// made (the log refused it), as opposed to a timeout, whose outcome is
	// unknown: a checkout refunds a charge only on the former.
	notDone bool
	// transient marks a refusal that a retry may not get (another checkout
	// of the hold in progress): never stored under an idempotency key.
	transient bool
	// keyClosed marks a charge the provider refused because its key was
	// closed (Payer.Void) while the charge waited: nothing was charged,
	// and the attempt can never be; see KeyClosed.
	keyClosed bool
}

// KeyClosed is a Payer's answer to a charge whose key was closed (Void)
// before it left: the attempt was settled as unpaid meanwhile, and nothing
// was or can be charged under that key. A checkout then starts a fresh
// attempt.
func KeyClosed(message string) *Error {
	return &Error{Code: CodePaymentDown, Message: message, keyClosed: true}
}

// ZoneFree names a zone and how many seats it has free. The seat core makes
// the lists, for its sold_out refusals.
type ZoneFree = seats.ZoneFree

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Stable error codes. They are part of the HTTP contract and of the stored
// answers of idempotent requests: never rename one.
const (
	CodeBadRequest     = "bad_request"
	CodeNotFound       = "not_found"
	CodeSaleExists     = "sale_exists"
	CodeSeatsTaken     = "seats_taken"
	CodeSoldOut        = "sold_out"
	CodeLimitExceeded  = "limit_exceeded"
	CodeSalePaused     = "sale_paused"
	CodeHoldNotActive  = "hold_not_active"
	CodeHoldExpired    = "hold_expired"
	CodeNotAdmitted    = "not_admitted"
	CodeIdemReused     = "idempotency_key_reused"
	CodePaymentDecline = "payment_declined"
	CodePaymentDown    = "payment_unavailable"
	CodeUnavailable    = "unavailable" // the engine cannot take writes (log failed, overloaded, timed out)
	CodeLineFull       = "line_full"
	// CodeStorageUnavailable: the log cannot write for now (disk full, an
	// I/O error on write, a stuck fsync); nothing was changed, and writes
	// resume by themselves once the disk recovers.
	CodeStorageUnavailable = "storage_unavailable"
)

func errHoldNotFound() *Error { return errorf(CodeNotFound, "no such hold") }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
