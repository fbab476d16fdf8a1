package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestSaleMode runs a small on-sale end to end against an in-process
// server: it must sell out and find the end state consistent.
func TestSaleMode(t *testing.T) {
	var out bytes.Buffer
	err := Run(Options{
		Out: &out, Mode: "sale", Buyers: 120, Seats: 40, Conns: 16,
		Abandon: 0.1, Decline: 0.2, ActiveLimit: 30, HoldTTL: 2, AccessTTL: 5,
		PollCap: 200 * time.Millisecond, Timeout: 90 * time.Second,
	})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"time to sell out", "sold twice 0 → OK", "fairness:"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q", want)
		}
	}
}

// TestHoldsMode measures both phases briefly and reports a share of the
// ceiling.
func TestHoldsMode(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the machine for two seconds")
	}
	var out bytes.Buffer
	err := Run(Options{Out: &out, Mode: "holds", Buyers: 1, Seats: 1, Conns: 8, Duration: 500 * time.Millisecond})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no-op fasthttp POST ceiling", "durable holds over HTTP", "0 failures", "share of the no-op ceiling"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q", want)
		}
	}
}

func TestFairness(t *testing.T) {
	inOrder := []buyerResult{{arrival: 1, admitted: 1}, {arrival: 2, admitted: 2}, {arrival: 3, admitted: 3}, {arrival: 4}}
	if f := fairness(inOrder); f != 1 {
		t.Fatalf("fairness of first come, first served = %v, want 1", f)
	}
	reversed := []buyerResult{{arrival: 1, admitted: 3}, {arrival: 2, admitted: 2}, {arrival: 3, admitted: 1}}
	if f := fairness(reversed); f != -1 {
		t.Fatalf("fairness of last come, first served = %v, want -1", f)
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	if err := Run(Options{Out: &bytes.Buffer{}, Mode: "sale", Buyers: 0, Seats: 1, Conns: 1}); err == nil {
		t.Fatal("0 buyers accepted")
	}
	if err := Run(Options{Out: &bytes.Buffer{}, Mode: "nonsense", Buyers: 1, Seats: 1, Conns: 1}); err == nil || !strings.Contains(err.Error(), "unknown --mode") {
		t.Fatalf("unknown mode: %v", err)
	}
}

// TestPollsMode measures both phases briefly and reports the share of the
// no-op ceiling and the latency of joins and holds beside the polls.
func TestPollsMode(t *testing.T) {
	if testing.Short() {
		t.Skip("loads the machine for a few seconds")
	}
	var out bytes.Buffer
	err := Run(Options{Out: &out, Mode: "polls", Buyers: 1, Seats: 1, Conns: 16, Duration: 500 * time.Millisecond})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no-op fasthttp GET ceiling", "queue polls over HTTP", " 0 failures", "share of the no-op GET ceiling", "join+hold pairs"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q", want)
		}
	}
}

// TestStreamsMode holds a few hundred streams open, from many loopback
// addresses, and checks each got its first event.
func TestStreamsMode(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,500 connections")
	}
	var out bytes.Buffer
	err := Run(Options{Out: &out, Mode: "streams", Buyers: 1, Seats: 1, Conns: 16, Streams: 1500, Duration: 200 * time.Millisecond})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1500 streams open", "each with its first event", "with the streams open: join"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q", want)
		}
	}
}

// TestSaleModeStreams: buyers wait on the event stream; with a small
// active_limit the sale still sells out, each admission heard as it comes.
func TestSaleModeStreams(t *testing.T) {
	var out bytes.Buffer
	err := Run(Options{
		Out: &out, Mode: "sale", Buyers: 200, Seats: 150, Conns: 16, WaitStream: true,
		Abandon: 0, Decline: 0.1, ActiveLimit: 5, AdmitPerS: 100, HoldTTL: 10, AccessTTL: 10,
		Timeout: 60 * time.Second,
	})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"time to sell out", "sold twice 0 → OK", "stream_wait"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q", want)
		}
	}
}
