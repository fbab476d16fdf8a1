package actors

import (
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"onsale/actors/line"
	"onsale/actors/seats"
)

// SaleDef is an on-sale as an organizer defines it (API.md, "Sales"). It is
// written to the log as JSON in the sale_created event and never changes.
type SaleDef struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	OpensAt     string         `json:"opens_at"`
	Currency    string         `json:"currency"` // ISO 4217, lower case; "" in logs older than the field means eur
	HoldTTLS    int            `json:"hold_ttl_s"`
	MaxPerBuyer int            `json:"max_per_buyer"`
	WaitingRoom WaitingRoomDef `json:"waiting_room"`
	Zones       []ZoneDef      `json:"zones"`
}

// WaitingRoomDef configures a sale's line.
type WaitingRoomDef struct {
	ActiveLimit int `json:"active_limit"`
	AdmitPerS   int `json:"admit_per_s"`
	AccessTTLS  int `json:"access_ttl_s"`
}

// ZoneDef and RowDef are defined with the seats they lay out; the aliases
// keep the sale definition's JSON in one piece for its readers here and in
// httpapi.
type (
	ZoneDef = seats.ZoneDef
	RowDef  = seats.RowDef
)

// Limits of a sale definition, from API.md. The waiting room's ranges are
// the room's own (line.ActiveLimitMax, line.AdmitPerSMax, line.AccessTTLMax):
// Normalize checks them here, with the field's name, and the room only
// asserts them.
const (
	holdTTLSMax       = 3600
	holdTTLSDefault   = 600
	maxPerBuyerMax    = 100
	maxPerBuyerDef    = 6
	activeLimitDef    = 1000
	accessTTLSDefault = 900
	zonesMax          = 100
	gaCapacityMax     = seats.GACapacityMax
	rowsMax           = seats.RowsMax
	rowSeatsMax       = seats.RowSeatsMax
	saleSeatsMax      = 2_000_000
	nameBytesMax      = 200            // a display name; longer is a mistake, not a name
	priceCentsMax     = 100_000_000_00 // 100 million in major units: far above any ticket
)

// CurrencyDefault is a sale's currency when its definition names none, and
// the currency of every sale recorded before definitions had one.
const CurrencyDefault = "eur"

// validCurrency reports whether s has the shape of an ISO 4217 code in lower
// case (^[a-z]{3}$). Whether the code exists is the payment provider's to
// say: the list changes, and a sale in a currency the provider refuses fails
// at its first checkout, not here.
func validCurrency(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'a' || s[i] > 'z' {
			return false
		}
	}
	return true
}

var rowPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,8}$`)

// idBytesMax bounds a client-supplied id (API.md).
const idBytesMax = 64

// ValidID reports whether s is a client-supplied id (sale, zone, buyer):
// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$, checked by hand because every join
// checks a buyer id and the regexp cost 4% of a join's CPU.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > idBytesMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}

func badField(field, format string, args ...any) *Error {
	return &Error{Code: CodeBadRequest, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// Normalize checks d against API.md's limits, fills in defaults (a zero
// number means absent) and writes opens_at in canonical form. The error
// names the offending field.
func (d *SaleDef) Normalize(now time.Time) *Error {
	if !ValidID(d.ID) {
		return badField("id", "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
	}
	if d.Name == "" {
		d.Name = d.ID
	}
	if err := checkText("name", d.Name); err != nil {
		return err
	}
	if d.OpensAt == "" {
		d.OpensAt = FormatTime(now)
	} else {
		t, err := parseTime(d.OpensAt)
		if err != nil {
			return badField("opens_at", "must be an RFC 3339 time such as 2026-12-01T10:00:00.000Z")
		}
		d.OpensAt = FormatTime(t)
	}
	if d.Currency == "" {
		d.Currency = CurrencyDefault
	} else if !validCurrency(d.Currency) {
		return badField("currency", "must be an ISO 4217 code in lower case, such as eur or usd")
	}
	if err := defaultRange("hold_ttl_s", &d.HoldTTLS, 1, holdTTLSMax, holdTTLSDefault); err != nil {
		return err
	}
	if err := defaultRange("max_per_buyer", &d.MaxPerBuyer, 1, maxPerBuyerMax, maxPerBuyerDef); err != nil {
		return err
	}
	w := &d.WaitingRoom
	if err := defaultRange("waiting_room.active_limit", &w.ActiveLimit, 1, line.ActiveLimitMax, activeLimitDef); err != nil {
		return err
	}
	if w.AdmitPerS < 0 || w.AdmitPerS > line.AdmitPerSMax {
		return badField("waiting_room.admit_per_s", "must be 0 (automatic) to %d", line.AdmitPerSMax)
	}
	if err := defaultRange("waiting_room.access_ttl_s", &w.AccessTTLS, 1, line.AccessTTLMax/1000, accessTTLSDefault); err != nil {
		return err
	}
	if len(d.Zones) == 0 || len(d.Zones) > zonesMax {
		return badField("zones", "must list 1 to %d zones", zonesMax)
	}
	seen := make(map[string]bool, len(d.Zones))
	total := 0
	for i := range d.Zones {
		z := &d.Zones[i]
		f := fmt.Sprintf("zones[%d]", i)
		if !ValidID(z.ID) {
			return badField(f+".id", "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
		}
		if seen[z.ID] {
			return badField(f+".id", "zone %q is defined twice", z.ID)
		}
		seen[z.ID] = true
		if z.Name == "" {
			z.Name = z.ID
		}
		if err := checkText(f+".name", z.Name); err != nil {
			return err
		}
		if z.PriceCents < 0 || z.PriceCents > priceCentsMax {
			return badField(f+".price_cents", "must be 0 to %d", int64(priceCentsMax))
		}
		switch {
		case z.Capacity != 0 && len(z.Rows) != 0:
			return badField(f, "has both capacity and rows; a zone is general admission or reserved, not both")
		case z.Capacity != 0:
			if z.Capacity < 1 || z.Capacity > gaCapacityMax {
				return badField(f+".capacity", "must be 1 to %d", gaCapacityMax)
			}
			total += z.Capacity
		case len(z.Rows) != 0:
			if len(z.Rows) > rowsMax {
				return badField(f+".rows", "must list at most %d rows", rowsMax)
			}
			rows := make(map[string]bool, len(z.Rows))
			for j, r := range z.Rows {
				rf := fmt.Sprintf("%s.rows[%d]", f, j)
				if !rowPattern.MatchString(r.Row) {
					return badField(rf+".row", "must match ^[A-Za-z0-9]{1,8}$")
				}
				if rows[r.Row] {
					return badField(rf+".row", "row %q is defined twice", r.Row)
				}
				rows[r.Row] = true
				if r.Seats < 1 || r.Seats > rowSeatsMax {
					return badField(rf+".seats", "must be 1 to %d", rowSeatsMax)
				}
				total += r.Seats
			}
		default:
			return badField(f, "needs capacity (general admission) or rows (reserved seating)")
		}
	}
	if total > saleSeatsMax {
		return badField("zones", "the sale has %d seats; at most %d are allowed", total, saleSeatsMax)
	}
	return nil
}

// checkText checks a free-text field (a display name): valid UTF-8, at
// most nameBytesMax bytes, and no control characters. Names are shown on
// pages, in logs and in terminals, where a control character is never part
// of a name: a NUL, a newline or an escape sequence there is a mistake or an
// attack.
func checkText(field, s string) *Error {
	if len(s) > nameBytesMax || !utf8.ValidString(s) {
		return badField(field, "must be valid UTF-8 of at most %d bytes", nameBytesMax)
	}
	if hasControl(s) {
		return badField(field, "must not contain control characters")
	}
	return nil
}

// hasControl reports whether s has a C0 control (U+0000–U+001F), DEL
// (U+007F) or a C1 control (U+0080–U+009F). s is valid UTF-8.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}

func defaultRange(field string, v *int, lo, hi, def int) *Error {
	if *v == 0 {
		*v = def
		return nil
	}
	if *v < lo || *v > hi {
		return badField(field, "must be %d to %d", lo, hi)
	}
	return nil
}

// timeLayout is how every time is written: UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime writes t as API.md wants it.
func FormatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// parseTime reads RFC 3339 with any offset and 0 to 9 fractional digits.
func parseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}
