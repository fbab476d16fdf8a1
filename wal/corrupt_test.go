package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// corruptRecords is the size of the log each corruption case starts from:
// with corruptSegmentSize, 15 full segments and 4 records in the tail.
const (
	corruptRecords     = 124
	corruptSegmentSize = 1 << 10
)

// segLayout is where the entries of one segment file are.
type segLayout struct {
	path   string
	first  uint64
	starts []int // offset of each tidwall entry
	size   int
}

// entry returns the byte range of entry i; i < 0 counts from the end.
func (s segLayout) entry(i int) (start, end int) {
	if i < 0 {
		i += len(s.starts)
	}
	end = s.size
	if i+1 < len(s.starts) {
		end = s.starts[i+1]
	}
	return s.starts[i], end
}

func readLayout(t *testing.T, dir string) []segLayout {
	t.Helper()
	segs, err := listSegments(dir)
	requireNoErr(t, err)
	var lay []segLayout
	for _, s := range segs {
		data, err := os.ReadFile(s.path)
		requireNoErr(t, err)
		sl := segLayout{path: s.path, first: s.first, size: len(data)}
		for off := 0; off < len(data); {
			_, n := nextFrame(data[off:])
			requireTrue(t, n > 0, "bad entry in %s at %d", s.path, off)
			sl.starts = append(sl.starts, off)
			off += n
		}
		lay = append(lay, sl)
	}
	return lay
}

// File damage, each failing the test on an I/O error.

func truncateFile(t *testing.T, path string, size int) {
	t.Helper()
	requireNoErr(t, os.Truncate(path, int64(size)))
}

func writeAt(t *testing.T, path string, off int, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	requireNoErr(t, err)
	_, err = f.WriteAt(b, int64(off))
	requireNoErr(t, err)
	requireNoErr(t, f.Close())
}

func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	requireNoErr(t, err)
	_, err = f.Write(b)
	requireNoErr(t, err)
	requireNoErr(t, f.Close())
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	data, err := os.ReadFile(path)
	requireNoErr(t, err)
	writeAt(t, path, off, []byte{data[off] ^ 0x5a})
}

func zeroRange(t *testing.T, path string, start, end int) {
	t.Helper()
	writeAt(t, path, start, make([]byte, end-start))
}

// outcome is what Open and Replay must make of a damaged log: either a
// repair that leaves `left` records (with a .broken copy if `broken`), or,
// when errSeq is set, an ErrCorrupt whose message names record errSeq and
// the file errFile.
type outcome struct {
	left    uint64
	broken  bool
	errSeq  uint64
	errFile string
}

