//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testSeed is a random test's seed: SEED from the environment to replay
// a run, else a new one, logged either way.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with SEED=%d)", seed, seed)
	return seed
}

// --- HTTP ---

// crashClient speaks to the current server. base changes only between
// cycles, while no request is in flight.
type crashClient struct {
	hc   *http.Client
	base string
}

// call sends one request and reads the whole answer. An error means the
// outcome is unknown.
func (c *crashClient) call(method, path, token, key string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// --- the child process ---

// crashBuild builds the onsale binary once for the test, without -race.
func crashBuild(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the crash test builds onsale and needs the go tool on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "onsale")
	start := time.Now()
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// crashServer is the onsale child process. Only the test goroutine uses it.
type crashServer struct {
	t      *testing.T
	bin    string
	data   string
	out    *crashLog
	base   string
	starts int
	// args and env are added to every start's flags and environment.
	args []string
	env  []string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	waitErr error         // cmd.Wait's answer, set before exited is closed
}

// start starts the server on a free port and waits until /readyz is 200.
// It returns how long that took.
func (s *crashServer) start() time.Duration {
	s.t.Helper()
	for attempt := 1; ; attempt++ {
		addr := crashFreeAddr(s.t)
		s.starts++
		fmt.Fprintf(s.out, "--- start %d on %s ---\n", s.starts, addr)
		cmd := exec.Command(s.bin, append([]string{"serve", "--addr", addr, "--data", s.data, "--admin-token", crashAdminToken,
			"--buyer-rate", "0", "--address-rate", "0"}, s.args...)...)
		cmd.Env = append(crashChildEnv(), s.env...)
		cmd.Stdout, cmd.Stderr = s.out, s.out
		began := time.Now()
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("start %s: %v", s.bin, err)
		}
		exited := make(chan struct{})
		s.cmd, s.exited = cmd, exited
		go func() {
			s.waitErr = cmd.Wait()
			close(exited)
		}()
		if s.ready(addr) {
			s.base = "http://" + addr
			return time.Since(began)
		}
		select {
		case <-exited:
			s.cmd = nil
			// Another process may have taken the port between our probe and
			// the child's listen.
			if attempt < 3 && strings.Contains(s.out.tail(), "address already in use") {
				continue
			}
			s.t.Fatalf("onsale exited during start %d (%v) before /readyz answered 200; its output:\n%s", s.starts, s.waitErr, s.out.tail())
		default:
			s.t.Fatalf("onsale start %d: /readyz not 200 within %v; its output:\n%s", s.starts, crashReadyTimeout, s.out.tail())
		}
	}
}

// ready polls /readyz until it answers 200, the process exits or the
// deadline passes.
func (s *crashServer) ready(addr string) bool {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(crashReadyTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + addr + "/readyz")
		if err == nil {
			_, rerr := io.Copy(io.Discard, resp.Body)
			cerr := resp.Body.Close()
			if resp.StatusCode == 200 && rerr == nil && cerr == nil {
				return true
			}
		}
		select {
		case <-s.exited:
			return false
		case <-tick.C:
		}
	}
	return false
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *crashServer) kill() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		s.t.Errorf("onsale exited by itself before the kill (%v); its output:\n%s", s.waitErr, s.out.tail())
		s.cmd = nil
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("kill onsale: %v", err)
	}
	<-s.exited
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		s.t.Errorf("onsale did not die of SIGKILL: %v", s.cmd.ProcessState)
	}
	s.cmd = nil
}

// stop kills the child if it still runs; it is the test's cleanup, so it
// also runs after a failure.
func (s *crashServer) stop() {
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("kill onsale at cleanup: %v", err)
	}
	<-s.exited
	s.cmd = nil
}

// crashAddrsGiven are the ports crashFreeAddr handed out in this process:
// a port closed after the probe may come back from the next probe, and two
// nodes of one cluster given the same address never start.
var crashAddrsGiven = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// crashFreeAddr finds a free port on the loopback interface, one it has not
// handed out before.
func crashFreeAddr(t *testing.T) string {
	t.Helper()
	crashAddrsGiven.Lock()
	defer crashAddrsGiven.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatalf("close probe listener: %v", err)
		}
		if !crashAddrsGiven.m[addr] {
			crashAddrsGiven.m[addr] = true
			return addr
		}
	}
	t.Fatal("find a free port: 100 probes gave ports handed out already")
	return ""
}

// crashChildEnv is the test's environment without ONSALE_* variables, so
// that only the flags configure the child.
func crashChildEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "ONSALE_") })
}

// crashLog keeps the last crashLogBytesMax bytes of the child's output.
type crashLog struct {
	mu sync.Mutex
	b  []byte
}

const crashLogBytesMax = 64 << 10 // enough for the last start's log and some before it

func (l *crashLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if over := len(l.b) - crashLogBytesMax; over > 0 {
		l.b = append(l.b[:0], l.b[over:]...)
	}
	return len(p), nil
}

func (l *crashLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
