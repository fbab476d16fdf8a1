package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRouteLatencyBuckets: each request lands in its route's histogram, in
// exactly the bucket its duration belongs to (bucket i holds durations
// below liveBase<<i, from the one before's bound), and nowhere else; a
// name the router does not give counts under routeUnknown, and its text
// reaches no metric label.
func TestRouteLatencyBuckets(t *testing.T) {
	m := NewMetrics()
	cases := []struct {
		d      time.Duration
		bucket int
	}{
		{0, 0},
		{liveBase - 1, 0},
		{liveBase, 1},
		{2*liveBase - 1, 1},
		{2 * liveBase, 2},
		{time.Millisecond, 5}, // 800 µs ≤ 1 ms < 1.6 ms
		{liveBase << 18, 19},  // from 13.1 s up: the last bucket
		{time.Hour, liveBuckets - 1},
	}
	var want [liveBuckets]uint64
	for _, c := range cases {
		m.request(holdRoute, 201, c.d)
		m.request(holdRoute, 409, c.d) // another series of the same route
		want[c.bucket] += 2
	}
	m.request("/no/such/path", 404, 3*time.Millisecond) // 60 × liveBase: bucket 6
	for i, name := range routeNames {
		got := m.routeLat[i].load()
		var w [liveBuckets]uint64
		switch name {
		case holdRoute:
			w = want
		case routeUnknown:
			w[6] = 1
		}
		requireEqual(t, got, w, "route %s", name)
	}
	var out bytes.Buffer
	m.write(&out, nil)
	requireTrue(t, !strings.Contains(out.String(), "/no/such/path"), "the path is no label")
	requireTrue(t, strings.Contains(out.String(), `onsale_http_requests_total{route="unknown",status="404"} 1`), "counted as unknown")
}

// TestRouteWindowsP99: the dashboard's windows give each route's p99 over
// the last dashLatencyTicks ticks, as its bucket's upper bound in ms, only
// for routes with requests in them; ticks missed count as empty, and
// counts older than the window are dropped.
func TestRouteWindowsP99(t *testing.T) {
	var l routeLatency
	w := newRouteWindows(&l)
	hold, health := l.of(holdRoute), l.of("/healthz")
	for range 99 {
		hold.observe(time.Millisecond) // bucket 5: < 1.6 ms
	}
	hold.observe(time.Second) // 1% of 100: the p99 stays in the ms bucket
	for range 10 {
		health.observe(100 * time.Microsecond) // bucket 2: < 200 µs
	}
	w.advance(1)
	requireEqual(t, w.p99Ms(), map[string]float64{holdRoute: 1.6, "/healthz": 0.2})

	hold.observe(time.Second)
	hold.observe(time.Second) // now 3 of 102 at 1 s: bucket 15, < 1.6384 s
	w.advance(1)
	requireEqual(t, w.p99Ms(), map[string]float64{holdRoute: 1638.4, "/healthz": 0.2})

	// Four ticks later the first tick leaves the window; two missed
	// ticks count as two.
	w.advance(2)
	w.advance(1)
	requireEqual(t, w.p99Ms(), map[string]float64{holdRoute: 1638.4, "/healthz": 0.2}, "tick 5 of the window")
	w.advance(1)
	requireEqual(t, w.p99Ms(), map[string]float64{holdRoute: 1638.4}, "the first tick left")
	w.advance(1)
	requireEqual(t, w.p99Ms(), map[string]float64{}, "no traffic in the window")

	// After a gap longer than the window, counts made in it are of an
	// unknown time: dropped, not shown as the last tick's.
	health.observe(time.Millisecond)
	w.advance(dashLatencyTicks + 1)
	requireEqual(t, w.p99Ms(), map[string]float64{}, "counts from before a long gap")
	health.observe(time.Millisecond)
	w.advance(1)
	requireEqual(t, w.p99Ms(), map[string]float64{"/healthz": 1.6}, "counting again")
}

