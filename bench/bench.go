package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"runtime/pprof"
	"time"

	"onsale/actors"
	"onsale/httpapi"
)

// Options are the bench's flags.
type Options struct {
	Target      string // base URL of a running server; empty: start one in-process
	AdminToken  string
	Data        string // in-process server's data directory; empty: a temporary one
	Mode        string // "sale" or "holds"
	Buyers      int
	Seats       int
	Conns       int
	Duration    time.Duration // holds mode
	Abandon     float64
	Decline     float64
	ActiveLimit int
	AdmitPerS   int
	HoldTTL     int
	AccessTTL   int
	PollCap     time.Duration
	Timeout     time.Duration
	CPUProfile  string
	Out         io.Writer
}

// Main runs `onsale bench` with command-line arguments.
func Main(args []string) error {
	o := Options{Out: os.Stdout}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.Target, "target", "", "base URL of a running onsale (e.g. http://127.0.0.1:8080); empty starts one in-process")
	fs.StringVar(&o.AdminToken, "admin-token", os.Getenv("ONSALE_ADMIN_TOKEN"), "admin token of --target (ONSALE_ADMIN_TOKEN)")
	fs.StringVar(&o.Data, "data", "", "data directory of the in-process server (default: a temporary one, removed after)")
	fs.StringVar(&o.Mode, "mode", "sale", "sale: a whole on-sale (line, holds, payments); holds: hold throughput against a no-op HTTP ceiling")
	fs.IntVar(&o.Buyers, "buyers", 5000, "sale mode: buyers arriving in the burst")
	fs.IntVar(&o.Seats, "seats", 1000, "sale mode: seats on sale (one general-admission zone)")
	fs.IntVar(&o.Conns, "conns", 256, "keep-alive connections")
	fs.DurationVar(&o.Duration, "duration", 5*time.Second, "holds mode: how long each phase runs")
	fs.Float64Var(&o.Abandon, "abandon", 0.1, "sale mode: share of buyers who hold and walk away")
	fs.Float64Var(&o.Decline, "decline", 0.05, "sale mode: share of checkouts declined first (retried with another card)")
	fs.IntVar(&o.ActiveLimit, "active-limit", 500, "sale mode: buyers shopping at once")
	fs.IntVar(&o.AdmitPerS, "admit-per-s", 0, "sale mode: admissions per second (0: automatic)")
	fs.IntVar(&o.HoldTTL, "hold-ttl", 30, "sale mode: hold lifetime in seconds")
	fs.IntVar(&o.AccessTTL, "access-ttl", 60, "sale mode: how long an admitted buyer may shop, in seconds")
	fs.DurationVar(&o.PollCap, "poll-cap", 2*time.Second, "sale mode: wait at most this long between polls, even if the server says later")
	fs.DurationVar(&o.Timeout, "timeout", 3*time.Minute, "give up after this long")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run (server and load generator when in-process) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Run(o)
}

// Run runs the bench.
func Run(o Options) error {
	if o.Conns < 1 || o.Buyers < 1 || o.Seats < 1 {
		return errors.New("--conns, --buyers and --seats must be at least 1")
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	addr, admin, stop, err := o.server()
	if err != nil {
		return err
	}
	defer stop()
	c := newClient(addr, admin, o.Conns)
	switch o.Mode {
	case "sale":
		return runSale(o, c)
	case "holds":
		return runHolds(o, c)
	}
	return fmt.Errorf("unknown --mode %q: use sale or holds", o.Mode)
}

// server returns the address to load: --target, or an in-process server on
// loopback with fsync on and rate limits off (one load generator plays
// every buyer from one address).
func (o Options) server() (addr, admin string, stop func(), err error) {
	if o.Target != "" {
		u, err := url.Parse(o.Target)
		if err != nil || u.Host == "" {
			return "", "", nil, fmt.Errorf("--target %q is not a URL such as http://127.0.0.1:8080", o.Target)
		}
		if o.AdminToken == "" {
			return "", "", nil, errors.New("--target needs --admin-token (or ONSALE_ADMIN_TOKEN) to create the bench sale")
		}
		return u.Host, o.AdminToken, func() {}, nil
	}
	dir := o.Data
	cleanup := func() {}
	if dir == "" {
		dir, err = os.MkdirTemp("", "onsale-bench-")
		if err != nil {
			return "", "", nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := actors.Open(actors.Config{Dir: dir, Logger: logger})
	if err != nil {
		cleanup()
		return "", "", nil, err
	}
	admin = "bench-admin"
	srv := httpapi.New(httpapi.Config{AdminToken: admin, SigningKey: []byte("bench-signing-key-bench-signing"), Logger: logger})
	srv.SetEngine(eng)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		cleanup()
		return "", "", nil, err
	}
	go srv.Serve(ln)
	return ln.Addr().String(), admin, func() {
		srv.Shutdown(5 * time.Second)
		eng.Close()
		cleanup()
	}, nil
}
