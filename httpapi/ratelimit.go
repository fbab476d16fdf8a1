package httpapi

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// limiter is a token bucket per key (a buyer or a client address). Buckets
// are kept in shards so that the crowd does not contend on one mutex.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	seed  maphash.Seed
	shard [limiterShards]limiterShard
}

const (
	limiterShards = 64
	// limiterKeysPerShard bounds memory: 64 × 65,536 keys of about 80 bytes
	// is at most ~340 MB in the worst case of 4 million distinct abusers; a
	// full shard first drops its idle buckets, and if none are idle refuses
	// new keys (fail closed rather than grow without bound).
	limiterKeysPerShard = 1 << 16
)

type limiterShard struct {
	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanos
}

func newLimiter(perSecond int) *limiter {
	return newBurstLimiter(float64(perSecond), 2*float64(perSecond))
}

// newBurstLimiter allows burst requests at once, then perSecond.
func newBurstLimiter(perSecond, burst float64) *limiter {
	l := &limiter{rate: perSecond, burst: burst, seed: maphash.MakeSeed()}
	for i := range l.shard {
		l.shard[i].m = make(map[string]*bucket)
	}
	return l
}

// allow takes a token for key; when there is none it reports how many whole
// seconds until there is.
func (l *limiter) allow(key string, now time.Time) (bool, int) {
	if l.rate <= 0 {
		return true, 0
	}
	sh := &l.shard[maphash.String(l.seed, key)%limiterShards]
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.m[key]
	if !ok {
		if len(sh.m) >= limiterKeysPerShard && !sh.evictIdle(t, l) {
			return false, 1
		}
		b = &bucket{tokens: l.burst, last: t}
		sh.m[key] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+float64(t-b.last)/1e9*l.rate)
	b.last = t
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := int(math.Ceil((1 - b.tokens) / l.rate))
	return false, max(wait, 1)
}

// evictIdle drops buckets that have refilled completely: forgetting them
// changes nothing.
func (sh *limiterShard) evictIdle(now int64, l *limiter) bool {
	full := int64(l.burst / l.rate * 1e9)
	n := 0
	for k, b := range sh.m {
		if now-b.last >= full {
			delete(sh.m, k)
			n++
		}
	}
	return n > 0
}
