package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// The contract as a document: httpapi/openapi.yaml describes API.md, and
// these checks hold the running server to it. Every request the HTTP tests
// send through testServer.try, and every answer they get, is validated
// against the document (see contract.check).

// contract is the loaded document and its router.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	contractOnce sync.Once
	contractDoc  *contract
	contractErr  error
)

func init() {
	// Pages and event streams are text; kin-openapi knows text/plain only.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// loadContract loads and validates openapi.yaml once per test binary.
func loadContract() (*contract, error) {
	contractOnce.Do(func() {
		ctx := context.Background()
		doc, err := openapi3.NewLoader().LoadFromData(openAPIDoc)
		if err != nil {
			contractErr = fmt.Errorf("load openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(ctx); err != nil {
			contractErr = fmt.Errorf("openapi.yaml is not a valid OpenAPI document: %w", err)
			return
		}
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			contractErr = fmt.Errorf("route openapi.yaml: %w", err)
			return
		}
		contractDoc = &contract{doc: doc, router: r}
	})
	return contractDoc, contractErr
}

// contractExempt says which answers are not checked: the event streams
// (their body is a stream that the tests read as it comes, not one
// document) and the dashboard's pages and streams.
func contractExempt(path string) bool {
	return strings.HasSuffix(path, "/events") || strings.HasPrefix(path, "/dashboard")
}

// check validates one exchange against the document. A request the
// document rejects must be refused by the server too (a 4xx); every answer,
// whatever the request, must be one the document declares: its status and
// its body. reqBody and body are the bytes sent and received.
func (c *contract) check(req *http.Request, reqBody []byte, status int, header http.Header, body []byte) error {
	if contractExempt(req.URL.Path) {
		return nil
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	}
	r := req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		// No such path or method in the document: the server must have
		// answered with an error body, 404 or 405.
		if status != 404 && status != 405 {
			return fmt.Errorf("%s %s is not in openapi.yaml (%v) but the server answered %d", req.Method, req.URL.Path, err, status)
		}
		return c.checkError(status, header, body)
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil && (status < 400 || status >= 500) {
		return fmt.Errorf("%s %s: the document rejects the request but the server answered %d: %v", req.Method, req.URL, status, err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s %s: answer %d %s does not match openapi.yaml: %v", req.Method, req.URL, status, truncate(string(body), 300), err)
	}
	return nil
}

// checkError validates an error answer to a request that has no route in
// the document against the Error schema.
func (c *contract) checkError(status int, header http.Header, body []byte) error {
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return fmt.Errorf("error answer %d has content type %q", status, ct)
	}
	var v any
	if err := jsonUnmarshal(body, &v); err != nil {
		return fmt.Errorf("error answer %d is not JSON: %v", status, err)
	}
	schema := c.doc.Components.Schemas["Error"].Value
	if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("error answer %d %s does not match the Error schema: %v", status, truncate(string(body), 300), err)
	}
	return nil
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	c, err := loadContract()
	requireNoErr(t, err)
	requireTrue(t, c.doc.IsOpenAPI31OrLater(), "openapi.yaml is OpenAPI 3.1")
}

func TestOpenAPIServed(t *testing.T) {
	ts := startServer(t)
	r := ts.do(t, "GET", "/openapi.yaml", nil)
	requireStatus(t, r, 200)
	requireEqual(t, r.Header.Get("Content-Type"), "application/yaml")
	requireTrue(t, bytes.Equal(r.Body, openAPIDoc), "the served document is the embedded one")
	requireError(t, ts.do(t, "POST", "/openapi.yaml", "{}"), 405, codeMethodNotAllowed)
}

// TestOpenAPICheckRejects makes sure the check is not vacuous: an answer
// with an undeclared status or field, or a bad request the server accepts,
// is refused.
func TestOpenAPICheckRejects(t *testing.T) {
	c, err := loadContract()
	requireNoErr(t, err)
	jsonHdr := http.Header{"Content-Type": {"application/json"}}
	get := func(path string) *http.Request {
		r, err := http.NewRequest("GET", "http://127.0.0.1"+path, nil)
		requireNoErr(t, err)
		return r
	}
	good := []byte(`{"status":"ok"}`)
	requireNoErr(t, c.check(get("/healthz"), nil, 200, jsonHdr, good), "a declared answer")
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"undeclared status", 500, `{"error":{"code":"internal","message":"x"}}`},
		{"undeclared field", 200, `{"status":"ok","extra":1}`},
		{"missing field", 200, `{}`},
	} {
		requireTrue(t, c.check(get("/healthz"), nil, tc.status, jsonHdr, []byte(tc.body)) != nil, tc.name, "passed the check")
	}
	requireTrue(t, c.check(get("/nowhere"), nil, 200, jsonHdr, good) != nil, "a 200 to a path the document does not have passed the check")
	requireTrue(t, c.check(get("/nowhere"), nil, 404, jsonHdr, []byte(`{"error":{"code":"not_found"}}`)) != nil, "an error body without its message passed the check")
	post, err := http.NewRequest("POST", "http://127.0.0.1/v1/sales/s/queue", nil)
	requireNoErr(t, err)
	post.Header.Set("Content-Type", "application/json")
	ticket := []byte(`{"queue_id":"q_1","state":"waiting","poll_after_s":1}`)
	requireTrue(t, c.check(post, []byte(`{"buyer":"b","typo":1}`), 200, jsonHdr, ticket) != nil, "a request with an unknown field that the server accepted passed the check")
	requireNoErr(t, c.check(post, []byte(`{"buyer":"b"}`), 200, jsonHdr, ticket), "a good join")
}
