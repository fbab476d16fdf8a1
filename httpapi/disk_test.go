package httpapi

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"onsale/actors"
	"onsale/wal"
)

func withLogFS(fs wal.FS) serverOption { return func(o *Options) { o.LogFS = fs } }

// TestDiskFailure makes the log's disk full (every write fails with ENOSPC),
// then stuck (every fsync blocks), and frees it each time: writes answer
// 503 storage_unavailable and change nothing, reads and the line go on,
// /readyz says 503, and everything is back to normal once the disk is.
func TestDiskFailure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		fault func(fs *wal.FaultFS)
	}{
		{"full", func(fs *wal.FaultFS) { fs.FailWrites(-1, syscall.ENOSPC) }},
		{"stuck fsync", func(fs *wal.FaultFS) { fs.BlockSyncs() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := wal.NewFaultFS(nil)
			ts := startServer(t, withLogFS(fs))
			ts.createSale(t, newSaleSpec("s"))
			tok := ts.admit(t, "s", "b1")
			waiting := ts.join(t, "s", "b2")
			ts.mustHold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1})
			requireStatus(t, ts.do(t, "GET", "/readyz", nil), 200)

			// The first hold after the fault is the one the log was writing:
			// its zone applied it already, so it waits for the disk.
			tc.fault(fs)
			first := make(chan response, 1)
			go func() {
				r, err := ts.try("POST", "/v1/sales/s/holds", map[string]any{"zone": "ga", "quantity": 1}, bearerHdr(tok))
				if err != nil {
					t.Errorf("first hold: %v", err)
				}
				first <- r
			}()
			eventually(t, 10*time.Second, "/readyz to say the disk failed", func() (bool, string) {
				r := ts.do(t, "GET", "/readyz", nil)
				return r.Status == 503, r.String()
			})
			requireError(t, ts.do(t, "GET", "/readyz", nil), 503, actors.CodeStorageUnavailable)

			// Writes answer at once and change nothing.
			before := ts.counts(t, "s")
			for _, body := range []map[string]any{
				{"zone": "ga", "quantity": 2},
				{"zone": "vip", "seats": []string{"A-1"}},
			} {
				e := requireError(t, ts.hold(t, "s", tok, body), 503, actors.CodeStorageUnavailable, "hold %v", body)
				requireTrue(t, strings.Contains(e.Error.Message, "retry"), "storage error says what to do: %q", e.Error.Message)
			}
			requireEqual(t, ts.counts(t, "s"), before, "counts after refused holds")

			// Reads and the line go on.
			v := ts.sale(t, "s")
			requireEqual(t, v.Sale.ID, "s")
			k := ts.ticket(t, "s", waiting.QueueID)
			requireTrue(t, k.QueueID == waiting.QueueID, "queue poll %+v", k)
			requireStatus(t, ts.do(t, "GET", "/healthz", nil), 200)
			m := ts.do(t, "GET", "/metrics", nil)
			requireStatus(t, m, 200)
			requireTrue(t, strings.Contains(string(m.Body), "\nonsale_storage_unavailable 1\n"), "the storage gauge is 1")
			requireTrue(t, ts.eng.Err() == nil, "the engine stopped: %v", ts.eng.Err())

			// The disk recovers: the waiting hold is made, writes resume.
			fs.Heal()
			select {
			case r := <-first:
				requireStatus(t, r, 201, "the hold written once the disk recovered")
			case <-time.After(10 * time.Second):
				t.Fatal("the first hold never answered")
			}
			eventually(t, 10*time.Second, "/readyz to recover", func() (bool, string) {
				r := ts.do(t, "GET", "/readyz", nil)
				return r.Status == 200, r.String()
			})
			ts.mustHold(t, "s", tok, map[string]any{"zone": "vip", "seats": []string{"A-1"}})
			m = ts.do(t, "GET", "/metrics", nil)
			requireTrue(t, strings.Contains(string(m.Body), "\nonsale_storage_unavailable 0\n"), "the storage gauge is 0")
			after := ts.counts(t, "s")
			requireEqual(t, after["ga"].Held, before["ga"].Held, "general admission seats held")
			requireEqual(t, after["vip"].Held, before["vip"].Held+1, "VIP seats held")
			requireTrue(t, ts.eng.Err() == nil, "the engine stopped: %v", ts.eng.Err())
		})
	}
}

// TestFsyncErrorStops: an fsync that fails is not retried; the engine stops
// with an error that says so, the write answers 503 and /readyz says the
// engine stopped. A restart recovers from the disk (the crash tests).
func TestFsyncErrorStops(t *testing.T) {
	t.Parallel()
	fs := wal.NewFaultFS(nil)
	fatal := make(chan error, 1)
	ts := startServer(t, withLogFS(fs), func(o *Options) { o.OnFatal = func(err error) { fatal <- err } })
	ts.createSale(t, newSaleSpec("s"))
	tok := ts.admit(t, "s", "b1")
	fs.FailSyncs(1, syscall.EIO)
	requireError(t, ts.hold(t, "s", tok, map[string]any{"zone": "ga", "quantity": 1}), 503, actors.CodeUnavailable)
	select {
	case err := <-fatal:
		requireTrue(t, strings.Contains(err.Error(), "not retried"), "fatal error %q says the fsync is not retried", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no fatal error after a failed fsync")
	}
	requireError(t, ts.do(t, "GET", "/readyz", nil), 503, actors.CodeUnavailable)
	requireStatus(t, ts.do(t, "GET", "/v1/sales/s", nil), 200, "reads after the engine stopped")
}
