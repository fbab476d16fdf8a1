package raftlog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestSlogWriterLevelsAndRepeats: the library's lines reach the server's
// log at their own level, without hclog's time and name, and a line that
// repeats is written once with the count of those left out.
func TestSlogWriterLevelsAndRepeats(t *testing.T) {
	var out bytes.Buffer
	w := newSlogWriter(slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hl := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: w, DisableTime: true})
	n2 := raft.Server{Suffrage: raft.Voter, ID: "n2", Address: "127.0.0.1:7002"}
	n3 := raft.Server{Suffrage: raft.Voter, ID: "n3", Address: "127.0.0.1:7003"}
	for range 5 {
		hl.Error("failed to appendEntries to", "peer", n2, "error", "dial tcp: connection refused")
	}
	hl.Warn("heartbeat timeout reached, starting election", "last-leader-id", "n1")
	// The same message about another peer is no repeat.
	hl.Error("failed to appendEntries to", "peer", n3, "error", "dial tcp: connection refused")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("wrote %d lines, want 3 (the repeats left out):\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[2], "n3 127.0.0.1:7003") {
		t.Fatalf("the other peer's line: %s", lines[2])
	}
	if !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], `msg="failed to appendEntries to"`) ||
		!strings.Contains(lines[0], "n2 127.0.0.1:7002") || strings.Contains(lines[0], "[ERROR]") {
		t.Fatalf("error line: %s", lines[0])
	}
	if !strings.Contains(lines[1], "level=WARN") || !strings.Contains(lines[1], `msg="heartbeat timeout reached, starting election"`) {
		t.Fatalf("warning line: %s", lines[1])
	}
	// Once the quiet time has passed, the next says how many were left out.
	const key = `failed to appendEntries to peer="{Voter n2 127.0.0.1:7002}"`
	r, ok := w.seen[key]
	if !ok {
		t.Fatalf("no repeat kept under %q: %v", key, w.seen)
	}
	r.at = r.at.Add(-slogRepeatEvery)
	out.Reset()
	hl.Error("failed to appendEntries to", "peer", n2, "error", "dial tcp: connection refused")
	if !strings.Contains(out.String(), "repeated=4") {
		t.Fatalf("the line after the quiet time: %s", out.String())
	}
}
