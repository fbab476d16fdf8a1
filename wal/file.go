package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// FS is the file layer under everything the log writes: its appends and
// fsyncs, new segments, the front truncation and the repair of a torn tail.
// The log reads segments with the os package directly; only writes can fail
// in ways the log must survive. OS is the real one; FaultFS lets tests make
// the disk full, failing or stuck.
type FS interface {
	// Create creates or truncates name for writing; every write appends.
	Create(name string) (File, error)
	// OpenAppend opens an existing file for writing at its end.
	OpenAppend(name string) (File, error)
	// CreateNew creates name, which must not exist.
	CreateNew(name string) (File, error)
	Rename(oldName, newName string) error
	Remove(name string) error
	// SyncDir fsyncs a directory, so that entries created, renamed or
	// removed in it survive a crash.
	SyncDir(dir string) error
}

// File is an open file of an FS.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// OS is the FS of the operating system.
var OS FS = osFS{}

type osFS struct{}

func (osFS) Create(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, filePerms)
}

func (osFS) OpenAppend(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND, filePerms)
}

func (osFS) CreateNew(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerms)
}

func (osFS) Rename(oldName, newName string) error { return os.Rename(oldName, newName) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("wal: sync directory %q: %w", dir, err)
	}
	return nil
}

// writeRetryable tells a failed write that leaves the disk as it was once
// the log cuts back what it wrote (no space, an I/O error on write) from
// one that means the log itself is broken (a closed file, say). A failed
// fsync is never retryable: see doc.go.
func writeRetryable(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO)
}

// syncDir fsyncs a directory through the OS layer; for the paths that run
// before a log has a file layer (ensureDir).
func syncDir(dir string) error { return OS.SyncDir(dir) }

// parentDir is the directory holding path.
func parentDir(path string) string { return filepath.Dir(filepath.Clean(path)) }
