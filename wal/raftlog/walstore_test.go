package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func openTestStore(t *testing.T, dir string, segSize int) *walStore {
	t.Helper()
	s, err := openWALStore(dir, segSize, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testEntry is the entry a test stores at index i: every field set, so that
// a field the encoding drops shows.
func testEntry(i uint64) *raft.Log {
	l := &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand,
		Data:       []byte(fmt.Sprintf("data %d", i)),
		AppendedAt: time.Unix(1_700_000_000, int64(i)),
	}
	if i%3 == 0 {
		l.Extensions = []byte(fmt.Sprintf("ext %d", i))
	}
	if i%7 == 0 {
		l.Type = raft.LogNoop
		l.Data = nil
	}
	return l
}

func testEntries(from, to uint64) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, testEntry(i))
	}
	return out
}

func checkRange(t *testing.T, s *walStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if f != first || l != last {
		t.Fatalf("store holds %d..%d, want %d..%d", f, l, first, last)
	}
	for i := first; i <= last && i > 0; i++ {
		var got raft.Log
		if err := s.GetLog(i, &got); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		want := testEntry(i)
		if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
			!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
			!got.AppendedAt.Equal(want.AppendedAt) {
			t.Fatalf("GetLog(%d) = %+v, want %+v", i, got, *want)
		}
	}
	for _, i := range []uint64{0, first - 1, last + 1} {
		if i >= first && i <= last {
			continue
		}
		var got raft.Log
		if err := s.GetLog(i, &got); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) outside %d..%d: %v, want ErrLogNotFound", i, first, last, err)
		}
	}
}

func TestWALStoreStoreAndGet(t *testing.T) {
	s := openTestStore(t, t.TempDir(), 0)
	checkRange(t, s, 0, 0)
	if err := s.StoreLog(testEntry(1)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 1)
	if err := s.StoreLogs(testEntries(2, 50)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 1, 50)
	// A zero AppendedAt (entries Raft did not append itself) stays zero.
	if err := s.StoreLog(&raft.Log{Index: 51, Term: 9, Type: raft.LogConfiguration, Data: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	var got raft.Log
	if err := s.GetLog(51, &got); err != nil || !got.AppendedAt.IsZero() || got.Type != raft.LogConfiguration || got.Term != 9 {
		t.Fatalf("entry 51: %+v %v", got, err)
	}
}

func TestWALStoreRefusesGaps(t *testing.T) {
	s := openTestStore(t, t.TempDir(), 0)
	if err := s.StoreLogs(testEntries(1, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLog(testEntry(7)); err == nil {
		t.Fatal("an entry after a gap was stored")
	}
	if err := s.StoreLog(testEntry(5)); err == nil {
		t.Fatal("an entry over the last one was stored")
	}
	if err := s.StoreLogs([]*raft.Log{testEntry(6), testEntry(8)}); err == nil {
		t.Fatal("a batch with a gap was stored")
	}
	checkRange(t, s, 1, 5)
	if !s.IsMonotonic() {
		t.Fatal("the store must tell Raft it holds no gaps")
	}
}

func TestWALStoreDeleteRange(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 256) // a few entries a segment: deletes cross files
	if err := s.StoreLogs(testEntries(1, 100)); err != nil {
		t.Fatal(err)
	}
	// Compaction: a prefix.
	if err := s.DeleteRange(1, 40); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 41, 100)
	// A conflict: a suffix, then the leader's entries at the same indexes.
	if err := s.DeleteRange(91, 100); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 41, 90)
	if err := s.StoreLogs(testEntries(91, 95)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 41, 95)
	// A range beginning before the first entry is a prefix too, as Raft
	// sends it when its first index is stale.
	if err := s.DeleteRange(10, 45); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 46, 95)
	if err := s.DeleteRange(60, 70); err == nil {
		t.Fatal("a range in the middle was deleted")
	}
	checkRange(t, s, 46, 95)
	// Everything, then Raft stores after a snapshot far ahead.
	if err := s.DeleteRange(46, 95); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 0, 0)
	if err := s.DeleteRange(1, 1000); err != nil {
		t.Fatalf("deleting from an empty store: %v", err)
	}
	if err := s.StoreLogs(testEntries(500, 520)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 500, 520)
	s.Close()
	s = openTestStore(t, dir, 256)
	checkRange(t, s, 500, 520)
	// Everything, then the next index: no reset needed.
	if err := s.DeleteRange(0, 520); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testEntries(521, 530)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 521, 530)
	// Everything, then an index behind: a store may restart lower too.
	if err := s.DeleteRange(521, 530); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(testEntries(300, 310)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 300, 310)
	s.Close()
	s = openTestStore(t, dir, 256)
	checkRange(t, s, 300, 310)
}

