package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// Server limits. fasthttp's zero values mean "unlimited"; every one is set.
const (
	bodyBytesMax      = 1 << 20 // API.md: request bodies are at most 1 MiB
	headerBytesMax    = 8 << 10 // also fasthttp's read buffer; room for cookies
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	connectionsMax    = 200_000 // each holds ~10 KiB of buffers: ~2 GB at the cap; the file limit usually caps lower
	streamLifetimeMax = 30 * time.Minute
	heartbeatInterval = 15 * time.Second
)

// Config configures the HTTP server.
type Config struct {
	AdminToken   string
	SigningKey   []byte
	Gateway      Gateway
	GatewaySlots int // payment calls in flight at most
	// Per-buyer and per-address request rates (requests per second); 0 turns
	// a limit off.
	BuyerRate   int
	AddressRate int
	// ConnsPerAddress caps the connections one client address holds at once
	// (0: ConnsPerAddressDefault); past it new ones are closed at once.
	ConnsPerAddress int
	Logger          *slog.Logger
	Metrics         *Metrics
	Now             func() time.Time
	// Alerts are the alert thresholds and webhook; DataDir is where free
	// disk space is watched ("" for the working directory).
	Alerts  AlertOptions
	DataDir string
}

// Defaults of Config.
const (
	BuyerRateDefault    = 20   // API.md: at least 20 requests/s per buyer
	AddressRateDefault  = 1000 // API.md: at least 1,000/s per address (shared NATs)
	GatewaySlotsDefault = 64
)

// Server serves API.md over fasthttp.
type Server struct {
	cfg  Config
	eng  atomic.Pointer[actors.Engine] // nil while recovering
	sign atomic.Pointer[signer]        // swapped when a cluster's leader takes over
	// cluster is this node's membership of a cluster, nil on one node.
	cluster *cluster
	pay     *bulkhead
	byBuyer *limiter
	byAddr  *limiter
	pages   *pageCache // availability answers, shared by readers
	m       *Metrics
	log     *slog.Logger
	srv     *fasthttp.Server
	conns   int // connections held at once at most: the file limit's share
	closing chan struct{}
	dash    *dashboard
	alerts  *alerter
}

// New makes a server. Call SetEngine once recovery is done; until then every
// API call answers 503 recovering.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Gateway == nil {
		cfg.Gateway = &Simulator{}
	}
	if cfg.GatewaySlots <= 0 {
		cfg.GatewaySlots = GatewaySlotsDefault
	}
	s := &Server{
		cfg: cfg, m: cfg.Metrics, log: cfg.Logger,
		byBuyer: newLimiter(cfg.BuyerRate), byAddr: newLimiter(cfg.AddressRate),
		pages:   newPageCache(),
		closing: make(chan struct{}),
	}
	s.setSigner(cfg.SigningKey)
	if cfg.ConnsPerAddress <= 0 {
		cfg.ConnsPerAddress = ConnsPerAddressDefault
	}
	storageDown := func() bool {
		e := s.eng.Load()
		return e != nil && e.StorageErr() != nil
	}
	s.m.storageDown.Store(&storageDown)
	limit, conns := connectionsCap()
	s.conns = conns
	s.m.connectionsCap.Store(int64(conns))
	s.log.Debug("connection caps", "caps", describeCaps(limit, conns, cfg.ConnsPerAddress))
	s.pay = newBulkhead(cfg.Gateway, cfg.GatewaySlots, s.m)
	s.dash = newDashboard(s)
	dir := cfg.DataDir
	if dir == "" {
		dir = "."
	}
	s.alerts = newAlerter(s, cfg.Alerts, dir)
	activeAlerts := func() []Alert { a, _ := s.alerts.view(); return a }
	s.m.alerts.Store(&activeAlerts)
	s.srv = &fasthttp.Server{
		Handler:                            s.handle,
		ErrorHandler:                       s.transportError,
		Name:                               "onsale",
		Concurrency:                        conns,
		MaxConnsPerIP:                      cfg.ConnsPerAddress,
		ReadBufferSize:                     headerBytesMax,
		WriteBufferSize:                    4 << 10, // answers are small; a large one is written in several
		MaxRequestBodySize:                 bodyBytesMax,
		ReadTimeout:                        readTimeout,
		WriteTimeout:                       writeTimeout,
		IdleTimeout:                        idleTimeout,
		NoDefaultServerHeader:              true,
		CloseOnShutdown:                    true,
		DisablePreParseMultipartForm:       true,
		SleepWhenConcurrencyLimitsExceeded: 50 * time.Millisecond,
		Logger:                             fasthttpLogger{s.log},
	}
	return s
}

