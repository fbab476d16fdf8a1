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

// TestRoomOnChange: every event tells the hook of each ticket it changed,
// with the ticket as the event left it.
func TestRoomOnChange(t *testing.T) {
	r := New("s", Config{OpensAt: 1000, ActiveLimit: 10, AdmitPerS: 100, AccessTTL: 60_000})
	seen := map[string][]TicketState{}
	nums := map[string]uint64{}
	r.OnChange(func(tk *Ticket) {
		seen[tk.QueueID] = append(seen[tk.QueueID], tk.State)
		nums[tk.QueueID] = tk.Num
	})
	st := Stock{Free: 100}
	for i, b := range []string{"a", "b", "c"} {
		if _, _, err := r.Join(b, "q"+b, int64(500+i), st); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"qa", "qb", "qc"} {
		if got := seen[id]; len(got) != 1 || got[0] != TicketWaiting || nums[id] != 0 {
			t.Fatalf("%s after joining the pre-queue: %v, number %d", id, got, nums[id])
		}
	}
	if _, err := r.Tick(1000, st); err != nil { // the draw, then admissions
		t.Fatal(err)
	}
	for _, id := range []string{"qa", "qb", "qc"} {
		got := seen[id]
		if len(got) < 2 || nums[id] == 0 {
			t.Fatalf("%s after the draw: %v, number %d", id, got, nums[id])
		}
	}
	if _, err := r.Tick(1100, st); err != nil { // credit for admissions
		t.Fatal(err)
	}
	admitted := 0
	for _, id := range []string{"qa", "qb", "qc"} {
		if s := seen[id]; s[len(s)-1] == TicketAdmitted {
			admitted++
		}
	}
	if admitted == 0 {
		t.Fatal("the tick admitted nobody the hook heard of")
	}
	if _, err := r.Leave("qc", 1200); err != nil {
		t.Fatal(err)
	}
	if s := seen["qc"]; s[len(s)-1] != TicketExpired {
		t.Fatalf("qc after leaving: %v", s)
	}
}

// TestRoomHeldLeavesStockCap: in automatic mode a buyer who holds stops
// counting among those looking for seats, so the next one is let in while
// seats are free; one who never holds counts until roomAutoFreshMs.
func TestRoomHeldLeavesStockCap(t *testing.T) {
	r := New("s", Config{OpensAt: 0, ActiveLimit: 100, AccessTTL: 900_000})
	st := Stock{Free: 4, SeatsPerHold: 2} // two buyers' worth
	now := int64(1000)
	for _, b := range []string{"a", "b", "c", "d"} {
		if _, _, err := r.Join(b, "q"+b, now, st); err != nil {
			t.Fatal(err)
		}
	}
	tick := func() {
		for range 20 {
			now += 100
			if _, err := r.Tick(now, st); err != nil {
				t.Fatal(err)
			}
		}
	}
	tick()
	if got := r.AdmittedTotal(); got != 2 {
		t.Fatalf("admitted %d for 4 free seats at 2 a buyer, want 2", got)
	}
	r.Held("qa", now)
	r.Held("qa", now) // twice is once
	r.Held("qx", now) // unknown: ignored
	st.Free = 2       // a holds two
	tick()
	if got := r.AdmittedTotal(); got != 2 {
		t.Fatalf("admitted %d: b still looks for the 2 free seats", got)
	}
	st.Free = 4 // a's hold expired: the seats are back
	tick()
	if got := r.AdmittedTotal(); got != 3 {
		t.Fatalf("admitted %d after a's seats came back, want 3", got)
	}
	now += roomAutoFreshMs
	tick()
	if got := r.AdmittedTotal(); got != 4 {
		t.Fatalf("admitted %d once b and c went stale, want 4", got)
	}
}