// TestCorruption is one driver fed small functions that damage a log the
// way crashes and bad disks do.
func TestCorruption(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, lay []segLayout) outcome
	}{
		{"tail cut mid-record", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, _ := tail.entry(-1)
			truncateFile(t, tail.path, start+5)
			return outcome{left: corruptRecords - 1, broken: true}
		}},
		{"tail cut at a record boundary", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, _ := tail.entry(-1)
			truncateFile(t, tail.path, start)
			return outcome{left: corruptRecords - 1} // a shorter log, nothing torn
		}},
		{"zeros appended to the tail", func(t *testing.T, lay []segLayout) outcome {
			appendFile(t, lay[len(lay)-1].path, make([]byte, 4096))
			return outcome{left: corruptRecords, broken: true}
		}},
		{"last record zeroed", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, end := tail.entry(-1)
			zeroRange(t, tail.path, start, end)
			return outcome{left: corruptRecords - 1, broken: true}
		}},
		{"tail zeroed from the middle of a record", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, end := tail.entry(-2)
			zeroRange(t, tail.path, (start+end)/2, tail.size)
			return outcome{left: corruptRecords - 2, broken: true}
		}},
		{"byte flipped in the last record", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			_, end := tail.entry(-1)
			flipByte(t, tail.path, end-3)
			return outcome{left: corruptRecords - 1, broken: true}
		}},
		{"length of the last record damaged", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, _ := tail.entry(-1)
			writeAt(t, tail.path, start+1, []byte{0x7f}) // the uvarint's high byte: now past the end
			return outcome{left: corruptRecords - 1, broken: true}
		}},
		{"whole tail segment torn", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			truncateFile(t, tail.path, 3)
			return outcome{left: tail.first - 1, broken: true}
		}},
		{"byte flipped mid tail with valid records after", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, end := tail.entry(1)
			flipByte(t, tail.path, (start+end)/2)
			return outcome{errSeq: tail.first + 1, errFile: tail.path}
		}},
		{"record zeroed mid tail", func(t *testing.T, lay []segLayout) outcome {
			tail := lay[len(lay)-1]
			start, end := tail.entry(1)
			zeroRange(t, tail.path, start, end)
			return outcome{errSeq: tail.first + 1, errFile: tail.path}
		}},
		{"valid record with the wrong sequence at the tail", func(t *testing.T, lay []segLayout) outcome {
			data, err := os.ReadFile(lay[0].path)
			requireNoErr(t, err)
			start, end := lay[0].entry(0)
			appendFile(t, lay[len(lay)-1].path, data[start:end])
			return outcome{errSeq: corruptRecords + 1, errFile: lay[len(lay)-1].path}
		}},
		{"byte flipped in an older segment", func(t *testing.T, lay []segLayout) outcome {
			s := lay[len(lay)/2]
			start, end := s.entry(2)
			flipByte(t, s.path, (start+end)/2)
			return outcome{errSeq: s.first + 2, errFile: s.path}
		}},
		{"byte flipped in the first record", func(t *testing.T, lay []segLayout) outcome {
			flipByte(t, lay[0].path, 30)
			return outcome{errSeq: 1, errFile: lay[0].path}
		}},
		{"older segment cut mid-record", func(t *testing.T, lay []segLayout) outcome {
			s := lay[len(lay)/2]
			start, _ := s.entry(-1)
			truncateFile(t, s.path, start+7)
			return outcome{errSeq: s.first + uint64(len(s.starts)) - 1, errFile: s.path}
		}},
		{"older segment cut at a record boundary", func(t *testing.T, lay []segLayout) outcome {
			s := lay[len(lay)/2]
			start, _ := s.entry(-1)
			truncateFile(t, s.path, start)
			return outcome{errSeq: s.first + uint64(len(s.starts)) - 1, errFile: s.path}
		}},
		{"zeros appended to an older segment", func(t *testing.T, lay []segLayout) outcome {
			s := lay[len(lay)/2]
			appendFile(t, s.path, make([]byte, 16))
			return outcome{errSeq: s.first + uint64(len(s.starts)), errFile: s.path}
		}},
		{"middle segment deleted", func(t *testing.T, lay []segLayout) outcome {
			s := lay[len(lay)/2]
			requireNoErr(t, os.Remove(s.path))
			return outcome{errSeq: s.first, errFile: lay[len(lay)/2-1].path}
		}},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := Options{Dir: t.TempDir(), SegmentSize: corruptSegmentSize, NoSync: true}
			l := openLog(t, opts)
			l.Start()
			for i := range corruptRecords {
				ev := holdEvent(i)
				requireNoErr(t, l.Append(&ev, nil))
			}
			requireNoErr(t, l.Close())
			lay := readLayout(t, opts.Dir)
			requireTrue(t, len(lay) >= 8 && len(lay[len(lay)-1].starts) >= 3,
				"want many segments and 3+ records in the tail; got %d segments, %d in the tail", len(lay), len(lay[len(lay)-1].starts))

			want := c.corrupt(t, lay)
			checkOutcome(t, opts, want)
		})
	}
}

func checkOutcome(t *testing.T, opts Options, want outcome) {
	t.Helper()
	var notices []string
	opts.Logf = func(format string, args ...any) { notices = append(notices, fmt.Sprintf(format, args...)) }
	var got []Event
	collect := func(_ uint64, ev *Event) error {
		got = append(got, *ev)
		return nil
	}
	l, err := Open(opts)
	if err == nil {
		err = l.Replay(0, collect)
		if cerr := l.Close(); want.errSeq == 0 {
			requireNoErr(t, cerr)
		}
	}
	broken, gerr := filepath.Glob(filepath.Join(opts.Dir, "*.broken*"))
	requireNoErr(t, gerr)

	if want.errSeq != 0 {
		requireTrue(t, err != nil, "damage not detected")
		t.Logf("error: %v", err)
		requireErrIs(t, err, ErrCorrupt)
		requireTrue(t, regexp.MustCompile(fmt.Sprintf(`record %d\b`, want.errSeq)).MatchString(err.Error()),
			"error %q does not name record %d", err, want.errSeq)
		requireContains(t, err.Error(), filepath.Base(want.errFile))
		requireEqual(t, len(broken), 0, "files left by a refused open")
		return
	}

	requireNoErr(t, err)
	requireEqual(t, uint64(len(got)), want.left, "records after repair")
	for i := range got {
		w := holdEvent(i)
		requireEvent(t, &got[i], &w, fmt.Sprintf("record %d", i+1))
	}
	if want.broken {
		requireEqual(t, len(broken), 1, "broken copies")
		requireEqual(t, len(notices), 1, "repair notices")
		t.Logf("notice: %s", notices[0])
	} else {
		requireEqual(t, len(broken), 0, "broken copies")
	}

	// The repaired log takes new records where it stopped, and reopens
	// without another repair.
	l = openLog(t, opts)
	l.Start()
	ev := holdEvent(int(want.left))
	requireEqual(t, appendWait(t, l, &ev), want.left+1, "sequence after repair")
	requireNoErr(t, l.Close())
	_, evs := replayAll(t, opts)
	requireEqual(t, uint64(len(evs)), want.left+1, "records after repair and append")
	again, gerr := filepath.Glob(filepath.Join(opts.Dir, "*.broken*"))
	requireNoErr(t, gerr)
	requireEqual(t, len(again), len(broken), "broken copies after reopening")
}