// SetEngine makes the server ready.
func (s *Server) SetEngine(e *actors.Engine) { s.eng.Store(e) }

// setSigner puts key in force for access tokens.
func (s *Server) setSigner(key []byte) {
	sg := newSigner(key)
	s.sign.Store(&sg)
}

// Serve serves on ln until Shutdown, holding at most the connections the
// file limit allows and waiting out EMFILE instead of exiting.
func (s *Server) Serve(ln net.Listener) error {
	go s.alerts.run(s.closing)
	return s.srv.Serve(newGateListener(ln, s.conns, s.m, s.log))
}

// Shutdown stops taking connections, ends streams and waits for requests in
// flight, at most until the timeout.
func (s *Server) Shutdown(timeout time.Duration) error {
	close(s.closing)
	done := make(chan error, 1)
	go func() { done <- s.srv.Shutdown() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("http shutdown: connections still open after %s", timeout)
	}
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug(fmt.Sprintf(format, args...), "lib", "fasthttp")
}

// transportError answers what fasthttp refuses before a handler runs, in
// JSON like every other error.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.As(err, &small):
		fail(ctx, codeHeadersTooLarge, fmt.Sprintf("request headers are over %d bytes", headerBytesMax))
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		fail(ctx, codePayloadTooLarge, fmt.Sprintf("request bodies are at most %d bytes", bodyBytesMax))
	default:
		var te interface{ Timeout() bool }
		if errors.As(err, &te) && te.Timeout() {
			fail(ctx, actors.CodeBadRequest, "the request was not received in time")
			ctx.SetStatusCode(fasthttp.StatusRequestTimeout) // after fail, which sets 400
			return
		}
		// Not err's text: fasthttp quotes the raw request in it, headers
		// (and their tokens) included.
		fail(ctx, actors.CodeBadRequest, "malformed HTTP request: check the request line, headers and body framing")
	}
	ctx.SetConnectionClose()
}

// handle is the root handler: it recovers panics, measures, and routes.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	route := "unknown"
	defer func() {
		if p := recover(); p != nil {
			s.m.panics.Inc()
			s.log.Error("panic in handler", "path", string(ctx.Path()), "panic", p, "stack", string(debug.Stack()))
			ctx.Response.Reset()
			fail(ctx, codeInternal, "the server failed on this request; it is logged, and nothing was changed unless a 2xx said so")
		}
		s.m.request(route, ctx.Response.StatusCode(), time.Since(start))
	}()
	// Taken before routing: a leader deposed while it answers must still
	// have its answer confirmed (and refused).
	// The epoch first: a leadership that begins between the two reads
	// makes the confirmation fail, never pass for the wrong engine.
	var epoch uint64
	if s.cluster != nil {
		epoch = s.cluster.epoch.Load()
	}
	leading := s.cluster != nil && s.cluster.leading.Load()
	route = s.route(ctx, leading)
	if c := s.cluster; leading && !ctx.Hijacked() && !committed(ctx) && !c.confirmed(epoch) {
		ctx.Response.Reset()
		ctx.Response.Header.Set(hdrNode, c.node.ID())
		retryAfter(ctx, 1)
		fail(ctx, actors.CodeUnavailable, "this node could not confirm it still leads the cluster, so its answer may be stale; nothing was changed by it: retry (the same Idempotency-Key gets the first answer)")
	}
}

