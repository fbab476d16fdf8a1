package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"onsale/actors"
)

// register tells the leader this node's HTTP address.
func (c *cluster) register() bool {
	if c.node.HTTPAddr(c.node.ID()) == c.self {
		return true
	}
	addr := c.node.HTTPAddr(c.node.Leader())
	if addr == "" {
		return false
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://" + addr + "/v1/cluster/nodes")
	req.Header.SetContentType("application/json")
	b, _ := json.Marshal(map[string]string{"id": c.node.ID(), "http_addr": c.self})
	req.SetBody(b)
	c.sign(req)
	if err := c.client(addr).DoTimeout(req, resp, peerAskTimeout*4); err != nil || resp.StatusCode() != 204 {
		return false
	}
	return true
}

func (c *cluster) client(addr string) *fasthttp.HostClient {
	c.mu.Lock()
	defer c.mu.Unlock()
	hc := c.clients[addr]
	if hc == nil {
		hc = &fasthttp.HostClient{Addr: addr, MaxConns: 512, ReadTimeout: forwardTimeout, WriteTimeout: 5 * time.Second,
			MaxIdleConnDuration: 30 * time.Second, DisablePathNormalizing: true}
		c.clients[addr] = hc
	}
	return hc
}

// forward passes a request for the engine to the leader and its answer
// back, unchanged. Event streams are not forwarded: a follower answers 503
// and the buyer's page polls instead.
func (c *cluster) forward(ctx *fasthttp.RequestCtx, parts []string) {
	if len(ctx.Request.Header.Peek(hdrForwardedBy)) > 0 {
		// Forwarded once already: the sender thought this node leads.
		retryAfter(ctx, 1)
		fail(ctx, codeRecovering, "the cluster is electing a leader; retry in a moment")
		return
	}
	if parts[len(parts)-1] == "events" {
		retryAfter(ctx, 1)
		fail(ctx, codeRecovering, "this node does not serve event streams while it follows the cluster's leader; poll the same address without /events")
		return
	}
	leader := c.node.Leader()
	addr := c.node.HTTPAddr(leader)
	if leader == "" || addr == "" {
		retryAfter(ctx, 1)
		fail(ctx, codeRecovering, "the cluster is electing a leader; retry in a moment")
		return
	}
	// The exchange runs on its own copies, so that a leader that stops
	// answering (paused, cut off) is given up as soon as the cluster
	// elects another, not after forwardTimeout.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	ctx.Request.CopyTo(req)
	req.Header.Set(hdrForwardedBy, c.node.ID())
	req.Header.Set(hdrForwardedFor, ctx.RemoteIP().String())
	c.sign(req)
	req.SetHost(addr)
	done := make(chan error, 1)
	go func() {
		err := c.client(addr).DoTimeout(req, resp, forwardTimeout)
		done <- err
	}()
	tick := time.NewTicker(forwardWatchEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				resp.CopyTo(&ctx.Response)
				// Read your writes: the buyer's next read on this node
				// sees what the leader answered.
				if idx, perr := strconv.ParseUint(string(resp.Header.Peek(hdrApplied)), 10, 64); perr == nil {
					c.waitApplied(idx)
				}
			}
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
			if err != nil {
				c.log.Warn("cluster: forward to the leader failed", "leader", leader, "addr", addr, "err", err)
				retryAfter(ctx, 1)
				fail(ctx, actors.CodeUnavailable, fmt.Sprintf("the cluster's leader (%s) %s; %s", leader, forwardFailure(err), maybeMade(ctx)))
			}
			return
		case <-tick.C:
			if c.node.Leader() == leader {
				continue
			}
			// The exchange ends on its own; its copies are let go then.
			go func() {
				<-done
				fasthttp.ReleaseRequest(req)
				fasthttp.ReleaseResponse(resp)
			}()
			retryAfter(ctx, 1)
			fail(ctx, actors.CodeUnavailable, fmt.Sprintf("the cluster's leader (%s) was replaced while it had this request; %s", leader, maybeMade(ctx)))
			return
		}
	}
}

// forwardFailure says, for a buyer, why a forwarded request got no answer;
// the client library's own text (advice to server authors) goes to the log.
func forwardFailure(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return fmt.Sprintf("did not answer within %s", forwardTimeout)
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return "closed the connection before it answered (it may have stopped)"
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &ne):
		return "could not be reached (it may have stopped)"
	}
	return "did not answer"
}

// maybeMade is the advice for a write whose outcome is unknown: the same
// Idempotency-Key gets the first answer; without one, a retry may do it
// twice (a join keeps the buyer's place; a hold or a checkout may not).
func maybeMade(ctx *fasthttp.RequestCtx) string {
	if ctx.IsGet() || ctx.IsHead() {
		return "retry in a moment"
	}
	if len(ctx.Request.Header.Peek("Idempotency-Key")) > 0 {
		return "the change may or may not have been made: retry with the same Idempotency-Key, which gets the first answer"
	}
	return "the change may or may not have been made, and without an Idempotency-Key a retry may make it twice: check before you retry, and send an Idempotency-Key with writes"
}

// waitApplied waits, at most appliedWaitMax, until this node has applied
// the log up to idx.
func (c *cluster) waitApplied(idx uint64) {
	deadline := time.Now().Add(appliedWaitMax)
	for c.node.AppliedIndex() < idx && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