// TestWALStoreEmptyAfterDeleteSurvivesReopen: a store emptied by
// DeleteRange reads as empty after a restart, and takes any index then.
func TestWALStoreEmptyAfterDeleteSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 0)
	if err := s.StoreLogs(testEntries(1, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTestStore(t, dir, 0)
	checkRange(t, s, 0, 0)
	if err := s.StoreLogs(testEntries(77, 80)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 77, 80)
}

func TestWALStoreReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 512)
	for i := uint64(1); i <= 200; i += 20 {
		if err := s.StoreLogs(testEntries(i, i+19)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(1, 33); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.StoreLog(testEntry(201)); err == nil {
		t.Fatal("a closed store stored an entry")
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "0*"))
	if len(segs) < 3 {
		t.Fatalf("%d segment files: the test should span several", len(segs))
	}
	s = openTestStore(t, dir, 512)
	checkRange(t, s, 34, 200)
	if err := s.StoreLogs(testEntries(201, 210)); err != nil {
		t.Fatal(err)
	}
	checkRange(t, s, 34, 210)
}

// TestWALStorePredictsNewSegments: StoreLogs syncs the directory only when
// tidwall opened a new segment, which it predicts from the bytes written;
// the prediction must match the files.
func TestWALStorePredictsNewSegments(t *testing.T) {
	dir := t.TempDir()
	s := openTestStore(t, dir, 300)
	for i := uint64(1); i <= 300; {
		n := i%13 + 1
		if err := s.StoreLogs(testEntries(i, i+n-1)); err != nil {
			t.Fatal(err)
		}
		i += n
		size, err := tailSegmentSize(dir)
		if err != nil {
			t.Fatal(err)
		}
		if size != s.tailBytes {
			t.Fatalf("after entry %d the tail segment has %d bytes, the store counts %d", i-1, size, s.tailBytes)
		}
	}
}

// TestWALStoreTornTail: a crash in the middle of a batch leaves the last
// segment cut inside an entry, or followed by zeros; Open cuts it back to
// the last whole entry and the store goes on from there.
func TestWALStoreTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string, size int64)
	}{
		{"cut", func(t *testing.T, path string, size int64) {
			if err := os.Truncate(path, size-7); err != nil {
				t.Fatal(err)
			}
		}},
		{"zeros", func(t *testing.T, path string, size int64) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(make([]byte, 100))
			f.Close()
		}},
		{"garbage", func(t *testing.T, path string, size int64) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte{0xff, 0x13, 0x77}, size-5)
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestStore(t, dir, 0)
			if err := s.StoreLogs(testEntries(1, 20)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			path, _, err := tailSegment(dir)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.tear(t, path, fi.Size())
			s = openTestStore(t, dir, 0)
			want := uint64(19) // the last entry is damaged
			if tc.name == "zeros" {
				want = 20 // only what follows it is
			}
			checkRange(t, s, 1, want)
			if _, err := os.Stat(path + ".broken"); err != nil {
				t.Fatalf("no copy of the damaged segment: %v", err)
			}
			if err := s.StoreLogs(testEntries(want+1, want+5)); err != nil {
				t.Fatal(err)
			}
			checkRange(t, s, 1, want+5)
			s.Close()
			s = openTestStore(t, dir, 0)
			checkRange(t, s, 1, want+5)
		})
	}
}