// TestDashboardFrameRouteP99: frames carry route_p99_ms, moved on once per
// tick: a frame made again within a tick (an alert changed) shows the same
// window, and a route drops out dashLatencyTicks ticks after its last
// request.
func TestDashboardFrameRouteP99(t *testing.T) {
	s := New(Config{AdminToken: "a", SigningKey: []byte("k")})
	d := s.dash
	p99 := func(frame []byte) map[string]float64 {
		t.Helper()
		var f struct {
			P99 map[string]float64 `json:"route_p99_ms"`
		}
		requireNoErr(t, json.Unmarshal(bytes.TrimPrefix(frame, []byte("data: ")), &f), "frame %q", frame)
		requireTrue(t, f.P99 != nil, "the frame has route_p99_ms: %s", frame)
		return f.P99
	}
	t0 := d.frames.latTick
	requireEqual(t, p99(d.frame(t0)), map[string]float64{}, "no requests yet")
	s.m.request("/healthz", 200, 150*time.Microsecond)
	s.m.request(holdRoute, 201, 3*time.Millisecond)
	at := func(ticks int) time.Time { return t0.Add(time.Duration(ticks)*dashboardInterval + time.Millisecond) }
	want := map[string]float64{"/healthz": 0.2, holdRoute: 3.2}
	requireEqual(t, p99(d.frame(at(1))), want, "tick 1")

	for range 3 {
		s.m.request("/healthz", 200, time.Second) // 3 of 4: the p99 is theirs
	}
	d.invalidate()
	requireEqual(t, p99(d.frame(at(1))), want, "made again in tick 1: the window did not move")
	requireEqual(t, d.frames.made.Load(), int64(3))

	// The slow requests are counted at tick 2; tick 1, the hold's only,
	// leaves the window at tick 1+dashLatencyTicks.
	for k := 2; k <= dashLatencyTicks; k++ {
		requireEqual(t, p99(d.frame(at(k))), map[string]float64{"/healthz": 1638.4, holdRoute: 3.2}, "tick %d", k)
	}
	requireEqual(t, p99(d.frame(at(dashLatencyTicks+1))), map[string]float64{"/healthz": 1638.4}, "the hold's tick left")
	requireEqual(t, p99(d.frame(at(dashLatencyTicks+2))), map[string]float64{}, "no traffic in the window")
}

// TestRouteNamesCoverRouter: every name a route function returns is in
// routeNames, so no route the router gives is lumped under routeUnknown,
// and routeNames has no name the router never gives. A
// name is a literal, or a literal prefix plus a part of the path that the
// enclosing case compares with literals (parts[2] == "pause" || ...): then
// the prefix with each of them.
func TestRouteNamesCoverRouter(t *testing.T) {
	files, err := filepath.Glob("*.go")
	requireNoErr(t, err)
	fset := token.NewFileSet()
	str := func(e ast.Expr) (string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return "", false
		}
		v, err := strconv.Unquote(lit.Value)
		requireNoErr(t, err)
		return v, true
	}
	// comparedWith is the literals that the conditions of c compare x with.
	comparedWith := func(c *ast.CaseClause, x ast.Expr) []string {
		var lits []string
		for _, cond := range c.List {
			ast.Inspect(cond, func(n ast.Node) bool {
				if b, ok := n.(*ast.BinaryExpr); ok && b.Op == token.EQL && types.ExprString(b.X) == types.ExprString(x) {
					if v, ok := str(b.Y); ok {
						lits = append(lits, v)
					}
				}
				return true
			})
		}
		return lits
	}
	var names []string
	check := func(ret *ast.ReturnStmt, c *ast.CaseClause) {
		if len(ret.Results) != 1 {
			return
		}
		at := fset.Position(ret.Pos())
		if v, ok := str(ret.Results[0]); ok {
			names = append(names, v)
			return
		}
		b, ok := ret.Results[0].(*ast.BinaryExpr)
		if !ok || b.Op != token.ADD {
			return
		}
		prefix, ok := str(b.X)
		requireTrue(t, ok && c != nil, "%s: a route name of an unknown form", at)
		tails := comparedWith(c, b.Y)
		requireTrue(t, len(tails) > 0, "%s: the case does not say what %s is", at, types.ExprString(b.Y))
		for _, tail := range tails {
			names = append(names, prefix+tail)
		}
	}
	// walk checks the returns under root, c being the case clause nearest
	// around them.
	var walk func(root ast.Node, c *ast.CaseClause)
	walk = func(root ast.Node, c *ast.CaseClause) {
		ast.Inspect(root, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CaseClause:
				if n != root {
					walk(n, n)
					return false
				}
			case *ast.ReturnStmt:
				check(n, c)
			}
			return true
		})
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		requireNoErr(t, err, "parse %s", name)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !strings.HasPrefix(fn.Name.Name, "route") || fn.Body == nil {
				continue
			}
			walk(fn.Body, nil)
		}
	}
	for _, n := range names {
		_, ok := routeIndex[n]
		requireTrue(t, ok, "the router gives %q, which is not in routeNames", n)
	}
	for _, r := range routeNames {
		requireTrue(t, slices.Contains(names, r), "routeNames has %q, which the router never gives", r)
	}
}

