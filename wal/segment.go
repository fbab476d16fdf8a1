package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Segment files, as tidwall/wal names them.
const (
	segmentNameLen = 20 // the first sequence of the segment, %020d
	// brokenCopiesMax bounds the .broken copies kept of one segment; more
	// than a few means the disk keeps tearing and someone must look.
	brokenCopiesMax = 16
	// brokenNoteBytesMax bounds the bytes of a cut tail quoted in the repair
	// notice when no .broken copy fits on the disk: enough to see what kind
	// of damage it was, small enough for a log line.
	brokenNoteBytesMax = 64
)

// segmentFile is one segment on disk.
type segmentFile struct {
	first uint64 // sequence of its first record, from its name
	path  string
}

// segmentIndex parses the sequence at the start of a tidwall file name.
func segmentIndex(name string) (uint64, bool) {
	if len(name) < segmentNameLen {
		return 0, false
	}
	idx, err := strconv.ParseUint(name[:segmentNameLen], 10, 64)
	if err != nil || idx == 0 {
		return 0, false
	}
	return idx, true
}

// listSegments lists the segment files of dir in order. Other files (.broken
// copies, snapshots, tidwall's temporary files) are not segments.
func listSegments(dir string) ([]segmentFile, error) {
	ents, err := os.ReadDir(dir) // sorted by name, hence by sequence
	if err != nil {
		return nil, fmt.Errorf("wal: list segments: %w", err)
	}
	var segs []segmentFile
	for _, e := range ents {
		name := e.Name()
		if idx, ok := segmentIndex(name); ok && len(name) == segmentNameLen && !e.IsDir() {
			segs = append(segs, segmentFile{first: idx, path: filepath.Join(dir, name)})
		}
	}
	return segs, nil
}

// tailSegment returns the file that tidwall will open as its tail segment.
// tidwall finishes an interrupted truncation on open: with a .END file the
// first one becomes the tail and the later segments are removed; a .START
// file becomes the first segment, and the tail if nothing follows it.
func tailSegment(dir string) (seg segmentFile, ok bool, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return segmentFile{}, false, fmt.Errorf("wal: list segments: %w", err)
	}
	var last, end segmentFile
	for _, e := range ents {
		name := e.Name()
		idx, isSeg := segmentIndex(name)
		if !isSeg || e.IsDir() {
			continue
		}
		isEnd := len(name) == segmentNameLen+len(".END") && strings.HasSuffix(name, ".END")
		isStart := len(name) == segmentNameLen+len(".START") && strings.HasSuffix(name, ".START")
		if len(name) != segmentNameLen && !isEnd && !isStart {
			continue
		}
		f := segmentFile{first: idx, path: filepath.Join(dir, name)}
		if isEnd && end.path == "" {
			end = f
		}
		last, ok = f, true
	}
	if end.path != "" {
		return end, true, nil
	}
	return last, ok, nil
}

// tailSize is the size of the last segment file, which tidwall holds in
// memory as its tail.
func tailSize(dir string) (int64, error) {
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return 0, err
	}
	fi, err := os.Stat(segs[len(segs)-1].path)
	if err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	return fi.Size(), nil
}

// readSegment reads a whole segment file into buf, grown as needed.
func readSegment(buf []byte, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], fmt.Errorf("wal: read segment: %w", err)
	}
	buf, err = readAll(buf, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("wal: read segment: %w", cerr)
	}
	return buf, err
}

func readAll(buf []byte, f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return buf[:0], fmt.Errorf("wal: read segment: %w", err)
	}
	size := fi.Size()
	if size > segmentFileBytesMax {
		return buf[:0], fmt.Errorf("%w: %s is %d bytes, over the %d byte limit", ErrCorrupt, f.Name(), size, segmentFileBytesMax)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(f, buf); err != nil {
		return buf[:0], fmt.Errorf("wal: read segment %s: %w", f.Name(), err)
	}
	return buf, nil
}

// nextFrame splits off the tidwall entry at the start of b: a uvarint length
// then that many bytes. n is 0 when b holds no whole entry.
func nextFrame(b []byte) (rec []byte, n int) {
	size, k := binary.Uvarint(b)
	if k <= 0 || size > uint64(len(b)-k) {
		return nil, 0
	}
	return b[k : k+int(size)], k + int(size)
}

// errEntryCut is the cause given for a tidwall entry that ends past the
// end of its file.
var errEntryCut = errors.New("entry cut short")

