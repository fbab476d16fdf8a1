package line

import (
	"fmt"
	"testing"
)

// TestRoomAutomaticDrainsAtShopPace: a backlog of 100,000 joins before the
// opening, so that all of it waits in an automatic line once drawn; a simulated shop turns at most shopPerS admitted buyers a
// second into holds (first admitted, first served) and they pay at once.
// The hold rate the server measures (an average, as the room actor keeps
// it) drives the automatic rate, so the line must drain at the shop's pace:
// the shop never idles for want of admitted buyers. How far admissions run
// ahead of the shop (the rate is twice the measured hold rate) is logged.
func TestRoomAutomaticDrainsAtShopPace(t *testing.T) {
	const backlog = 100_000
	for _, shopPerS := range []int{1000, 4000} {
		t.Run(fmt.Sprintf("shop %d per s", shopPerS), func(t *testing.T) {
			r := New("s", Config{OpensAt: 2000, ActiveLimit: ActiveLimitMax, AccessTTL: 900_000})
			var admitted []string // admitted, not yet served by the shop
			r.OnAdmitted(func(tk *Ticket) { admitted = append(admitted, tk.QueueID) })
			st := Stock{Free: 10_000_000, SeatsPerHold: 2}
			now := int64(1000)
			for i := range backlog {
				if _, _, err := r.Join(fmt.Sprintf("b%d", i), fmt.Sprintf("q%d", i), now, st); err != nil {
					t.Fatal(err)
				}
			}
			const tickMs = 100
			var holds, served, queuedMax int
			start := int64(2000) // the opening
			for r.Waiting() > 0 || len(admitted) > 0 {
				now += tickMs
				if now-start > int64(10*backlog/shopPerS*1000) {
					t.Fatalf("line not drained after %d s: %d waiting", (now-start)/1000, r.Waiting())
				}
				// The shop: at most shopPerS/10 buyers this tick hold and pay.
				n := min(len(admitted), shopPerS*tickMs/1000)
				for _, q := range admitted[:n] {
					r.Held(q, now)
					if _, err := r.Complete(q, now); err != nil {
						t.Fatal(err)
					}
					st.Free -= 2
				}
				admitted = admitted[n:]
				served += n
				// The hold rate as the room actor measures it.
				inst := float64(n) * 1000 / tickMs
				st.HoldsPerS += 0.2 * (inst - st.HoldsPerS)
				holds += n
				if _, err := r.Tick(now, st); err != nil {
					t.Fatal(err)
				}
				queuedMax = max(queuedMax, len(admitted))
			}
			took := float64(now-start) / 1000
			pace := float64(backlog) / took
			t.Logf("shop %d/s: %d admitted and served in %.1f s (%.0f/s); at most %d admitted waiting for the shop",
				shopPerS, served, took, pace, queuedMax)
			if served != backlog {
				t.Fatalf("served %d of %d", served, backlog)
			}
			if pace < 0.9*float64(shopPerS) {
				t.Fatalf("drained at %.0f/s, slower than the shop's %d/s", pace, shopPerS)
			}
			// The shop idles only while the rate climbs from its floor.
			if idle := took - float64(backlog)/float64(shopPerS); idle > 1.5 {
				t.Fatalf("the shop idled %.1f s of %.1f", idle, took)
			}
		})
	}
}