// TestDashboardRouteP99OverHTTP: on a running server whose payment gateway
// takes paymentLatency a call, an open dashboard shows the checkout
// route's p99 at or above it and a health check's far below it (a ratio,
// not a wall-clock bound); once requests stop, the routes drop out of the
// frames within the window.
func TestDashboardRouteP99OverHTTP(t *testing.T) {
	t.Parallel()
	const (
		paymentLatency = 500 * time.Millisecond
		checkouts      = 3
		healthChecks   = 200
		checkoutRoute  = "/v1/holds/{hold}/checkout"
	)
	ts := startServer(t, func(o *Options) { o.PaymentLatency = paymentLatency })
	ts.createSale(t, newSaleSpec("s"))
	toks, holds := make([]string, checkouts), make([]string, checkouts)
	for i := range checkouts {
		toks[i] = ts.admit(t, "s", fmt.Sprintf("buyer%d", i))
		holds[i] = ts.mustHold(t, "s", toks[i], map[string]any{"zone": "ga", "quantity": 1}).HoldID
	}
	stream, closeStream := ts.dashboardStream(t, ts.dashboardLogin(t))
	defer closeStream()
	frame := func() map[string]float64 {
		t.Helper()
		var f struct {
			P99 map[string]float64 `json:"route_p99_ms"`
		}
		ev := readEvent(t, stream)
		requireNoErr(t, json.Unmarshal([]byte(ev), &f), "frame %s", ev)
		requireTrue(t, f.P99 != nil, "the frame has route_p99_ms: %s", ev)
		return f.P99
	}

	// The health checks run while the checkouts wait on the gateway.
	paid := make(chan error, checkouts)
	for i := range checkouts {
		go func() {
			r, err := ts.try("POST", "/v1/holds/"+holds[i]+"/checkout",
				map[string]any{"payment": map[string]string{"token": "tok_visa"}}, bearerHdr(toks[i]))
			if err == nil && r.Status != 201 {
				err = fmt.Errorf("checkout: %s", r)
			}
			paid <- err
		}()
	}
	for range healthChecks {
		requireStatus(t, ts.do(t, "GET", "/healthz", nil), 200)
	}
	for range checkouts {
		requireNoErr(t, <-paid)
	}

	var p99 map[string]float64
	for n := 0; ; n++ {
		requireTrue(t, n <= dashLatencyTicks+2, "no frame with both routes; last %v", p99)
		p99 = frame()
		_, slow := p99[checkoutRoute]
		_, fast := p99["/healthz"]
		if slow && fast {
			break
		}
	}
	t.Logf("p99 per route, ms: %v", p99)
	slowMs := float64(paymentLatency / time.Millisecond)
	requireTrue(t, p99[checkoutRoute] >= slowMs, "checkout p99 %g ms, with a gateway of %g ms", p99[checkoutRoute], slowMs)
	requireTrue(t, p99["/healthz"]*2 <= p99[checkoutRoute], "health p99 %g ms is not far below checkout's %g ms", p99["/healthz"], p99[checkoutRoute])

	// No more requests: every route leaves within the window's ticks (a
	// frame made again within a tick, for an alert, does not count one).
	for n := 0; len(p99) > 0; n++ {
		requireTrue(t, n <= 2*dashLatencyTicks, "routes still in the frame: %v", p99)
		p99 = frame()
	}
}