// committed reports whether the answer is a write's 2xx: made durable by a
// majority, or a repeat of one that was.
func committed(ctx *fasthttp.RequestCtx) bool {
	st := ctx.Response.StatusCode()
	return st >= 200 && st < 300 && !ctx.IsGet() && !ctx.IsHead()
}

// splitPath splits a clean absolute path into segments; ok is false for
// paths that cannot name a resource (empty segments, dot segments).
func splitPath(p []byte) ([]string, bool) {
	if len(p) == 0 || p[0] != '/' {
		return nil, false
	}
	if len(p) == 1 {
		return nil, true
	}
	parts := strings.Split(string(p[1:]), "/")
	for _, x := range parts {
		if x == "" || x == "." || x == ".." {
			return nil, false
		}
	}
	return parts, true
}

// method checks the request method against the allowed ones.
func method(ctx *fasthttp.RequestCtx, allowed ...string) bool {
	m := string(ctx.Method())
	for _, a := range allowed {
		if m == a || (m == "HEAD" && a == "GET") {
			return true
		}
	}
	ctx.Response.Header.Set("Allow", strings.Join(allowed, ", "))
	fail(ctx, codeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use %s", m, strings.Join(allowed, " or ")))
	return false
}

// route dispatches a request and returns its route name for metrics;
// leading is whether this cluster node led when handle took the request.
func (s *Server) route(ctx *fasthttp.RequestCtx, leading bool) string {
	parts, ok := splitPath(ctx.Path())
	if !ok {
		fail(ctx, actors.CodeNotFound, "no such resource")
		return "invalid"
	}
	n := len(parts)
	switch {
	case n == 0:
		if method(ctx, "GET") {
			servePage(ctx, buyerPage)
		}
		return "/"
	case n == 2 && parts[0] == "sales":
		// The page of one sale, the link an organizer shares. The page reads
		// the id from its own address and says so if the sale does not exist;
		// the status says it too, for link checkers and crawlers (a node
		// still building its state cannot tell, and answers 200).
		if method(ctx, "GET") {
			servePage(ctx, buyerPage)
			if eng := s.eng.Load(); eng != nil {
				if _, ok := eng.Sale(parts[1]); !ok {
					ctx.SetStatusCode(fasthttp.StatusNotFound)
				}
			}
		}
		return "/sales/{sale}"
	case n == 1 && parts[0] == "healthz":
		if method(ctx, "GET") {
			writeJSON(ctx, 200, map[string]string{"status": "ok"})
		}
		return "/healthz"
	case n == 1 && parts[0] == "openapi.yaml":
		if method(ctx, "GET") {
			serveOpenAPI(ctx)
		}
		return "/openapi.yaml"
	case n == 1 && parts[0] == "readyz":
		if method(ctx, "GET") {
			if s.cluster != nil {
				if err := s.cluster.ready(); err != nil {
					fail(ctx, codeRecovering, err.Error())
				} else {
					writeJSON(ctx, 200, map[string]string{"status": "ready", "node": s.cluster.node.ID(), "state": s.cluster.node.State()})
				}
			} else if s.eng.Load() == nil {
				fail(ctx, codeRecovering, "the server is recovering its state from the log; retry in a moment")
			} else if err := s.eng.Load().Err(); err != nil {
				fail(ctx, actors.CodeUnavailable, "the engine stopped: "+err.Error())
			} else if err := s.eng.Load().StorageErr(); err != nil {
				// Reads still work; writes answer 503 until the disk recovers.
				fail(ctx, actors.CodeStorageUnavailable, "the server cannot write to its disk ("+err.Error()+"); reads still work, writes resume by themselves once the disk recovers")
			} else {
				writeJSON(ctx, 200, map[string]string{"status": "ready"})
			}
		}
		return "/readyz"
	case n == 1 && parts[0] == "metrics":
		if method(ctx, "GET") {
			ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
			s.m.write(ctx, s.eng.Load())
		}
		return "/metrics"
	case n >= 1 && parts[0] == "dashboard":
		return s.dash.route(ctx, parts[1:])
	case n < 2 || parts[0] != "v1":
		fail(ctx, actors.CodeNotFound, "no such resource")
		return "unknown"
	}
	if s.cluster != nil {
		// Which node answered: a forwarded answer carries the leader's.
		ctx.Response.Header.Set(hdrNode, s.cluster.node.ID())
		if n >= 2 && parts[1] == "cluster" {
			return s.cluster.route(ctx, parts)
		}
	} else if n == 2 && parts[1] == "cluster" {
		fail(ctx, actors.CodeNotFound, "this server runs as one node, not in a cluster: there is no cluster to show (a cluster's nodes start with --node-id, --raft-addr and --peers)")
		return "/v1/cluster"
	}
	eng := s.eng.Load()
	if c := s.cluster; c != nil && !leading {
		// A follower is the front door: it limits, answers reads from its
		// copy of the leader's state, and hands the rest over.
		if !queueStatusPath(ctx, parts) && !s.limitAddress(ctx) {
			return "rate_limited"
		}
		if eng != nil && c.keyed.Load() && (ctx.IsGet() || ctx.IsHead()) {
			route := s.routeAPI(ctx, eng, parts)
			if ctx.Response.StatusCode() == 404 && !ctx.Hijacked() {
				// Not here yet: what a buyer was just told the leader
				// made may not have reached this node.
				ctx.Response.Reset()
				c.forward(ctx, parts)
				return "forwarded"
			}
			return route
		}
		c.forward(ctx, parts)
		return "forwarded"
	}
	if eng == nil {
		fail(ctx, codeRecovering, "the server is recovering its state from the log; retry in a moment")
		return "recovering"
	}
	if !queueStatusPath(ctx, parts) && !s.limitAddress(ctx) {
		return "rate_limited"
	}
	route := s.routeAPI(ctx, eng, parts)
	if s.cluster != nil && len(ctx.Request.Header.Peek(hdrForwardedBy)) > 0 {
		// What the forwarding node must have applied before it answers.
		ctx.Response.Header.Set(hdrApplied, strconv.FormatUint(eng.LogSeq(), 10))
	}
	return route
}

// routeAPI dispatches /v1/sales, /v1/holds and /v1/orders to the engine.
func (s *Server) routeAPI(ctx *fasthttp.RequestCtx, eng *actors.Engine, parts []string) string {
	switch parts[1] {
	case "sales":
		return s.routeSales(ctx, eng, parts[2:])
	case "holds":
		return s.routeHolds(ctx, eng, parts[2:])
	case "orders":
		return s.routeOrders(ctx, eng, parts[2:])
	}
	fail(ctx, actors.CodeNotFound, "no such resource")
	return "unknown"
}

// decode reads a JSON body strictly: one object, no unknown fields, nothing
// after it.
func decode(ctx *fasthttp.RequestCtx, v any) bool {
	body := ctx.PostBody()
	if len(bytes.TrimSpace(body)) == 0 {
		fail(ctx, actors.CodeBadRequest, "the request needs a JSON object body")
		return false
	}
	if err := decodeJSON(body, v); err != nil {
		fail(ctx, actors.CodeBadRequest, err.Error())
		return false
	}
	return true
}

func decodeJSON(body []byte, v any) error {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return errors.New("the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("field %q must be %s, not a JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("the body is not valid JSON for this request: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return errors.New("the body has data after its JSON object")
	}
	return checkKeys(body, reflect.TypeOf(v))
}

// isAdmin checks the admin bearer token.
func (s *Server) isAdmin(ctx *fasthttp.RequestCtx) bool {
	tok, ok := bearer(ctx)
	return ok && equalToken(tok, s.cfg.AdminToken)
}

func (s *Server) requireAdmin(ctx *fasthttp.RequestCtx) bool {
	if s.isAdmin(ctx) {
		return true
	}
	fail(ctx, codeUnauthorized, "this needs the admin token: Authorization: Bearer <token> (see --admin-token)")
	return false
}

func bearer(ctx *fasthttp.RequestCtx) (string, bool) {
	h := string(ctx.Request.Header.Peek("Authorization"))
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

// access verifies a buyer's access token for sale. ok is false (and the
// answer written) when it is missing, forged, expired or of another sale.
func (s *Server) access(ctx *fasthttp.RequestCtx, sale *actors.Sale) (accessClaims, bool) {
	c, ok := s.claims(ctx)
	if !ok || c.Sale != sale.ID() || sale.Revoked(c.ID) {
		fail(ctx, actors.CodeNotAdmitted, "this needs a valid access token for this sale: join the line and wait for your admission")
		return c, false
	}
	return c, true
}

// claims reads a valid, unexpired access token if the request has one. The
// answer is kept in the request's user values, so that the rate limiter and
// the handler verify the signature once.
func (s *Server) claims(ctx *fasthttp.RequestCtx) (accessClaims, bool) {
	if v, ok := ctx.UserValue(claimsKey{}).(*claimsMemo); ok {
		return v.c, v.ok
	}
	m := &claimsMemo{}
	if tok, ok := bearer(ctx); ok {
		c, err := s.sign.Load().verify(tok)
		if err == nil && c.Expires > s.cfg.Now().UnixMilli() {
			m.c, m.ok = c, true
		}
	}
	ctx.SetUserValue(claimsKey{}, m)
	return m.c, m.ok
}

type claimsKey struct{}

type claimsMemo struct {
	c  accessClaims
	ok bool
}

// queueStatusPath reports a GET of a place in line by a well-formed queue id
// (/v1/sales/{sale}/queue/{id} and its events). The id is the buyer's
// identity there: limitPoll limits it after the lookup, per id for a known
// one and per address for an unknown one.
func queueStatusPath(ctx *fasthttp.RequestCtx, parts []string) bool {
	return string(ctx.Method()) == "GET" &&
		(len(parts) == 5 || (len(parts) == 6 && parts[5] == "events")) &&
		parts[1] == "sales" && parts[3] == "queue" && actors.ValidQueueID(parts[4])
}

// limitAddress applies the per-address rate limit to requests that carry no
// buyer identity; buyers are limited by limitBuyer instead, so that many
// buyers behind one address are not starved. Only a valid access token (or
// the admin token) is an identity: any other bearer would let one client
// skip the limit with "Authorization: Bearer x".
func (s *Server) limitAddress(ctx *fasthttp.RequestCtx) bool {
	if _, ok := s.claims(ctx); ok || s.isAdmin(ctx) {
		return true
	}
	if s.cluster != nil && s.cluster.fromMember(ctx) && len(ctx.Request.Header.Peek(hdrForwardedBy)) > 0 {
		return true // the forwarding member limited it
	}
	return s.limit(ctx, s.byAddr, s.clientAddr(ctx))
}

func (s *Server) limitBuyer(ctx *fasthttp.RequestCtx, key string) bool {
	return s.limit(ctx, s.byBuyer, key)
}

func (s *Server) limit(ctx *fasthttp.RequestCtx, l *limiter, key string) bool {
	ok, wait := l.allow(key, s.cfg.Now())
	if ok {
		return true
	}
	s.m.rateLimited.Inc()
	retryAfter(ctx, wait)
	fail(ctx, codeRateLimited, fmt.Sprintf("too many requests; retry after %d s (your place in line is kept)", wait))
	return false
}

// idemKey reads the Idempotency-Key header: 1–128 printable ASCII.
func idemKey(ctx *fasthttp.RequestCtx) (string, bool) {
	v := ctx.Request.Header.Peek("Idempotency-Key")
	if v == nil {
		return "", true
	}
	if len(v) < 1 || len(v) > 128 {
		fail(ctx, actors.CodeBadRequest, "Idempotency-Key must be 1 to 128 printable ASCII characters")
		return "", false
	}
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			fail(ctx, actors.CodeBadRequest, "Idempotency-Key must be 1 to 128 printable ASCII characters")
			return "", false
		}
	}
	return string(v), true
}

// answer writes an engine result: the error, or v with status.
func answer(ctx *fasthttp.RequestCtx, r actors.Result, status int, v func() any) {
	if r.Err != nil {
		writeError(ctx, r.Err)
		return
	}
	writeJSON(ctx, status, v())
}
