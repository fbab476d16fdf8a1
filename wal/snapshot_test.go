package wal

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "snap") // created by the first write
	_, _, err := ReadSnapshot(dir, "s00001")
	requireErrIs(t, err, fs.ErrNotExist)

	for i, data := range [][]byte{[]byte("first state"), nil, bytes.Repeat([]byte{0, 1, 2}, 100000)} {
		seq := uint64(1000 + i)
		requireNoErr(t, WriteSnapshot(dir, "s00001", seq, data))
		gotSeq, got, err := ReadSnapshot(dir, "s00001")
		requireNoErr(t, err)
		requireEqual(t, gotSeq, seq, "sequence")
		requireTrue(t, bytes.Equal(got, data), "data of write %d differs", i)
	}
	requireNoErr(t, WriteSnapshot(dir, "s00002-z001", 7, []byte("zone")))

	requireNoErr(t, RemoveSnapshot(dir, "s00001"))
	_, _, err = ReadSnapshot(dir, "s00001")
	requireErrIs(t, err, fs.ErrNotExist)
	requireNoErr(t, RemoveSnapshot(dir, "s00001")) // gone already: fine
	seq, data, err := ReadSnapshot(dir, "s00002-z001")
	requireNoErr(t, err)
	requireEqual(t, seq, 7, "other snapshot's sequence")
	requireEqual(t, string(data), "zone", "other snapshot's data")

	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "nul\x00", string(make([]byte, snapshotNameBytesMax+1))} {
		requireErrIs(t, WriteSnapshot(dir, name, 1, nil), ErrSnapshotName)
		_, _, err := ReadSnapshot(dir, name)
		requireErrIs(t, err, ErrSnapshotName)
		requireErrIs(t, RemoveSnapshot(dir, name), ErrSnapshotName)
	}
}

// TestSnapshotReplaceIsAtomic leaves a half-written temporary file behind,
// as a crash during WriteSnapshot would: the old snapshot stays readable
// and the next write replaces both.
func TestSnapshotReplaceIsAtomic(t *testing.T) {
	dir := t.TempDir()
	requireNoErr(t, WriteSnapshot(dir, "sale", 10, []byte("old state")))
	tmp := filepath.Join(dir, "sale"+snapshotTmpSuffix)
	requireNoErr(t, os.WriteFile(tmp, []byte("OSNP\x01half"), 0o640))

	seq, data, err := ReadSnapshot(dir, "sale")
	requireNoErr(t, err)
	requireEqual(t, seq, 10, "sequence with a temporary file left")
	requireEqual(t, string(data), "old state", "data with a temporary file left")

	requireNoErr(t, WriteSnapshot(dir, "sale", 20, []byte("new state")))
	seq, data, err = ReadSnapshot(dir, "sale")
	requireNoErr(t, err)
	requireEqual(t, seq, 20, "sequence after replace")
	requireEqual(t, string(data), "new state", "data after replace")
	_, err = os.Stat(tmp)
	requireErrIs(t, err, fs.ErrNotExist)
}

func TestSnapshotDamage(t *testing.T) {
	cases := map[string]func(b []byte) []byte{
		"magic":     func(b []byte) []byte { b[0] = 'X'; return b },
		"version":   func(b []byte) []byte { b[snapshotOffVersion] = 9; return b },
		"sequence":  func(b []byte) []byte { b[snapshotOffSeq+3] ^= 1; return b },
		"length":    func(b []byte) []byte { b[snapshotOffLength] ^= 1; return b },
		"checksum":  func(b []byte) []byte { b[snapshotOffCRC] ^= 1; return b },
		"data":      func(b []byte) []byte { b[len(b)-2] ^= 0x80; return b },
		"cut":       func(b []byte) []byte { return b[:len(b)-1] },
		"cut short": func(b []byte) []byte { return b[:snapshotHeaderSize-1] },
		"extended":  func(b []byte) []byte { return append(b, 0) },
		"empty":     func(b []byte) []byte { return nil },
		"zeroed":    func(b []byte) []byte { return make([]byte, len(b)) },
	}
	for name, damage := range cases {
		dir := t.TempDir()
		requireNoErr(t, WriteSnapshot(dir, "z", 5, []byte("some zone state")))
		path := filepath.Join(dir, "z"+snapshotSuffix)
		b, err := os.ReadFile(path)
		requireNoErr(t, err)
		requireNoErr(t, os.WriteFile(path, damage(b), 0o640))
		_, _, err = ReadSnapshot(dir, "z")
		if err == nil {
			t.Fatalf("%s: damaged snapshot read without error", name)
		}
		requireErrIs(t, err, ErrSnapshotCorrupt)
		requireContains(t, err.Error(), path)
	}
}