// tailInfo describes the tail segment after repair.
type tailInfo struct {
	path    string // "" when the log has no segment yet
	first   uint64
	records int
}

// repairTail walks the segment that tidwall will open as its tail and cuts a
// torn tail off it: an entry cut short, zero bytes, or a record that fails
// its checks with no valid record after it. It keeps a copy of the file as
// <segment>.broken first, if it fits on the disk; if not, the notice keeps
// what was cut instead (its length, CRC and first bytes): a repair never
// needs free space. Any other damage is an ErrCorrupt naming the sequence
// and the file.
func repairTail(dir string, fs FS, logf func(string, ...any)) (tailInfo, error) {
	seg, ok, err := tailSegment(dir)
	if err != nil || !ok {
		return tailInfo{}, err
	}
	data, err := readSegment(nil, seg.path)
	if err != nil {
		return tailInfo{}, err
	}
	seq, off := seg.first, 0
	for off < len(data) {
		rec, n := nextFrame(data[off:])
		cause := errEntryCut
		if n > 0 {
			got, _, err := checkRecord(rec)
			if err == nil && got == seq {
				seq++
				off += n
				continue
			}
			if err == nil {
				return tailInfo{}, fmt.Errorf("%w: record %d in %s at offset %d has sequence %d", ErrCorrupt, seq, seg.path, off, got)
			}
			cause = err
		}
		if at := findRecord(data, off+1); at >= 0 {
			return tailInfo{}, fmt.Errorf("%w: record %d in %s at offset %d is damaged and a valid record follows at offset %d: %w",
				ErrCorrupt, seq, seg.path, off, at, cause)
		}
		broken, err := cutTail(fs, seg.path, data, off)
		if err != nil {
			return tailInfo{}, fmt.Errorf("wal: cut torn tail of %s at offset %d: %w", seg.path, off, err)
		}
		logf("wal: %s: cut a torn tail of %d bytes at offset %d (record %d: %v); the last record kept is %d; %s",
			seg.path, len(data)-off, off, seq, cause, seq-1, broken)
		break
	}
	return tailInfo{path: seg.path, first: seg.first, records: int(seq - seg.first)}, nil
}

// findRecord returns the offset of the first valid record at or after from,
// or -1. It tries every offset, since a damaged length hides where the next
// entry starts; the cheap header checks reject almost every offset before
// the CRC is computed.
func findRecord(data []byte, from int) int {
	for p := from; p < len(data); p++ {
		size, k := binary.Uvarint(data[p:])
		if k <= 0 || size < recordHeaderSize || size > uint64(len(data)-p-k) {
			continue
		}
		rec := data[p+k : p+k+int(size)]
		if rec[recordOffVersion] != recordVersion ||
			uint64(binary.LittleEndian.Uint32(rec[recordOffLength:])) != size-recordHeaderSize {
			continue
		}
		if _, _, err := checkRecord(rec); err == nil {
			return p
		}
	}
	return -1
}

// cutTail keeps a copy of a damaged segment, truncates the segment to off and
// makes both durable. It returns what became of the copy, for the notice:
// its path, or, when it did not fit on the disk, a description of the bytes
// cut.
func cutTail(fs FS, path string, data []byte, off int) (string, error) {
	broken, err := keepBroken(fs, path, data)
	if err != nil && !writeRetryable(err) {
		return "", err
	}
	kept := "damaged file kept as " + broken
	if err != nil {
		cut := data[off:]
		kept = fmt.Sprintf("no copy of the damaged file fits on the disk (%v): the %d bytes cut have CRC-32C %08x and begin %x",
			err, len(cut), crc32.Checksum(cut, castagnoli), cut[:min(len(cut), brokenNoteBytesMax)])
	}
	f, err := fs.OpenAppend(path)
	if err != nil {
		return "", err
	}
	err = f.Truncate(int64(off)) // frees space, never needs it
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	return kept, fs.SyncDir(filepath.Dir(path))
}

// keepBroken writes data to the first free name of <path>.broken,
// <path>.broken.2, ... and fsyncs it. A copy that fails part way is removed.
func keepBroken(fs FS, path string, data []byte) (string, error) {
	for i := 1; i <= brokenCopiesMax; i++ {
		name := path + ".broken"
		if i > 1 {
			name += "." + strconv.Itoa(i)
		}
		f, err := fs.CreateNew(name)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = fs.SyncDir(filepath.Dir(path))
		}
		if err != nil {
			if rerr := fs.Remove(name); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("%d broken copies of %s already exist", brokenCopiesMax, path)
}
