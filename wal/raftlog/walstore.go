package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	twal "github.com/tidwall/wal"

	"onsale/wal"
)

// walStore is a raft.LogStore on github.com/tidwall/wal's segment files:
// an append-only file written once per batch with one fsync, where
// raft-boltdb rewrites B+tree pages and its meta page for every batch.
//
// Index mapping. A Raft index is the tidwall index itself. tidwall numbers a
// log from the index in the name of its first segment file, so a store that
// must start at some index R (the first entry after a snapshot install, on
// a store that holds nothing) is reset: its files are removed and an empty
// segment named R is created, then reopened. No offset is kept anywhere,
// so there is nothing to keep in step with the entries after a crash: at
// every step of a reset the directory holds no entry, which is what the
// store held before it.
//
// Gaps. tidwall only appends at LastIndex+1, so the store is a
// raft.MonotonicLogStore: Raft then removes every entry after it installs
// or restores a snapshot (removeOldLogs) instead of appending after a gap,
// and StoreLogs refuses a gap on a store that holds entries.
//
// Entry format, version 1 (one tidwall entry each):
//
//	offset size field
//	     0    1 version   1
//	     1    4 crc       CRC-32C (Castagnoli) of every byte after it
//	     5    . index     uvarint
//	     . batch     uvarint, index minus the first index of its batch
//	     . term      uvarint
//	     . type      1 byte, raft.LogType
//	     . appended  varint, AppendedAt in Unix nanoseconds; 0: zero time
//	     . data      uvarint length + bytes
//	     . ext       uvarint length + bytes (Extensions)
//
// tidwall has no checksum; the CRC lets Open tell a torn tail (zeros, or an
// entry cut short) from the entries before it, and GetLog refuse a damaged
// entry instead of handing Raft garbage. The batch field tells a torn last
// batch (its one write reached the disk in any order, some entries whole,
// some not, before its fsync returned) from damage to entries a later
// batch followed.
type walStore struct {
	dir     string
	segSize int
	logf    func(string, ...any)

	// mu serialises every use of tw: tidwall's Read loads and caches
	// segments under its read lock, which is not safe for two readers.
	mu sync.Mutex
	tw *twal.Log
	// next is tidwall's next index: where an append goes without a reset.
	next uint64
	// tailBytes mirrors the size of tidwall's tail segment, to know when a
	// batch made it open a new segment file, whose directory entry must
	// then be synced (tidwall does not).
	tailBytes int
	batch     twal.Batch
	buf       []byte
	closed    bool

	// broken is set when the files may differ from what tw holds; every
	// call fails with it from then on. Read without mu by FirstIndex and
	// LastIndex, which must not wait for a batch's fsync.
	broken atomic.Pointer[error]

	// first and last are the Raft indexes held, 0 and 0 when none;
	// written under mu, read without it.
	first, last atomic.Uint64
}

const (
	walEntryVersion = 1
	walEntryHeader  = 5 // version + crc
	// walSegmentBytes: tidwall holds the whole tail segment in memory and
	// rewrites the part kept of it on a compaction inside it; 16 MiB is
	// about 150,000 records of this project.
	walSegmentBytes = 16 << 20
	// walEntryBytesMax bounds what a damaged length can make GetLog or
	// Open allocate; Raft entries here are records of at most a few MiB.
	walEntryBytesMax = 256 << 20
)

// startAfresh is what a node whose log is damaged can do.
const startAfresh = "if the other nodes are up and hold the log (GET /v1/cluster on one of them), move this node's data directory aside and start it with an empty one and --rejoin: it catches up from them"

var (
	walCastagnoli = crc32.MakeTable(crc32.Castagnoli)
	errWALEntry   = errors.New("damaged entry")
)

var _ raft.LogStore = (*walStore)(nil)
var _ raft.MonotonicLogStore = (*walStore)(nil)

// openWALStore opens or creates the store in dir. It cuts a torn tail off
// the last segment first (keeping a <segment>.broken copy) and fails on
// damage that is not a torn tail.
func openWALStore(dir string, segSize int, logf func(string, ...any)) (*walStore, error) {
	if segSize <= 0 {
		segSize = walSegmentBytes
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("raft log store: %w", err)
		}
		// Its entry in the parent, or a crash could lose the directory
		// while raft.db (the term and vote) survives.
		if err := wal.OS.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("raft log store: %w", err)
		}
	}
	s := &walStore{dir: dir, segSize: segSize, logf: logf}
	if err := s.repairTail(); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

