package line

import (
	"fmt"
	"testing"
)

// TestRoomGone checks the gone marks against a plain bitmap across many
// blocks, and that a published view never changes however the marks change
// after it (copy on write).
func TestRoomGone(t *testing.T) {
	rng := testRand(t)
	const nums = 5*roomGoneBlockNums + 17
	var g roomGone
	want := make([]bool, nums+1)
	type published struct {
		v    roomGoneView
		want []bool
	}
	var views []published
	check := func(v roomGoneView, want []bool, ctx string) {
		t.Helper()
		for range 200 {
			a := 1 + uint64(rng.IntN(nums))
			b := a + uint64(rng.IntN(int(nums-a)+1))
			var n int64
			for x := a; x < b; x++ {
				if want[x] {
					n++
				}
			}
			requireEqual(t, v.count(a, b), n, "%s: count [%d, %d)", ctx, a, b)
			requireEqual(t, v.has(a), want[a], "%s: has %d", ctx, a)
		}
	}
	for step := range 3000 {
		// Mostly from the front, as admissions go, some anywhere, as
		// departures go.
		num := 1 + uint64(rng.IntN(nums))
		if rng.IntN(2) == 0 {
			num = 1 + uint64(rng.IntN(min(nums, 2*step+1)))
		}
		if !want[num] {
			g.set(num)
			want[num] = true
		}
		if rng.IntN(20) == 0 {
			views = append(views, published{g.publish(), append([]bool(nil), want...)})
		}
	}
	check(g.publish(), want, "latest")
	for i, p := range views {
		check(p.v, p.want, fmt.Sprintf("view %d of %d", i, len(views)))
	}
}

// TestRevokedSet: the chain holds every id added, an older set does not
// see what was added after it, and the chain stays short.
func TestRevokedSet(t *testing.T) {
	var s *revokedSet
	var olds []*revokedSet
	for i := range 10_000 {
		olds = append(olds, s)
		s = s.with(fmt.Sprintf("q_%d", i))
	}
	requireEqual(t, s.size(), 10_000)
	levels := 0
	for c := s; c != nil; c = c.next {
		levels++
	}
	requireTrue(t, levels <= 14, "%d maps for 10,000 ids", levels)
	for i, old := range olds {
		if i%97 != 0 {
			continue
		}
		requireEqual(t, old.size(), i)
		requireTrue(t, s.has(fmt.Sprintf("q_%d", i)))
		requireFalse(t, old.has(fmt.Sprintf("q_%d", i)), "set %d has an id added after it", i)
	}
	requireFalse(t, s.has("q_x"))
}
