// Package httpapi serves onsale's HTTP contract (API.md) over fasthttp: the
// admin and buyer endpoints, the waiting room's polling and Server-Sent
// Events, metrics, the operators' dashboard and the buyer page.
//
// Rules it keeps:
//   - Nothing from a fasthttp.RequestCtx outlives its handler: request data is
//     copied into our own values before it reaches the engine, and streams
//     capture only the channels they need.
//   - Every server limit is set (body, headers, timeouts, connections), a
//     panic in a handler is recovered into a JSON 500, and every error,
//     fasthttp's own included, is {"error": {"code", "message"}}.
//   - Validation order for a write: syntax and ranges (400), then auth
//     (401/403), then limits (422), then availability (409).
//   - Access tokens are HMAC-SHA256 over (version, expiry, sale, buyer, token
//     id) with the key kept in the data directory; verifying one needs no
//     actor.
//   - Payments go through a bulkhead that caps calls in flight to the
//     gateway; a hold becomes an order only after the gateway says paid.
//   - Alerts (alert.go) are evaluated by one goroutine from figures the hot
//     path only adds to atomically; the webhook has its own goroutine and a
//     bounded queue, so a dead receiver never slows a request.
//   - Request latency is kept per route in a fixed array of histograms, one
//     per name in routeNames (route_latency.go), so a request adds to one
//     counter and no client can add a route; the dashboard's windows over
//     them are moved on once per tick by whichever stream makes the frame.
//   - On a cluster (cluster.go) the engine that decides runs on the Raft
//     leader alone; a follower answers reads from its own copy and forwards
//     the rest. An answer that began on the leader and rests on no record
//     of its own leaves only once the leadership is confirmed (lease or a
//     committed barrier), so a deposed leader cannot answer from stale
//     memory.
package httpapi
