package wal

import (
	"sync"
	"sync/atomic"
)

// FaultFS is an FS over another that fails on command, for tests of what
// the log and the server do when the disk fills up, fails or hangs. A failed
// write writes half of its bytes first, as a write that runs out of space
// part way does. Safe for concurrent use.
type FaultFS struct {
	base FS

	mu         sync.Mutex
	writeErr   error // the error of failing writes
	writesLeft int   // writes still to fail; negative: until Heal
	syncErr    error // the error of failing fsyncs
	syncsLeft  int   // fsyncs still to fail; negative: until Heal
	gate       chan struct{}

	blocked atomic.Int32 // fsyncs waiting at the gate now
	writes  atomic.Int64 // writes failed so far
}

// NewFaultFS returns a FaultFS over base (OS if nil) that fails nothing yet.
func NewFaultFS(base FS) *FaultFS {
	if base == nil {
		base = OS
	}
	return &FaultFS{base: base}
}

// FailWrites makes the next n writes fail with err (n < 0: every write
// until Heal), e.g. syscall.ENOSPC or syscall.EIO.
func (f *FaultFS) FailWrites(n int, err error) {
	f.mu.Lock()
	f.writeErr, f.writesLeft = err, n
	f.mu.Unlock()
}

// FailSyncs makes the next n fsyncs (of files and directories) fail with err
// (n < 0: every one until Heal).
func (f *FaultFS) FailSyncs(n int, err error) {
	f.mu.Lock()
	f.syncErr, f.syncsLeft = err, n
	f.mu.Unlock()
}

// BlockSyncs makes every fsync wait until Heal, like a frozen file system.
func (f *FaultFS) BlockSyncs() {
	f.mu.Lock()
	if f.gate == nil {
		f.gate = make(chan struct{})
	}
	f.mu.Unlock()
}

// Heal ends every fault and releases the fsyncs that wait.
func (f *FaultFS) Heal() {
	f.mu.Lock()
	f.writeErr, f.writesLeft = nil, 0
	f.syncErr, f.syncsLeft = nil, 0
	if f.gate != nil {
		close(f.gate)
		f.gate = nil
	}
	f.mu.Unlock()
}

// SyncsBlocked is how many fsyncs wait for Heal now.
func (f *FaultFS) SyncsBlocked() int { return int(f.blocked.Load()) }

// WritesFailed is how many writes failed so far.
func (f *FaultFS) WritesFailed() int { return int(f.writes.Load()) }

// take consumes one fault of a kind: the error to return, or nil.
func take(err *error, left *int) error {
	if *err == nil || *left == 0 {
		return nil
	}
	e := *err
	if *left > 0 {
		if *left--; *left == 0 {
			*err = nil
		}
	}
	return e
}

func (f *FaultFS) writeFault() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := take(&f.writeErr, &f.writesLeft)
	if err != nil {
		f.writes.Add(1)
	}
	return err
}

// syncFault waits at the gate if there is one, then consumes a sync fault.
func (f *FaultFS) syncFault() error {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		f.blocked.Add(1)
		<-gate
		f.blocked.Add(-1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return take(&f.syncErr, &f.syncsLeft)
}

func (f *FaultFS) wrap(file File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *FaultFS) Create(name string) (File, error)     { return f.wrap(f.base.Create(name)) }
func (f *FaultFS) OpenAppend(name string) (File, error) { return f.wrap(f.base.OpenAppend(name)) }
func (f *FaultFS) CreateNew(name string) (File, error)  { return f.wrap(f.base.CreateNew(name)) }
func (f *FaultFS) Rename(oldName, newName string) error { return f.base.Rename(oldName, newName) }
func (f *FaultFS) Remove(name string) error             { return f.base.Remove(name) }

func (f *FaultFS) SyncDir(dir string) error {
	if err := f.syncFault(); err != nil {
		return err
	}
	return f.base.SyncDir(dir)
}

type faultFile struct {
	File
	fs *FaultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.writeFault(); err != nil {
		n, werr := f.File.Write(p[:len(p)/2])
		if werr != nil {
			return n, werr
		}
		return n, err
	}
	return f.File.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.syncFault(); err != nil {
		return err
	}
	return f.File.Sync()
}
