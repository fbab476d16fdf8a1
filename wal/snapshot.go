package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Snapshot files; doc.go has the byte format.
const (
	snapshotMagic      = "OSNP"
	snapshotVersion    = 1
	snapshotOffVersion = 4
	snapshotOffSeq     = 5
	snapshotOffLength  = 13
	snapshotOffCRC     = 17
	snapshotHeaderSize = 21 // magic 4 + version 1 + sequence 8 + length 4 + CRC 4
	// snapshotBytesMax: a zone of 2,000,000 seats is a few tens of MB; the
	// limit bounds what ReadSnapshot allocates for a damaged length.
	snapshotBytesMax = 1 << 30
	// snapshotNameBytesMax keeps names well inside a file name's 255 bytes.
	snapshotNameBytesMax = 200

	snapshotSuffix    = ".snap"
	snapshotTmpSuffix = ".snap.tmp"
)

func snapshotPath(dir, name string) (string, error) {
	if name == "" || len(name) > snapshotNameBytesMax || name == "." || name == ".." ||
		strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("%w: %q", ErrSnapshotName, name)
	}
	return filepath.Join(dir, name+snapshotSuffix), nil
}

// WriteSnapshot replaces the snapshot name in dir with data, taken at log
// sequence seq, creating dir if needed. The replacement is atomic: it writes name.snap.tmp, fsyncs
// it, renames it over name.snap and fsyncs the directory, so a crash leaves
// either the old snapshot or the new one.
func WriteSnapshot(dir, name string, seq uint64, data []byte) error {
	path, err := snapshotPath(dir, name)
	if err != nil {
		return err
	}
	if len(data) > snapshotBytesMax {
		return fmt.Errorf("wal: write snapshot %s: %d bytes, over the %d byte limit", path, len(data), snapshotBytesMax)
	}
	hdr := snapshotHeader(seq, data)
	if err := ensureDir(dir); err != nil {
		return fmt.Errorf("wal: write snapshot %s: %w", path, err)
	}
	tmp := filepath.Join(dir, name+snapshotTmpSuffix)
	if err := writeSynced(tmp, hdr, data); err != nil {
		return fmt.Errorf("wal: write snapshot %s: %w", path, errors.Join(err, removeIfExists(tmp)))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("wal: write snapshot %s: %w", path, errors.Join(err, removeIfExists(tmp)))
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("wal: write snapshot %s: %w", path, err)
	}
	return nil
}

// newerMu makes WriteSnapshotIfNewer's look and write one step for every
// writer in the process.
var newerMu sync.Mutex

// WriteSnapshotIfNewer is WriteSnapshot unless the snapshot name in dir
// already covers seq or more: two writers of one directory (a cluster
// node's engine and the snapshot it installs from the leader) never put an
// older state over a newer one. It reports whether it wrote.
func WriteSnapshotIfNewer(dir, name string, seq uint64, data []byte) (bool, error) {
	newerMu.Lock()
	defer newerMu.Unlock()
	have, err := SnapshotSeq(dir, name)
	switch {
	case err == nil && have >= seq:
		return false, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrSnapshotCorrupt):
		return false, err
	}
	return true, WriteSnapshot(dir, name, seq, data)
}

// SnapshotSeq reads the sequence in the header of the snapshot name in dir
// without reading its data (nor checking it).
func SnapshotSeq(dir, name string) (uint64, error) {
	path, err := snapshotPath(dir, name)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("wal: read snapshot: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, snapshotHeaderSize)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrSnapshotCorrupt, path, err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic || hdr[snapshotOffVersion] != snapshotVersion {
		return 0, fmt.Errorf("%w: %s: bad header", ErrSnapshotCorrupt, path)
	}
	return binary.LittleEndian.Uint64(hdr[snapshotOffSeq:]), nil
}

