package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		if err := os.RemoveAll(benchDir); err != nil {
			fmt.Fprintf(os.Stderr, "remove %s: %v\n", benchDir, err)
		}
	}
	os.Exit(code)
}

func requireNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func requireErrIs(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want one wrapping %v", err, target)
	}
}

func requireEqual[T comparable](t testing.TB, got, want T, what string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func requireTrue(t testing.TB, cond bool, format string, args ...any) {
	t.Helper()
	if !cond {
		t.Fatalf(format, args...)
	}
}

func requireContains(t testing.TB, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

func requireEvent(t testing.TB, got, want *Event, what string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// testRand returns a generator seeded from SEED, or from the clock; the seed
// is logged so that a failure can be replayed with SEED=<n>.
func testRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		requireNoErr(t, err)
		seed = v
	}
	t.Logf("SEED=%d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// randEvent makes an event of a random type with random fields, some empty.
func randEvent(r *rand.Rand) Event {
	str := func(max int) string {
		if r.IntN(4) == 0 {
			return ""
		}
		b := make([]byte, r.IntN(max+1))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return string(b)
	}
	ev := Event{
		Type:     Type(1 + r.IntN(int(typeMax))),
		Sale:     str(40),
		Zone:     str(10),
		Hold:     str(30),
		Order:    str(30),
		Buyer:    str(64),
		At:       r.Int64() - r.Int64(),
		Expires:  r.Int64N(1 << 45),
		Amount:   r.Int64N(1<<40) - 1<<39,
		IdemKey:  str(128),
		IdemHash: r.Uint64(),
		Num:      r.Uint64() >> r.UintN(64),
	}
	if n := r.IntN(8); n > 0 {
		ev.Seats = make([]uint32, n)
		for i := range ev.Seats {
			ev.Seats[i] = r.Uint32() >> r.UintN(32)
		}
	}
	if r.IntN(3) == 0 {
		ev.Blob = make([]byte, 1+r.IntN(300))
		for i := range ev.Blob {
			ev.Blob[i] = byte(r.UintN(256))
		}
	}
	return ev
}

// holdEvent is a typical record: a hold of two seats, about 110 bytes.
func holdEvent(i int) Event {
	return Event{
		Type:     TypeHoldPlaced,
		Sale:     "sale-20260101-arena",
		Zone:     "floor-a",
		Hold:     fmt.Sprintf("h%015d", i),
		Buyer:    fmt.Sprintf("buyer-%09d", i%100000),
		Seats:    []uint32{uint32(i % 50000), uint32(i%50000 + 1)},
		At:       1767225600000 + int64(i),
		Expires:  1767225600000 + int64(i) + 600000,
		Amount:   24900,
		IdemKey:  fmt.Sprintf("idem-%016x", i),
		IdemHash: uint64(i) * 0x9e3779b97f4a7c15,
		Num:      uint64(i),
	}
}

// openLog opens a log; the test closes it.
func openLog(t testing.TB, opts Options) *Log {
	t.Helper()
	l, err := Open(opts)
	requireNoErr(t, err)
	return l
}

// replayAll reads every record of the log in dir with a fresh Log.
func replayAll(t testing.TB, opts Options) (first uint64, evs []Event) {
	t.Helper()
	l := openLog(t, opts)
	first = l.FirstSeq()
	next := first
	err := l.Replay(0, func(seq uint64, ev *Event) error {
		if seq != next {
			return fmt.Errorf("got record %d, want %d", seq, next)
		}
		next++
		evs = append(evs, *ev)
		return nil
	})
	requireNoErr(t, err)
	requireEqual(t, next-1, l.LastSeq(), "last replayed sequence")
	requireNoErr(t, l.Close())
	return first, evs
}

// appendWait appends ev and waits until it is durable.
func appendWait(t testing.TB, l *Log, ev *Event) uint64 {
	t.Helper()
	type res struct {
		seq uint64
		err error
	}
	ch := make(chan res, 1)
	requireNoErr(t, l.Append(ev, func(seq uint64, err error) { ch <- res{seq, err} }))
	select {
	case r := <-ch:
		requireNoErr(t, r.err)
		return r.seq
	case <-time.After(10 * time.Second):
		t.Fatal("append not acknowledged within 10s")
	}
	return 0
}
