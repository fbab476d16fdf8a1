package httpapi

import (
	"encoding/json"
	"strconv"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// Codes of the HTTP layer itself, beside the engine's (actors.Code*).
const (
	codeUnauthorized     = "unauthorized"
	codeForbidden        = "forbidden" // the dashboard's actions without their CSRF token
	codeMethodNotAllowed = "method_not_allowed"
	codePayloadTooLarge  = "payload_too_large"
	codeHeadersTooLarge  = "headers_too_large"
	codeRateLimited      = "rate_limited"
	codeRecovering       = "recovering"
	codeInternal         = "internal"
)

// statusOf maps a stable error code to its HTTP status (API.md).
func statusOf(code string) int {
	switch code {
	case actors.CodeBadRequest:
		return fasthttp.StatusBadRequest
	case codeUnauthorized:
		return fasthttp.StatusUnauthorized
	case actors.CodePaymentDecline:
		return fasthttp.StatusPaymentRequired
	case actors.CodeNotAdmitted, codeForbidden:
		return fasthttp.StatusForbidden
	case actors.CodeNotFound:
		return fasthttp.StatusNotFound
	case codeMethodNotAllowed:
		return fasthttp.StatusMethodNotAllowed
	case actors.CodeSaleExists, actors.CodeSeatsTaken, actors.CodeSoldOut, actors.CodeHoldNotActive:
		return fasthttp.StatusConflict
	case actors.CodeHoldExpired:
		return fasthttp.StatusGone
	case codePayloadTooLarge:
		return fasthttp.StatusRequestEntityTooLarge
	case actors.CodeLimitExceeded, actors.CodeIdemReused:
		return fasthttp.StatusUnprocessableEntity
	case codeRateLimited:
		return fasthttp.StatusTooManyRequests
	case codeHeadersTooLarge:
		return fasthttp.StatusRequestHeaderFieldsTooLarge
	case actors.CodePaymentDown:
		return fasthttp.StatusBadGateway
	case actors.CodeSalePaused, actors.CodeUnavailable, codeRecovering, actors.CodeLineFull, actors.CodeStorageUnavailable:
		return fasthttp.StatusServiceUnavailable
	}
	return fasthttp.StatusInternalServerError
}

// wireError is an error as it is sent.
type wireError struct {
	Code         string             `json:"code"`
	Message      string             `json:"message"`
	Remaining    *int               `json:"remaining,omitempty"`
	Alternatives *[][]string        `json:"alternatives,omitempty"`
	Zones        *[]actors.ZoneFree `json:"zones,omitempty"`
}

// writeError sends the JSON error body that every failure carries.
func writeError(ctx *fasthttp.RequestCtx, e *actors.Error) {
	status := statusOf(e.Code)
	// API.md: seats_taken always carries "alternatives" and sold_out
	// "zones", as [] when there is none; actors.Error omits empty lists.
	w := wireError{Code: e.Code, Message: e.Message, Remaining: e.Remaining}
	switch e.Code {
	case actors.CodeSeatsTaken:
		alts := e.Alternatives
		if alts == nil {
			alts = [][]string{}
		}
		w.Alternatives = &alts
	case actors.CodeSoldOut:
		zones := e.Zones
		if zones == nil {
			zones = []actors.ZoneFree{}
		}
		w.Zones = &zones
	}
	body, err := json.Marshal(struct {
		Error wireError `json:"error"`
	}{w})
	if err != nil {
		body = []byte(`{"error":{"code":"internal","message":"could not encode the error"}}`)
		status = fasthttp.StatusInternalServerError
	}
	if status == fasthttp.StatusServiceUnavailable || status == fasthttp.StatusTooManyRequests {
		if len(ctx.Response.Header.Peek("Retry-After")) == 0 {
			ctx.Response.Header.Set("Retry-After", "1")
		}
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(body, '\n'))
}

func fail(ctx *fasthttp.RequestCtx, code, msg string) {
	writeError(ctx, &actors.Error{Code: code, Message: msg})
}

// writeJSON sends v with status.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		fail(ctx, codeInternal, "could not encode the answer: "+err.Error())
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(body, '\n'))
}

func retryAfter(ctx *fasthttp.RequestCtx, seconds int) {
	if seconds < 1 {
		seconds = 1
	}
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(seconds))
}
