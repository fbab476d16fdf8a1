package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime/pprof"
	"time"

	"onsale/httpapi"
)

// Options are the bench's flags.
type Options struct {
	Target      string // base URL of a running server; empty: start one
	AdminToken  string
	Data        string // started server's data directory; empty: a temporary one
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
	PollCap     time.Duration // 0: wait as long as poll_after_s says
	Timeout     time.Duration
	Streams     int    // streams mode: event streams to hold open
	CPUProfile  string // the load generator's (and an in-process server's) profile
	JSON        bool   // sale mode: print the report as one JSON object
	HTML        string // sale mode: also write a self-contained report with charts here
	WaitStream  bool   // sale mode: buyers wait on the event stream, not by polling
	Out         io.Writer

	// Server is what the started server runs with: serve's own flags, under
	// serve's names (--payment-latency, --payment-slots, ...).
	Server httpapi.Options
	// Exe, when set, is an onsale binary: the server then runs as its own
	// process (`Exe serve`), so that its CPU is measured apart from the load
	// generator's. Empty: the server runs inside this process.
	Exe string
	// ServerCPUProfile is passed to the server process as --cpuprofile.
	ServerCPUProfile string
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	srv := httpapi.DefaultOptions()
	// One load generator plays every buyer from one address: the per-buyer
	// and per-address limits would refuse the rehearsal, not the crowd.
	srv.BuyerRate, srv.AddressRate = 0, 0
	return Options{
		Mode: "sale", Buyers: 5000, Seats: 1000, Conns: 512, Duration: 5 * time.Second,
		Abandon: 0.1, Decline: 0.05, ActiveLimit: 1_000_000, HoldTTL: 30, AccessTTL: 60,
		Timeout: 3 * time.Minute, Streams: 15_000, Out: os.Stdout, Server: srv,
	}
}

// Main runs `onsale bench` with command-line arguments.
func Main(args []string) error {
	o := DefaultOptions()
	o.AdminToken = os.Getenv("ONSALE_ADMIN_TOKEN")
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.Target, "target", "", "base URL of a running onsale (e.g. http://127.0.0.1:8080); empty starts one")
	fs.StringVar(&o.AdminToken, "admin-token", o.AdminToken, "admin token of --target (ONSALE_ADMIN_TOKEN)")
	fs.StringVar(&o.Data, "data", "", "data directory of the started server (default: a temporary one, removed after)")
	fs.StringVar(&o.Mode, "mode", o.Mode, "sale: a whole on-sale (line, holds, payments); holds: hold throughput against a no-op HTTP ceiling; polls: queue polls against a no-op GET ceiling; streams: --streams event streams held open; cluster: holds and polls through three nodes against one, and failover times")
	fs.IntVar(&o.Buyers, "buyers", o.Buyers, "sale mode: buyers arriving in the burst")
	fs.IntVar(&o.Seats, "seats", o.Seats, "sale mode: seats on sale (one general-admission zone)")
	fs.IntVar(&o.Conns, "conns", o.Conns, "keep-alive connections of the load generator")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "holds, polls, streams and cluster modes: how long each phase runs")
	fs.Float64Var(&o.Abandon, "abandon", o.Abandon, "sale mode: share of buyers who hold and walk away")
	fs.Float64Var(&o.Decline, "decline", o.Decline, "sale mode: share of checkouts declined first (retried with another card)")
	fs.IntVar(&o.ActiveLimit, "active-limit", o.ActiveLimit, "sale mode: the sale's waiting_room.active_limit, buyers shopping at once")
	fs.IntVar(&o.AdmitPerS, "admit-per-s", o.AdmitPerS, "sale mode: the sale's admissions per second (0: automatic)")
	fs.IntVar(&o.HoldTTL, "hold-ttl", o.HoldTTL, "sale mode: hold lifetime in seconds")
	fs.IntVar(&o.AccessTTL, "access-ttl", o.AccessTTL, "sale mode: how long an admitted buyer may shop, in seconds")
	fs.DurationVar(&o.PollCap, "poll-cap", 0, "sale mode: wait at most this long between polls (0: as poll_after_s says, like a real front end)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long")
	fs.IntVar(&o.Streams, "streams", o.Streams, "streams mode: event streams to hold open")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the load generator to this file")
	fs.StringVar(&o.ServerCPUProfile, "server-cpuprofile", "", "write a CPU profile of the started server to this file")
	fs.BoolVar(&o.JSON, "json", false, "sale mode: print the report as one JSON object (progress goes to stderr)")
	fs.BoolVar(&o.WaitStream, "stream", false, "sale mode: buyers wait for their admission on the event stream (one connection each, so at most about 15,000 buyers) instead of polling")
	fs.StringVar(&o.HTML, "html", "", "sale mode: also write a self-contained HTML report with charts to this file")
	inProcess := fs.Bool("in-process", false, "run the server inside the bench's process (one profile for both; no CPU split)")
	o.Server.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*inProcess && o.Target == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the onsale binary to start the server: %w (use --in-process)", err)
		}
		o.Exe = exe
	}
	return Run(o)
}

// Run runs the bench.
func Run(o Options) error {
	if o.Conns < 1 || o.Buyers < 1 || o.Seats < 1 {
		return errors.New("--conns, --buyers and --seats must be at least 1")
	}
	switch o.Mode {
	case "sale", "holds", "polls", "streams", "cluster":
	default:
		return fmt.Errorf("unknown --mode %q: use sale, holds, polls, streams or cluster", o.Mode)
	}
	if err := o.Server.Check(); err != nil {
		return err
	}
	if o.Out == nil {
		o.Out = os.Stdout
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
	if o.Mode == "cluster" {
		return runCluster(o)
	}
	srv, err := o.server()
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(srv.addr, srv.admin, o.Conns)
	switch o.Mode {
	case "holds":
		return runHolds(o, c)
	case "polls":
		return runPolls(o, c)
	case "streams":
		return runStreams(o, c, srv)
	}
	return runSale(o, c, srv)
}

// server is the server under load: --target, a child process, or one in
// this process.
type server struct {
	addr, admin string
	pid         int // a child process's; 0 otherwise
	stop        func()
	kill        func() // a child process's SIGKILL; nil otherwise
}

// server starts (or names) the server to load. A started one has fsync on
// and the rate limits of o.Server (off by default: one load generator plays
// every buyer from one address).
func (o Options) server() (*server, error) {
	if o.Target != "" {
		u, err := url.Parse(o.Target)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("--target %q is not a URL such as http://127.0.0.1:8080", o.Target)
		}
		if o.AdminToken == "" {
			return nil, errors.New("--target needs --admin-token (or ONSALE_ADMIN_TOKEN) to create the bench sale")
		}
		return &server{addr: u.Host, admin: o.AdminToken, stop: func() {}}, nil
	}
	dir := o.Data
	cleanup := func() {}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "onsale-bench-"); err != nil {
			return nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
	}
	const admin = "bench-admin-token"
	if o.Exe != "" {
		s, err := startChild(o, dir, admin)
		if err != nil {
			cleanup()
			return nil, err
		}
		stop := s.stop
		s.stop = func() { stop(); cleanup() }
		return s, nil
	}
	so := o.Server
	so.Addr, so.Dir, so.AdminToken = "127.0.0.1:0", dir, admin
	so.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	run, err := httpapi.Start(so)
	if err != nil {
		cleanup()
		return nil, err
	}
	return &server{addr: run.Addr, admin: run.Secrets.AdminToken, stop: func() {
		if err := run.Close(5 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "bench: stop the in-process server: %v\n", err)
		}
		cleanup()
	}}, nil
}
