package actors

import (
	"fmt"
	"testing"
)

// TestIdemSweep: answers older than the retention are forgotten, younger
// ones and calls still in flight are kept, and the sweep stops at the first
// young key.
func TestIdemSweep(t *testing.T) {
	tab := newIdemTable()
	key := func(i int) idemKey { return idemKey{buyer: "b", scope: scopeHold, key: fmt.Sprint(i)} }
	for i := range 10 {
		c, fresh, err := tab.begin(key(i), 1, int64(i*1000))
		requireTrue(t, fresh && err == nil, "key %d is new", i)
		if i != 5 {
			c.finish(Result{})
		}
	}
	tab.sweep(3500) // keys 0..3 are older
	for i := range 10 {
		_, ok := tab.m[key(i)]
		requireEqual(t, ok, i > 3, "key %d after the first sweep", i)
	}
	tab.sweep(100_000) // key 5 is still in flight: the sweep waits for it
	for i := range 10 {
		_, ok := tab.m[key(i)]
		requireEqual(t, ok, i >= 5, "key %d after the second sweep", i)
	}
	// A forgotten key leaves a hole in the order; the sweep steps over it.
	c, _, _ := tab.begin(key(20), 1, 200_000)
	tab.forget(c)
	tab.m[key(5)].finish(Result{})
	tab.sweep(300_000)
	requireEqual(t, len(tab.m), 0, "everything swept")
	// A retry after the sweep runs again.
	_, fresh, _ := tab.begin(key(1), 2, 300_001)
	requireTrue(t, fresh, "a swept key is new again")
}