// open opens tidwall on the directory and loads the indexes.
func (s *walStore) open() error {
	tw, err := twal.Open(s.dir, &twal.Options{
		SegmentSize:      s.segSize,
		LogFormat:        twal.Binary,
		SegmentCacheSize: 2,
		// GetLog copies what it decodes, under mu.
		NoCopy: true,
		// DeleteRange may remove every entry.
		AllowEmpty: true,
		DirPerms:   0o750,
		FilePerms:  0o640,
	})
	if errors.Is(err, twal.ErrCorrupt) {
		// Open repaired the tail segment already: an earlier one is damaged.
		return fmt.Errorf("raft log store: open %s: %w (a segment before the last is damaged: %s)", s.dir, err, startAfresh)
	}
	if err != nil {
		return fmt.Errorf("raft log store: open %s: %w", s.dir, err)
	}
	// tidwall creates the first segment and finishes an interrupted
	// truncation by renames without syncing the directory.
	if err := wal.OS.SyncDir(s.dir); err != nil {
		tw.Close()
		return fmt.Errorf("raft log store: %w", err)
	}
	first, ferr := tw.FirstIndex()
	last, lerr := tw.LastIndex()
	if err := errors.Join(ferr, lerr); err != nil {
		tw.Close()
		return fmt.Errorf("raft log store: open %s: %w", s.dir, err)
	}
	s.tw, s.next = tw, last+1
	if first > last {
		s.first.Store(0)
		s.last.Store(0)
	} else {
		s.first.Store(first)
		s.last.Store(last)
		// Both ends must decode to their own index: a file renamed or
		// copied from elsewhere would shift every index.
		var l raft.Log
		for _, i := range []uint64{first, last} {
			if err := s.read(i, &l); err != nil {
				tw.Close()
				return err
			}
		}
	}
	if s.tailBytes, err = tailSegmentSize(s.dir); err != nil {
		tw.Close()
		return err
	}
	return nil
}

// IsMonotonic tells Raft to remove every entry after a snapshot install
// instead of leaving a gap: tidwall cannot hold one.
func (s *walStore) IsMonotonic() bool { return true }

// FirstIndex is the first index held, 0 if none.
func (s *walStore) FirstIndex() (uint64, error) { return s.first.Load(), s.failed() }

// LastIndex is the last index held, 0 if none.
func (s *walStore) LastIndex() (uint64, error) { return s.last.Load(), s.failed() }

func (s *walStore) failed() error {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// fail makes err the store's error for good and returns it.
func (s *walStore) fail(err error) error {
	s.broken.CompareAndSwap(nil, &err)
	return s.failed()
}

func (s *walStore) usableLocked() error {
	if s.closed {
		return errors.New("raft log store is closed")
	}
	return s.failed()
}

// GetLog reads the entry at index into l; raft.ErrLogNotFound if the store
// does not hold it.
func (s *walStore) GetLog(index uint64, l *raft.Log) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	if first := s.first.Load(); first == 0 || index < first || index > s.last.Load() {
		return raft.ErrLogNotFound
	}
	return s.read(index, l)
}

func (s *walStore) read(index uint64, l *raft.Log) error {
	b, err := s.tw.Read(index)
	if errors.Is(err, twal.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raft log store: read entry %d: %w", index, err)
	}
	if err := decodeWALEntry(b, l); err != nil {
		return fmt.Errorf("raft log store: entry %d in %s: %w (%s)", index, s.dir, err, startAfresh)
	}
	if l.Index != index {
		return fmt.Errorf("raft log store: entry %d in %s holds index %d (%s)", index, s.dir, l.Index, startAfresh)
	}
	return nil
}

