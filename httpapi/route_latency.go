package httpapi

import "math"

// routeNames are every name the router gives a request (Server.route and
// the route functions it calls): the metrics' route label and the
// dashboard's latency series. A fixed list, so that per-route figures are a
// fixed array and never grow with what clients send; a name not in it is
// counted under routeUnknown (TestRouteNamesCoverRouter keeps the two in
// step).
var routeNames = [...]string{
	routeUnknown, "invalid", "recovering", "rate_limited",
	"/", "/sales/{sale}", "/healthz", "/readyz", "/metrics", "/openapi.yaml",
	"/dashboard", "/dashboard/csrf", "/dashboard/login", "/dashboard/logout", "/dashboard/events",
	"/dashboard/sales/{sale}/pause", "/dashboard/sales/{sale}/resume",
	"/v1/sales", "/v1/sales/{sale}", "/v1/sales/{sale}/pause", "/v1/sales/{sale}/resume",
	"/v1/sales/{sale}/availability", holdRoute, "/v1/sales/{sale}/draw",
	"/v1/sales/{sale}/queue", "/v1/sales/{sale}/queue/{queue}", "/v1/sales/{sale}/queue/{queue}/events",
	"/v1/holds/{hold}", "/v1/holds/{hold}/checkout",
	"/v1/orders/{order}", "/v1/orders/{order}/cancel",
	"forwarded", "/v1/cluster", "/v1/cluster/self", "/v1/cluster/nodes",
}

// routeUnknown is the one name of every path that names no resource (404),
// whatever the path was.
const routeUnknown = "unknown"

// routeIndex is routeNames' inverse, read on a series' first request only.
var routeIndex = func() map[string]int {
	m := make(map[string]int, len(routeNames))
	for i, r := range routeNames {
		if _, dup := m[r]; dup {
			panic("routeNames lists " + r + " twice")
		}
		m[r] = i
	}
	return m
}()

// routeName is route if the router names it, else routeUnknown.
func routeName(route string) string {
	if _, ok := routeIndex[route]; ok {
		return route
	}
	return routeUnknown
}

// routeLatency is a liveHist per route, indexed like routeNames: what the
// dashboard's per-route p99 and the hold alert take quantiles of.
type routeLatency [len(routeNames)]liveHist

// of is route's histogram (routeUnknown's for a name not in routeNames).
// Not for the hot path: requestSeries keeps the pointer.
func (l *routeLatency) of(route string) *liveHist {
	i, ok := routeIndex[route]
	if !ok {
		i = routeIndex[routeUnknown]
	}
	return &l[i]
}

// dashLatencyTicks is how many dashboard ticks a route's p99 is taken over:
// the alerts' window (alertWindowTicks), so that the chart shows the value
// the hold_p99 rule judges, and for the same reasons: enough samples for a
// p99 to mean something at a few requests a second, short enough to show a
// slowdown within seconds of its start and end.
const dashLatencyTicks = alertWindowTicks

// routeWindows are the dashboard's windows over every route's histogram.
// Owned by the dashboard's frame maker (under dashFrames.mu).
type routeWindows [len(routeNames)]*histWindow

func newRouteWindows(l *routeLatency) *routeWindows {
	var w routeWindows
	for i := range w {
		w[i] = newHistWindow(&l[i], dashLatencyTicks)
	}
	return &w
}

// advance moves every window on by ticks ticks (see histWindow.advance).
func (w *routeWindows) advance(ticks int) {
	for _, x := range w {
		x.advance(ticks)
	}
}

// p99Ms is the p99 of each route that had requests in the window, in
// milliseconds: the upper bound of its power-of-two bucket, so within a
// factor of two above the true value, never below it.
func (w *routeWindows) p99Ms() map[string]float64 {
	out := make(map[string]float64)
	for i, x := range w {
		if v, n := x.quantile(0.99, dashLatencyTicks); n > 0 {
			// Bounds are multiples of liveBase (50 µs): whole microseconds.
			out[routeNames[i]] = math.Round(v*1e6) / 1e3
		}
	}
	return out
}
