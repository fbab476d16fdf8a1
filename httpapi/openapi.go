package httpapi

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// openAPIDoc is the contract of API.md as an OpenAPI 3.1 document, served at
// GET /openapi.yaml so that clients and tools can read it from the server
// they talk to. openapi_test.go checks it against the live server.
//
//go:embed openapi.yaml
var openAPIDoc []byte

func serveOpenAPI(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/yaml")
	ctx.SetBody(openAPIDoc)
}