// StoreLog stores one entry.
func (s *walStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends the entries, which must follow the last one held (or
// start anywhere on a store that holds none), with one write and one fsync.
func (s *walStore) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	at := logs[0].Index
	for i, l := range logs {
		if l.Index != at+uint64(i) {
			return fmt.Errorf("raft log store: entries %d and %d of a batch are not consecutive: this store holds no gaps", logs[i-1].Index, l.Index)
		}
	}
	if at == 0 {
		return errors.New("raft log store: index 0 is no Raft entry")
	}
	if s.first.Load() == 0 {
		if at != s.next {
			if err := s.reset(at); err != nil {
				return err
			}
		}
	} else if last := s.last.Load(); at != last+1 {
		return fmt.Errorf("raft log store: entry %d does not follow the last one held, %d: this store holds no gaps (it is a raft.MonotonicLogStore, so Raft removes its entries before it stores after a snapshot)", at, last)
	}

	s.batch.Clear()
	cycled := s.tailBytes > s.segSize // tidwall opens a new segment first
	if cycled {
		s.tailBytes = 0
	}
	for _, l := range logs {
		s.buf = appendWALEntry(s.buf[:0], l, at)
		if len(s.buf) > walEntryBytesMax {
			// Open would take it for an entry cut short.
			return fmt.Errorf("raft log store: entry %d is %d bytes, over the %d byte limit", l.Index, len(s.buf), walEntryBytesMax)
		}
		s.batch.Write(l.Index, s.buf)
		s.tailBytes += uvarintLen(uint64(len(s.buf))) + len(s.buf)
		if s.tailBytes >= s.segSize {
			cycled, s.tailBytes = true, 0
		}
	}
	// One write of the batch and one fsync (tidwall's WriteBatch without
	// NoSync), plus one of the segment it filled if it opened a new one.
	if err := s.tw.WriteBatch(&s.batch); err != nil {
		// tidwall may hold in memory entries that are not in the file.
		return s.fail(fmt.Errorf("raft log store: write entries %d..%d: %w (restart the node to reopen the log)", at, logs[len(logs)-1].Index, err))
	}
	if cycled {
		if err := wal.OS.SyncDir(s.dir); err != nil {
			return s.fail(fmt.Errorf("raft log store: sync %s after a new segment: %w (restart the node to reopen the log; the fsync is not retried)", s.dir, err))
		}
	}
	// last before first: FirstIndex, read without mu, says 0 (nothing
	// held) until both are right.
	s.last.Store(logs[len(logs)-1].Index)
	if s.first.Load() == 0 {
		s.first.Store(at)
	}
	s.next = s.last.Load() + 1
	return nil
}

// DeleteRange removes min..max. Raft only removes a prefix (compaction),
// a suffix (entries that conflict with the leader's) or everything (after a
// snapshot install); a range in the middle is refused.
func (s *walStore) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usableLocked(); err != nil {
		return err
	}
	first, last := s.first.Load(), s.last.Load()
	if first == 0 || max < first || min > last || min > max {
		return nil
	}
	var err error
	switch {
	case min <= first && max >= last:
		// tidwall leaves one empty segment named last+1: the next append
		// goes there, any other index resets the store.
		err = s.tw.TruncateFront(last + 1)
		if err == nil {
			s.first.Store(0)
			s.last.Store(0)
			s.next = last + 1
		}
	case min <= first:
		err = s.tw.TruncateFront(max + 1)
		if err == nil {
			s.first.Store(max + 1)
		}
	case max >= last:
		err = s.tw.TruncateBack(min - 1)
		if err == nil {
			s.last.Store(min - 1)
			s.next = min
		}
	default:
		return fmt.Errorf("raft log store: cannot delete %d..%d from the middle of %d..%d: only a prefix or a suffix can go", min, max, first, last)
	}
	if err != nil {
		// tidwall marks itself corrupt when it fails after its new file is
		// in place; reopening finishes the truncation.
		return s.fail(fmt.Errorf("raft log store: delete %d..%d: %w (restart the node to reopen the log)", min, max, err))
	}
	// tidwall removes and renames files without syncing the directory: a
	// suffix removed must stay removed once entries are stored after it.
	if err := wal.OS.SyncDir(s.dir); err != nil {
		return s.fail(fmt.Errorf("raft log store: sync %s after deleting %d..%d: %w (restart the node to reopen the log)", s.dir, min, max, err))
	}
	if s.tailBytes, err = tailSegmentSize(s.dir); err != nil {
		return s.fail(err)
	}
	return nil
}

