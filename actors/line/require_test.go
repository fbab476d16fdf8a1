package line

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// Small assertion helpers for this package's tests. Each stops the test on
// failure and reports the caller's line.

func requireEqual[T any](t testing.TB, got, want T, context ...any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%sgot  %#v\nwant %#v", contextPrefix(context), got, want)
	}
}

func requireNotEqual[T any](t testing.TB, got, notWant T, context ...any) {
	t.Helper()
	if reflect.DeepEqual(got, notWant) {
		t.Fatalf("%sgot %#v, want anything else", contextPrefix(context), got)
	}
}

func requireNoError(t testing.TB, err error, context ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", contextPrefix(context), err)
	}
}

func requireError(t testing.TB, err error, context ...any) {
	t.Helper()
	if err == nil {
		t.Fatalf("%sexpected an error, got nil", contextPrefix(context))
	}
}

func requireErrorIs(t testing.TB, err, target error, context ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%sgot error %v, want one wrapping %v", contextPrefix(context), err, target)
	}
}

func requireTrue(t testing.TB, ok bool, context ...any) {
	t.Helper()
	if !ok {
		t.Fatalf("%scondition is false", contextPrefix(context))
	}
}

func requireFalse(t testing.TB, ok bool, context ...any) {
	t.Helper()
	if ok {
		t.Fatalf("%scondition is true", contextPrefix(context))
	}
}

// contextPrefix formats optional context: a format string and its
// arguments, or plain values.
func contextPrefix(context []any) string {
	if len(context) == 0 {
		return ""
	}
	if f, ok := context[0].(string); ok {
		return fmt.Sprintf(f, context[1:]...) + ": "
	}
	return fmt.Sprint(context...) + ": "
}

// testSeed returns the seed of a randomized test: $SEED when set, else the
// clock. It logs it so that a failure can be replayed with SEED=<n>.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SEED=%d)", seed, seed)
	return seed
}

// testRand is a generator seeded by testSeed.
func testRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := testSeed(t)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}
