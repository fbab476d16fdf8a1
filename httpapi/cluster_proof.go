package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// clusterProof is the key of the members' proofs: the admin token's hash,
// never sent.
func clusterProof(adminToken string) []byte {
	h := sha256.Sum256([]byte(adminToken))
	return h[:]
}

// clusterProofSkew bounds how far a proof's time may be from the
// receiver's clock: the nodes' clocks must agree within it.
const clusterProofSkew = 5 * time.Minute

// A member's request to another carries a proof that it comes from a
// member: the time, and an HMAC under the cluster's key (made from the
// admin token, which every member has) of that time, the method, the
// client address it passes on (Onsale-Forwarded-For) and the body's hash.
// One seen on the wire is no use for long (clusterProofSkew) nor for
// another request: it cannot pass on another client's address, nor carry
// another body (a node registration, say).

// sign puts the proof on req, a request to another member; call it once
// its method, Forwarded-For header and body are set.
func (c *cluster) sign(req *fasthttp.Request) {
	t := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set(hdrClusterProof, t+"."+c.proofMAC(t, req.Header.Method(), req.Header.Peek(hdrForwardedFor), req.Body()))
}

func (c *cluster) proofMAC(t string, method, forwardedFor, body []byte) string {
	bh := sha256.Sum256(body)
	m := hmac.New(sha256.New, c.proof)
	for _, part := range [][]byte{[]byte(t), method, forwardedFor, bh[:]} {
		m.Write(part)
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// memberKey keeps a request's verdict (fromMember is asked several times).
type memberKey struct{}

// fromMember reports whether a request carries a valid proof.
func (c *cluster) fromMember(ctx *fasthttp.RequestCtx) bool {
	if v, ok := ctx.UserValue(memberKey{}).(bool); ok {
		return v
	}
	ok := c.verifyProof(ctx)
	ctx.SetUserValue(memberKey{}, ok)
	return ok
}

func (c *cluster) verifyProof(ctx *fasthttp.RequestCtx) bool {
	p := ctx.Request.Header.Peek(hdrClusterProof)
	if len(p) == 0 {
		return false
	}
	ts, mac, ok := bytes.Cut(p, []byte("."))
	t, err := strconv.ParseInt(string(ts), 10, 64)
	if !ok || err != nil {
		return false
	}
	if d := time.Since(time.Unix(t, 0)); d > clusterProofSkew || d < -clusterProofSkew {
		if now := time.Now().Unix(); c.skewWarned.Swap(now) != now {
			c.log.Warn("cluster: a member's request is refused: its clock is too far from this node's; keep the nodes' clocks in step (NTP)",
				"from", ctx.RemoteIP().String(), "skew", d.Round(time.Second), "allowed", clusterProofSkew)
		}
		return false
	}
	want := c.proofMAC(string(ts), ctx.Method(), ctx.Request.Header.Peek(hdrForwardedFor), ctx.PostBody())
	return subtle.ConstantTimeCompare(mac, []byte(want)) == 1
}