// reset makes the empty store start at index: it removes the files, creates
// an empty segment named index and reopens tidwall on it. Every step leaves
// a directory that holds no entry.
func (s *walStore) reset(index uint64) error {
	fail := func(err error) error {
		return s.fail(fmt.Errorf("raft log store: start the log at %d: %w (restart the node to reopen the log)", index, err))
	}
	err := s.tw.Close()
	s.tw = nil
	if err != nil {
		return fail(err)
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fail(err)
	}
	for _, e := range ents { // sorted: the front goes first, as a compaction would
		if _, ok := segmentName(e.Name()); ok {
			if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
				return fail(err)
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("%020d", index)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := wal.OS.SyncDir(s.dir); err != nil {
		return fail(err)
	}
	if err := s.open(); err != nil {
		return fail(err)
	}
	if s.next != index || s.first.Load() != 0 {
		return fail(fmt.Errorf("tidwall opened the reset log at %d", s.next))
	}
	return nil
}

// Close closes the files; every later call fails.
func (s *walStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.fail(errors.New("raft log store is closed"))
	if s.tw == nil {
		return nil
	}
	return s.tw.Close()
}

// appendWALEntry appends the version-1 encoding of l, written in the batch
// that begins at index batch.
func appendWALEntry(b []byte, l *raft.Log, batch uint64) []byte {
	start := len(b)
	b = append(b, walEntryVersion, 0, 0, 0, 0)
	b = binary.AppendUvarint(b, l.Index)
	b = binary.AppendUvarint(b, l.Index-batch)
	b = binary.AppendUvarint(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.AppendVarint(b, at)
	b = binary.AppendUvarint(b, uint64(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.AppendUvarint(b, uint64(len(l.Extensions)))
	b = append(b, l.Extensions...)
	binary.LittleEndian.PutUint32(b[start+1:], crc32.Checksum(b[start+walEntryHeader:], walCastagnoli))
	return b
}

// decodeWALEntry decodes b into l; Data and Extensions are copies (Raft
// keeps them).
func decodeWALEntry(b []byte, l *raft.Log) error {
	_, err := decodeWALEntryBatch(b, l)
	return err
}

// decodeWALEntryBatch is decodeWALEntry that also says where the entry's
// batch began.
func decodeWALEntryBatch(b []byte, l *raft.Log) (batch uint64, err error) {
	if len(b) < walEntryHeader {
		return 0, fmt.Errorf("%w: %d bytes", errWALEntry, len(b))
	}
	if b[0] != walEntryVersion {
		return 0, fmt.Errorf("%w: version %d", errWALEntry, b[0])
	}
	if crc32.Checksum(b[walEntryHeader:], walCastagnoli) != binary.LittleEndian.Uint32(b[1:]) {
		return 0, fmt.Errorf("%w: checksum mismatch", errWALEntry)
	}
	p := b[walEntryHeader:]
	uv := func() uint64 {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			p = nil
			return 0
		}
		p = p[n:]
		return v
	}
	index := uv()
	back := uv()
	term := uv()
	if p == nil || back >= index {
		return 0, fmt.Errorf("%w: index fields", errWALEntry)
	}
	if len(p) < 1 {
		return 0, fmt.Errorf("%w: cut short", errWALEntry)
	}
	typ := raft.LogType(p[0])
	p = p[1:]
	at, n := binary.Varint(p)
	if n <= 0 {
		return 0, fmt.Errorf("%w: cut short", errWALEntry)
	}
	p = p[n:]
	dlen := uv()
	if p == nil || dlen > uint64(len(p)) {
		return 0, fmt.Errorf("%w: data length", errWALEntry)
	}
	data := p[:dlen]
	p = p[dlen:]
	elen := uv()
	if p == nil || elen != uint64(len(p)) {
		return 0, fmt.Errorf("%w: extensions length", errWALEntry)
	}
	ext := p
	*l = raft.Log{Index: index, Term: term, Type: typ}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	if len(data)+len(ext) > 0 {
		// One allocation for both; capped so that an append to one cannot
		// overwrite the other.
		own := make([]byte, len(data)+len(ext))
		copy(own, data)
		copy(own[len(data):], ext)
		if len(data) > 0 {
			l.Data = own[:len(data):len(data)]
		}
		if len(ext) > 0 {
			l.Extensions = own[len(data):]
		}
	}
	return index - back, nil
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// segmentName parses a file name of tidwall's: 20 digits, the first index
// of the segment, maybe followed by .START, .END or a .TEMP of them.
func segmentName(name string) (uint64, bool) {
	if len(name) < 20 {
		return 0, false
	}
	idx, err := strconv.ParseUint(name[:20], 10, 64)
	if err != nil || idx == 0 {
		return 0, false
	}
	switch strings.TrimSuffix(name[20:], ".TEMP") {
	case "", ".START", ".END":
		return idx, true
	}
	return 0, false
}

// tailSegment is the file tidwall opens as its tail: with a .END file
// (an interrupted TruncateBack) that one, else the last segment or .START
// file (an interrupted TruncateFront with nothing after it).
func tailSegment(dir string) (path string, first uint64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, fmt.Errorf("raft log store: %w", err)
	}
	var end string
	var endFirst uint64
	for _, e := range ents {
		name := e.Name()
		idx, ok := segmentName(name)
		if !ok || e.IsDir() || strings.HasSuffix(name, ".TEMP") {
			continue
		}
		if strings.HasSuffix(name, ".END") && end == "" {
			end, endFirst = filepath.Join(dir, name), idx
		}
		path, first = filepath.Join(dir, name), idx
	}
	if end != "" {
		return end, endFirst, nil
	}
	return path, first, nil
}

// tailSegmentSize is the size of the tail segment, which tidwall holds in
// memory and cuts when it reaches the segment size.
func tailSegmentSize(dir string) (int, error) {
	path, _, err := tailSegment(dir)
	if err != nil || path == "" {
		return 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("raft log store: %w", err)
	}
	return int(fi.Size()), nil
}

// walFrame splits off the tidwall entry at the start of b: a uvarint
// length then that many bytes. n is 0 when b holds no whole entry.
func walFrame(b []byte) (entry []byte, n int) {
	size, k := binary.Uvarint(b)
	if k <= 0 || size > uint64(len(b)-k) || size > walEntryBytesMax {
		return nil, 0
	}
	return b[k : k+int(size)], k + int(size)
}

// repairTail cuts a torn tail off the segment tidwall will open as its
// tail: the first entry that is cut short, empty (a file extended with
// zeros by a crash reads as empty tidwall entries) or fails its checksum,
// and everything after it, provided no valid entry follows. A valid entry
// after damage is corruption, not a torn write: Open fails and names it.
// tidwall itself fails to open a segment whose last entry is cut short.
func (s *walStore) repairTail() error {
	path, first, err := tailSegment(s.dir)
	if err != nil || path == "" {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("raft log store: %w", err)
	}
	var l raft.Log
	idx, off := first, 0
	for off < len(data) {
		entry, n := walFrame(data[off:])
		var cause error = errors.New("entry cut short")
		if n > 0 {
			cause = decodeWALEntry(entry, &l)
			if cause == nil && l.Index == idx {
				idx++
				off += n
				continue
			}
			if cause == nil {
				return fmt.Errorf("raft log store: entry %d in %s at offset %d holds index %d. "+
					"The file may hold the only copy of committed records: keep the data directory; %s", idx, path, off, l.Index, startAfresh)
			}
		}
		// A whole entry after the damage is either of the same batch (the
		// last one written: its one write reached the disk out of order
		// before its fsync returned, so none of it was acknowledged) or of
		// a later batch, which means entries acknowledged before it were
		// damaged: that is refused.
		for p := off + 1; p < len(data); p++ {
			e, n := walFrame(data[p:])
			if n == 0 || len(e) <= walEntryHeader || e[0] != walEntryVersion {
				continue
			}
			batch, err := decodeWALEntryBatch(e, &l)
			if err != nil {
				continue
			}
			if batch > idx || l.Index <= idx {
				return fmt.Errorf("raft log store: entry %d in %s at offset %d is damaged (%v), and entry %d of a later write follows at offset %d: not a torn write. "+
					"The file may hold the only copy of committed records: keep the data directory; %s",
					idx, path, off, cause, l.Index, p, startAfresh)
			}
			p += n - 1
		}
		kept := keepBroken(path, data)
		if err := truncateSync(path, int64(off)); err != nil {
			return fmt.Errorf("raft log store: cut torn tail of %s at offset %d: %w", path, off, err)
		}
		s.logf("raft log store: %s: cut a torn tail of %d bytes at offset %d (entry %d: %v); the last entry kept is %d; %s",
			path, len(data)-off, off, idx, cause, idx-1, kept)
		return nil
	}
	return nil
}

// keepBroken copies a segment about to be cut to the first free name of
// <path>.broken, .broken.2, ... (a repair keeps its evidence), and says
// what became of it. A copy that fails is no reason to keep the node down:
// the cut only drops what was never acknowledged.
func keepBroken(path string, data []byte) string {
	for i := 1; i <= 16; i++ {
		name := path + ".broken"
		if i > 1 {
			name += "." + strconv.Itoa(i)
		}
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err == nil {
			_, err = f.Write(data)
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			os.Remove(name)
			return fmt.Sprintf("no copy kept (%v)", err)
		}
		return "damaged file kept as " + name
	}
	return "no copy kept: 16 copies of " + path + " exist already"
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return wal.OS.SyncDir(filepath.Dir(path))
}
