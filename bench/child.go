package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// childStartMax is how long a started server may take to say it is ready:
// recovery of an empty data directory takes milliseconds.
const childStartMax = 30 * time.Second

// startChild runs `o.Exe serve` on a free loopback port with o.Server's
// flags and waits for its "ready" line, which names the address.
func startChild(o Options, dir, admin string, extra ...string) (*server, error) {
	so := o.Server
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--admin-token", admin,
		"--buyer-rate", strconv.Itoa(so.BuyerRate), "--address-rate", strconv.Itoa(so.AddressRate),
		"--payment-latency", so.PaymentLatency.String(),
		"--payment-failure-rate", strconv.FormatFloat(so.PaymentFailureRate, 'g', -1, 64),
		"--payment-slots", strconv.Itoa(so.PaymentSlots), "--max-conns-per-address", strconv.Itoa(so.ConnsPerAddress),
		"--poll-budget", strconv.FormatFloat(so.PollBudget, 'g', -1, 64)}
	if so.NoSync {
		args = append(args, "--unsafe-no-fsync")
	}
	if so.SnapshotRecords != 0 {
		args = append(args, "--snapshot-records", strconv.FormatUint(so.SnapshotRecords, 10))
	}
	// The Stripe key is not a flag: the child inherits STRIPE_SECRET_KEY.
	if so.Payments != "" {
		args = append(args, "--payments", so.Payments)
	}
	if so.StripeAPIBase != "" {
		args = append(args, "--stripe-api-base", so.StripeAPIBase)
	}
	if o.ServerCPUProfile != "" {
		args = append(args, "--cpuprofile", o.ServerCPUProfile)
	}
	args = append(args, extra...)
	cmd := exec.Command(o.Exe, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the server (%s serve): %w", o.Exe, err)
	}
	ready := make(chan string, 1)
	var tail []string
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if addr, ok := readyAddr(line); ok {
				select {
				case ready <- addr:
				default:
				}
				continue
			}
			if len(tail) < 20 {
				tail = append(tail, line)
			}
			// The Raft library's own lines (a peer the bench killed does
			// not answer, and the like) are left out: the bench causes
			// them, and the cluster's transitions show in "cluster:" lines.
			if strings.Contains(line, "lib=raft") {
				continue
			}
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") || strings.Contains(line, "cluster:") {
				fmt.Fprintln(os.Stderr, "server:", line)
			}
		}
		close(ready)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			fmt.Fprintf(os.Stderr, "bench: stop the server: %v\n", err)
		}
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	select {
	case addr, ok := <-ready:
		if ok {
			kill := func() {
				cmd.Process.Kill()
				<-exited
			}
			return &server{addr: addr, admin: admin, pid: cmd.Process.Pid, stop: stop, kill: kill}, nil
		}
		stop()
		return nil, fmt.Errorf("the server exited before it was ready: %s", strings.Join(tail, "; "))
	case <-time.After(childStartMax):
		stop()
		return nil, fmt.Errorf("the server was not ready within %s: %s", childStartMax, strings.Join(tail, "; "))
	}
}

// readyAddr finds the address in serve's "ready" log line (on a cluster
// node, the line that says it started).
func readyAddr(line string) (string, bool) {
	if !strings.Contains(line, "msg=ready") && !strings.Contains(line, `msg="cluster node started`) {
		return "", false
	}
	i := strings.Index(line, " addr=")
	if i < 0 {
		return "", false
	}
	addr, _, _ := strings.Cut(line[i+len(" addr="):], " ")
	return addr, addr != ""
}

// cpuSeconds is the CPU time (user + system) a process has used so far:
// this process when pid is 0.
func cpuSeconds(pid int) (float64, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, err
		}
		return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerS = 100 // USER_HZ on Linux
	return (ut + st) / ticksPerS, nil
}