// TestWALStoreDamageBeforeValidEntries: damage followed by whole entries
// of a later write is no torn write, and cutting there would lose
// acknowledged entries: Open refuses and says where. Damage followed only
// by entries of the same, last write is a torn write (its sectors reached
// the disk out of order before its fsync returned): cut.
func TestWALStoreDamageBeforeValidEntries(t *testing.T) {
	damage := func(t *testing.T, batches [][2]uint64, at func(data []byte) int) (string, []byte, error) {
		dir := t.TempDir()
		s := openTestStore(t, dir, 0)
		for _, b := range batches {
			if err := s.StoreLogs(testEntries(b[0], b[1])); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		path, _, _ := tailSegment(dir)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data[at(data)] ^= 0xff
		if err := os.WriteFile(path, data, 0o640); err != nil {
			t.Fatal(err)
		}
		_, err = openWALStore(dir, 0, t.Logf)
		return dir, data, err
	}
	t.Run("a later write follows", func(t *testing.T) {
		dir, data, err := damage(t, [][2]uint64{{1, 10}, {11, 20}}, func(data []byte) int { return len(data) / 4 })
		if err == nil || !strings.Contains(err.Error(), "not a torn write") || !strings.Contains(err.Error(), "keep the data directory") {
			t.Fatalf("open of a segment damaged before a later write: %v", err)
		}
		path, _, _ := tailSegment(dir)
		after, _ := os.ReadFile(path)
		if !bytes.Equal(after, data) {
			t.Fatal("open changed a segment it refused")
		}
	})
	t.Run("the last write, torn", func(t *testing.T) {
		dir, _, err := damage(t, [][2]uint64{{1, 10}, {11, 20}}, func(data []byte) int { return len(data) * 3 / 4 })
		if err != nil {
			t.Fatalf("open of a segment whose last write is torn: %v", err)
		}
		s := openTestStore(t, dir, 0)
		last, _ := s.LastIndex()
		if last < 10 || last >= 20 {
			t.Fatalf("after the cut the store ends at %d, want the first write whole and the second cut", last)
		}
		checkRange(t, s, 1, last)
	})
}

// TestWALStoreConcurrentReadWrite: Raft reads entries (replication, the
// journal's replay) while its leader loop stores more. Run with -race.
func TestWALStoreConcurrentReadWrite(t *testing.T) {
	s := openTestStore(t, t.TempDir(), 4096) // segments cycle while readers load old ones
	if err := s.StoreLogs(testEntries(1, 10)); err != nil {
		t.Fatal(err)
	}
	const last = 2000
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var l raft.Log
			for k := 0; ; k++ {
				hi, err := s.LastIndex()
				if err != nil {
					errs <- err
					return
				}
				i := uint64(k*7+r)%hi + 1
				if err := s.GetLog(i, &l); err != nil {
					errs <- fmt.Errorf("GetLog(%d) with %d stored: %w", i, hi, err)
					return
				}
				if want := testEntry(i); l.Index != i || !bytes.Equal(l.Data, want.Data) {
					errs <- fmt.Errorf("GetLog(%d) = %d %q", i, l.Index, l.Data)
					return
				}
				if hi == last {
					return
				}
			}
		}()
	}
	for i := uint64(11); i <= last; i += 10 {
		if err := s.StoreLogs(testEntries(i, i+9)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRange(t, s, 1, last)
}

// TestWALStoreRefusesTheOtherStoresLog: a data directory keeps the log
// store it began with; opening it with the other would look like a node
// that lost its log.
func TestWALStoreRefusesTheOtherStoresLog(t *testing.T) {
	c := newTestClusterWith(t, &testCluster{t: t, store: "bolt"})
	c.leader()
	c.stop(0)
	_, err := Open(Config{ID: c.peers[0].ID, Peers: c.peers, Dir: c.dirs[0], StateDir: c.stateDir(0), LogStore: "wal"})
	if err == nil || !strings.Contains(err.Error(), "open it with the bolt log store") {
		t.Fatalf("opening a bolt node's directory with the wal store: %v", err)
	}
	c.start(0)

	w := newTestClusterWith(t, &testCluster{t: t, store: "wal"})
	w.leader()
	if w.nodes[0].wal == nil {
		t.Fatal("the wal cluster runs without the wal store")
	}
	w.stop(0)
	_, err = Open(Config{ID: w.peers[0].ID, Peers: w.peers, Dir: w.dirs[0], StateDir: w.stateDir(0), LogStore: "bolt"})
	if err == nil || !strings.Contains(err.Error(), "open it with the wal log store") {
		t.Fatalf("opening a wal node's directory with the bolt store: %v", err)
	}
	w.start(0)
}