// snapshotHeader returns the header of a snapshot of data at seq.
func snapshotHeader(seq uint64, data []byte) []byte {
	hdr := make([]byte, snapshotHeaderSize)
	copy(hdr, snapshotMagic)
	hdr[snapshotOffVersion] = snapshotVersion
	binary.LittleEndian.PutUint64(hdr[snapshotOffSeq:], seq)
	binary.LittleEndian.PutUint32(hdr[snapshotOffLength:], uint32(len(data)))
	binary.LittleEndian.PutUint32(hdr[snapshotOffCRC:], snapshotCRC(hdr, data))
	return hdr
}

// writeSynced creates or truncates path, writes hdr and data and fsyncs.
func writeSynced(path string, hdr, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerms)
	if err != nil {
		return err
	}
	_, err = f.Write(hdr)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func snapshotCRC(hdr, data []byte) uint32 {
	c := crc32.Update(0, castagnoli, hdr[:snapshotOffCRC])
	return crc32.Update(c, castagnoli, data)
}

// ReadSnapshot reads the snapshot name in dir. The error wraps
// fs.ErrNotExist when there is none, and ErrSnapshotCorrupt, naming the file,
// when it is damaged. A name.snap.tmp left by a crash is ignored.
func ReadSnapshot(dir, name string) (seq uint64, data []byte, err error) {
	path, err := snapshotPath(dir, name)
	if err != nil {
		return 0, nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("wal: read snapshot: %w", err)
	}
	seq, data, err = readSnapshot(f, path)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("wal: read snapshot %s: %w", path, cerr)
	}
	if err != nil {
		return 0, nil, err
	}
	return seq, data, nil
}

func readSnapshot(f *os.File, path string) (uint64, []byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("wal: read snapshot %s: %w", path, err)
	}
	size := fi.Size()
	if size < snapshotHeaderSize || size > snapshotHeaderSize+snapshotBytesMax {
		return 0, nil, fmt.Errorf("%w: %s: size %d bytes", ErrSnapshotCorrupt, path, size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		return 0, nil, fmt.Errorf("wal: read snapshot %s: %w", path, err)
	}
	return decodeSnapshot(buf, path)
}

// decodeSnapshot checks a whole snapshot file and returns its sequence and
// data; data shares memory with b.
func decodeSnapshot(b []byte, path string) (uint64, []byte, error) {
	if len(b) < snapshotHeaderSize {
		return 0, nil, fmt.Errorf("%w: %s: %d bytes, shorter than the header", ErrSnapshotCorrupt, path, len(b))
	}
	if string(b[:len(snapshotMagic)]) != snapshotMagic {
		return 0, nil, fmt.Errorf("%w: %s: bad magic %q", ErrSnapshotCorrupt, path, b[:len(snapshotMagic)])
	}
	if v := b[snapshotOffVersion]; v != snapshotVersion {
		return 0, nil, fmt.Errorf("%w: %s: unknown version %d", ErrSnapshotCorrupt, path, v)
	}
	n := binary.LittleEndian.Uint32(b[snapshotOffLength:])
	if uint64(n) != uint64(len(b)-snapshotHeaderSize) {
		return 0, nil, fmt.Errorf("%w: %s: header says %d data bytes, file holds %d", ErrSnapshotCorrupt, path, n, len(b)-snapshotHeaderSize)
	}
	data := b[snapshotHeaderSize:]
	if got, want := snapshotCRC(b, data), binary.LittleEndian.Uint32(b[snapshotOffCRC:]); got != want {
		return 0, nil, fmt.Errorf("%w: %s: checksum mismatch (computed %08x, stored %08x)", ErrSnapshotCorrupt, path, got, want)
	}
	return binary.LittleEndian.Uint64(b[snapshotOffSeq:]), data, nil
}

// RemoveSnapshot removes the snapshot name (and a leftover temporary file)
// from dir and fsyncs the directory. Removing a snapshot that does not exist
// is not an error.
func RemoveSnapshot(dir, name string) error {
	path, err := snapshotPath(dir, name)
	if err != nil {
		return err
	}
	err = errors.Join(removeIfExists(path), removeIfExists(filepath.Join(dir, name+snapshotTmpSuffix)))
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("wal: remove snapshot %s: %w", path, err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
