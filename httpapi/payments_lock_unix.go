//go:build unix

package httpapi

import (
	"os"
	"syscall"
)

// lockFile takes f's exclusive lock (flock), shared with other processes,
// and returns its release.
func lockFile(f *os.File) func() {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
}
