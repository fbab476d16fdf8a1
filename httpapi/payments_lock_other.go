//go:build !unix

package httpapi

import "os"

// lockFile: without flock, a journal is this process's alone.
func lockFile(*os.File) func() { return func() {} }
