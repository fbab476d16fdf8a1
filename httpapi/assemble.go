package httpapi

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"onsale/actors"
	"onsale/actors/line"
	"onsale/wal"
	"onsale/wal/raftlog"

	"github.com/valyala/fasthttp"
)

// Options are everything a running onsale is made of: where it listens and
// keeps its log, its secrets, its limits and its payment gateway. `onsale
// serve`, the in-process server of `onsale bench` and the HTTP tests all
// start through Start with these, so that a rehearsal runs what serve runs.
type Options struct {
	Addr     string       // listen address; ignored when Listener is set
	Listener net.Listener // optional: serve on this one
	Dir      string       // data directory: log, snapshots, keys

	// AdminToken and SigningKey: when SigningKey is empty both come from (or
	// are made in) Dir, AdminToken overriding the stored token if set.
	AdminToken string
	SigningKey []byte

	BuyerRate   int // requests/s per buyer before 429; 0: no limit
	AddressRate int // requests/s per client address without a buyer; 0: no limit
	// ConnsPerAddress caps one client address's open connections.
	ConnsPerAddress int

	PaymentLatency     time.Duration // built-in simulator: latency of each call
	PaymentFailureRate float64       // built-in simulator: share of calls that fail
	PaymentSlots       int           // payment calls in flight at most
	Gateway            Gateway       // optional: this gateway, whatever Payments says

	// Payments names the gateway: PaymentsSimulator ("" too) or
	// PaymentsStripe, which needs StripeKey (STRIPE_SECRET_KEY; never a
	// flag, so that it stays out of ps and shell history).
	Payments      string
	StripeKey     string
	StripeAPIBase string // "" for Stripe itself; stripe-mock in tests
	// PaymentJournal: the built-in simulator keeps every charge and refund
	// in this file (JSON lines, fsynced) and reads it back at start, so it
	// remembers keys across restarts as a real provider does; the crash
	// tests read it as the provider's own record. "" for none.
	PaymentJournal string
	// AtStep is called at each step of a checkout and a cancel (see
	// actors.Config.AtStep): the crash tests stop the process there.
	AtStep func(step string)

	NoSync bool // skip fsync: experiments only
	// HoldRetention is how long a released or expired hold stays readable
	// after it ends before it is dropped from memory; 0: the engine's
	// default. At least actors.HoldRetentionMin.
	HoldRetention time.Duration
	// PollBudget is the polls/s a sale's whole line may cause.
	PollBudget float64
	// SnapshotRecords is how many log records go between snapshots; 0:
	// the engine's default.
	SnapshotRecords uint64

	Logger  *slog.Logger
	Now     func() time.Time // tests: a fake clock for engine and server
	OnFatal func(error)      // optional: also told of a fatal engine error
	// LogFS is the file layer of the log's writes; nil: the real one. Tests
	// pass a wal.FaultFS to make the disk full or stuck.
	LogFS wal.FS
	// Alerts are the alert thresholds and webhook (zero: AlertDefaults).
	Alerts AlertOptions

	// The cluster mode: all three set, or none (one node).
	NodeID   string // this node's id in Peers
	RaftAddr string // this node's Raft address; must match Peers
	Peers    string // id=host:port,... the same on every node
	// RaftTrailingLogs is how many Raft entries are kept behind a
	// snapshot for followers that lag (0: the library's 10240).
	RaftTrailingLogs uint64
	// RaftLogStore is raftlog.Config.LogStore.
	RaftLogStore string
	// Rejoin is raftlog.Config.Rejoin: a member that lost its data
	// directory comes back without bootstrapping.
	Rejoin bool
}

// AddClusterFlags registers a cluster node's identity (--node-id,
// --raft-addr, --peers, --rejoin): serve's alone, since the bench starts
// its own nodes.
func (o *Options) AddClusterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeID, "node-id", o.NodeID, "cluster mode: this node's id in --peers")
	fs.StringVar(&o.RaftAddr, "raft-addr", o.RaftAddr, "cluster mode: this node's Raft address (host:port), as listed in --peers")
	fs.StringVar(&o.Peers, "peers", o.Peers, "cluster mode: every node as id=host:port (their Raft addresses), the same list on every node, e.g. n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003")
	fs.BoolVar(&o.Rejoin, "rejoin", o.Rejoin, "cluster mode: this member lost its data directory (or it was emptied to repair it): start empty without bootstrapping, catch up from the leader, and vote in no election until caught up; ignored when the directory holds the node's Raft state")
}

// AddFlags registers the options that serve and bench share, under the same
// names, with their environment defaults already in o.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.BuyerRate, "buyer-rate", o.BuyerRate, "requests per second per buyer before 429 (0: no limit)")
	fs.IntVar(&o.AddressRate, "address-rate", o.AddressRate, "requests per second per client address without a buyer identity before 429 (0: no limit)")
	fs.IntVar(&o.ConnsPerAddress, "max-conns-per-address", o.ConnsPerAddress, "open connections one client address may hold (a carrier NAT hides thousands of buyers)")
	fs.DurationVar(&o.PaymentLatency, "payment-latency", o.PaymentLatency, "built-in payment simulator: latency of each call")
	fs.Float64Var(&o.PaymentFailureRate, "payment-failure-rate", o.PaymentFailureRate, "built-in payment simulator: share of calls that fail as gateway errors (0..1)")
	fs.StringVar(&o.Payments, "payments", o.Payments, "payment gateway: simulator (built in) or stripe (needs STRIPE_SECRET_KEY)")
	fs.StringVar(&o.StripeAPIBase, "stripe-api-base", o.StripeAPIBase, "with --payments stripe: the API's base URL, e.g. a local stripe-mock (default: Stripe's)")
	fs.StringVar(&o.PaymentJournal, "payment-journal", o.PaymentJournal, "built-in payment simulator: keep every charge and refund in this file and remember them across restarts (tests, rehearsals)")
	fs.IntVar(&o.PaymentSlots, "payment-slots", o.PaymentSlots, "payment calls in flight at most (the bulkhead)")
	fs.Float64Var(&o.PollBudget, "poll-budget", o.PollBudget, "polls per second a sale's whole waiting line may cause: poll_after_s grows with the position to keep it so")
	fs.Uint64Var(&o.SnapshotRecords, "snapshot-records", o.SnapshotRecords, fmt.Sprintf("log records between snapshots of the state (0: %d); fewer make recovery and a cluster's takeover faster and cost more writes", actors.SnapshotRecordsDefault))
	fs.DurationVar(&o.HoldRetention, "hold-retention", o.HoldRetention, "how long a released or expired hold stays readable (and its Idempotency-Key answer) before it is dropped from memory, at least 24h (orders are always kept)")
	a := &o.Alerts
	fs.StringVar(&a.Webhook, "alert-webhook", a.Webhook, "POST every alert transition here as JSON (a Slack incoming webhook works); ONSALE_ALERT_WEBHOOK keeps it out of ps")
	fs.StringVar(&a.DashboardURL, "alert-dashboard-url", a.DashboardURL, "the dashboard's public address, linked from webhook alerts (e.g. https://tickets.example/dashboard)")
	fs.Float64Var(&a.HTTP5xxRate, "alert-5xx-rate", a.HTTP5xxRate, "alert when this share of requests is answered 5xx (0..1; negative: off)")
	fs.DurationVar(&a.HoldP99, "alert-hold-p99", a.HoldP99, "alert when the p99 of placing a hold is over this (negative: off)")
	fs.Float64Var(&a.PaymentErrors, "alert-payment-errors", a.PaymentErrors, "alert when this share of payment gateway calls fails (0..1; negative: off)")
	fs.DurationVar(&a.PaymentP99, "alert-payment-p99", a.PaymentP99, "alert when the p99 of a payment gateway call is over this (negative: off)")
	fs.DurationVar(&a.LineStuck, "alert-line-stuck", a.LineStuck, "alert when people wait in a sale's line and nobody is admitted this long, the sale neither paused nor sold out (negative: off)")
	fs.DurationVar(&a.FsyncP99, "alert-fsync-p99", a.FsyncP99, "alert when the p99 of a log write and fsync is over this (negative: off)")
	fs.Float64Var(&a.DiskFreeMiB, "alert-disk-free", a.DiskFreeMiB, "alert when the data directory's disk has less free space than this, in MiB (negative: off)")
	fs.Float64Var(&a.RateLimited, "alert-rate-limited", a.RateLimited, "alert when this share of requests is refused 429 (0..1; negative: off)")
	fs.Float64Var(&a.ClusterLag, "alert-cluster-lag", a.ClusterLag, "cluster mode: alert when a member is unreachable, not following, or trails the leader by more than this many log entries (negative: off)")
	fs.Uint64Var(&o.RaftTrailingLogs, "raft-trailing-logs", o.RaftTrailingLogs, "cluster mode: Raft log entries kept behind a snapshot, so that a follower lagging by fewer catches up from the log instead of a copy of the snapshot (0: 10240)")
	fs.StringVar(&o.RaftLogStore, "raft-log-store", o.RaftLogStore, "cluster mode: where Raft's log is kept: wal (segment files, one fsync a batch; the default for a new data directory) or bolt (raft-boltdb); a data directory keeps the one it began with")
	fs.BoolVar(&o.NoSync, "unsafe-no-fsync", o.NoSync, "skip fsync: acknowledged writes can be lost on a crash; for experiments only")
}

// Payment gateways that --payments names.
const (
	PaymentsSimulator = "simulator"
	PaymentsStripe    = "stripe"
)

// DefaultOptions are serve's defaults, with the Stripe key from the
// environment.
func DefaultOptions() Options {
	return Options{
		Addr: ":8080", Dir: "./data",
		BuyerRate: BuyerRateDefault, AddressRate: AddressRateDefault, PaymentSlots: GatewaySlotsDefault,
		ConnsPerAddress: ConnsPerAddressDefault, PollBudget: line.PollBudgetDefault,
		Payments: PaymentsSimulator, StripeKey: os.Getenv("STRIPE_SECRET_KEY"),
		HoldRetention: actors.HoldRetentionDefault,
		Alerts:        AlertDefaults,
	}
}

// Check says what is wrong with the options, in the flags' words.
func (o *Options) Check() error {
	if o.PaymentFailureRate < 0 || o.PaymentFailureRate > 1 {
		return errors.New("--payment-failure-rate must be between 0 and 1")
	}
	if o.PollBudget < 0 || o.PollBudget > line.PollBudgetMax {
		return fmt.Errorf("--poll-budget must be between 1 and %d polls/s (0: %d)", line.PollBudgetMax, line.PollBudgetDefault)
	}
	if o.HoldRetention != 0 && o.HoldRetention < actors.HoldRetentionMin {
		return fmt.Errorf("--hold-retention must be at least %s: Idempotency-Key answers are kept that long, and a hold's is rebuilt from the hold after a restart", actors.HoldRetentionMin)
	}
	if o.PaymentLatency < 0 {
		return errors.New("--payment-latency must not be negative")
	}
	switch o.Payments {
	case "", PaymentsSimulator:
	case PaymentsStripe:
		if o.Gateway == nil && o.StripeKey == "" {
			return errors.New("--payments stripe needs the secret key in STRIPE_SECRET_KEY (sk_test_… for tests)")
		}
	default:
		return fmt.Errorf("--payments must be %s or %s, not %q", PaymentsSimulator, PaymentsStripe, o.Payments)
	}
	if o.StripeAPIBase != "" && o.Payments != PaymentsStripe {
		return errors.New("--stripe-api-base is for --payments stripe")
	}
	if o.Rejoin && o.NodeID == "" {
		return errors.New("--rejoin is for a cluster node: give it with --node-id, --raft-addr and --peers")
	}
	if o.NodeID != "" || o.Peers != "" || o.RaftAddr != "" {
		if o.NodeID == "" || o.Peers == "" {
			return errors.New("a cluster node needs --node-id and --peers (and the same --admin-token on every node)")
		}
		if _, err := o.splitCluster(); err != nil {
			return err
		}
		if o.AdminToken == "" {
			return errors.New("a cluster node needs --admin-token (or ONSALE_ADMIN_TOKEN), the same on every node")
		}
		if o.NoSync {
			return errors.New("--unsafe-no-fsync is for one node only")
		}
	}
	if err := o.Alerts.check(); err != nil {
		return err
	}
	if o.BuyerRate < 0 || o.AddressRate < 0 || o.PaymentSlots < 0 || o.ConnsPerAddress < 0 {
		return errors.New("--buyer-rate, --address-rate, --payment-slots and --max-conns-per-address must not be negative")
	}
	return nil
}

// Running is a started server: HTTP listening, engine recovered and in use.
type Running struct {
	Server  *Server
	Engine  *actors.Engine
	Addr    string  // the address actually listened on
	Secrets Secrets // the admin token and signing key in force
	// Fatal receives the engine's fatal error, once: the caller must stop.
	Fatal <-chan error
	// Recovery is how long recovery from the log took.
	Recovery time.Duration

	served   chan struct{} // closed when the HTTP server has returned
	serveErr error         // what it returned; read after served is closed
}

// Start listens first (so /healthz answers and the API says 503 recovering
// while the log is replayed), then recovers the engine and makes the server
// ready.
func Start(o Options) (*Running, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	sec := Secrets{AdminToken: o.AdminToken, SigningKey: o.SigningKey}
	if len(sec.SigningKey) == 0 {
		var err error
		if sec, err = LoadSecrets(o.Dir, o.AdminToken); err != nil {
			return nil, fmt.Errorf("load keys from %q: %w", o.Dir, err)
		}
	}
	gw := o.Gateway
	switch {
	case gw != nil:
	case o.Payments == PaymentsStripe:
		sg, err := NewStripe(StripeConfig{Key: o.StripeKey, APIBase: o.StripeAPIBase, Logger: o.Logger})
		if err != nil {
			return nil, err
		}
		gw = sg
	default:
		sim := &Simulator{Latency: o.PaymentLatency, FailureRate: o.PaymentFailureRate}
		if o.PaymentJournal != "" {
			if err := sim.OpenJournal(o.PaymentJournal); err != nil {
				return nil, err
			}
		}
		gw = sim
	}
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", o.Addr); err != nil {
			return nil, fmt.Errorf("listen on %s: %w (is another server running? choose another with --addr)", o.Addr, err)
		}
	}
	if o.Alerts.Webhook != "" && o.Alerts.DashboardURL == "" {
		o.Alerts.DashboardURL = defaultDashboardURL(ln.Addr())
	}
	m := NewMetrics()
	srv := New(Config{
		AdminToken: sec.AdminToken, SigningKey: sec.SigningKey,
		Gateway: gw, GatewaySlots: o.PaymentSlots,
		BuyerRate: o.BuyerRate, AddressRate: o.AddressRate, ConnsPerAddress: o.ConnsPerAddress,
		Logger: o.Logger, Metrics: m, Now: o.Now,
		Alerts: o.Alerts, DataDir: o.Dir,
	})
	limit, conns := connectionsCap()
	o.Logger.Info("connection caps", "caps", describeCaps(limit, conns, srv.cfg.ConnsPerAddress))
	r := &Running{Server: srv, Addr: ln.Addr().String(), Secrets: sec, served: make(chan struct{})}
	fatal := make(chan error, 1)
	r.Fatal = fatal
	if o.NodeID != "" {
		// Joined before serving: every request sees the node.
		if err := r.startCluster(o, m, fatal); err != nil {
			ln.Close()
			return nil, err
		}
	}
	go func() {
		r.serveErr = srv.Serve(ln)
		close(r.served)
	}()
	if c := srv.cluster; c != nil {
		go c.run()
		go c.watchWrites(raftWriteStallMax, c.node.WriteStalled)
		return r, nil
	}
	start := time.Now()
	eng, err := actors.Open(actors.Config{
		Dir: o.Dir, NoSync: o.NoSync, Logger: o.Logger, Now: o.Now, OnBatch: m.OnBatch, PollBudget: o.PollBudget, LogFS: o.LogFS,
		HoldRetention: o.HoldRetention, SnapshotRecords: o.SnapshotRecords,
		// The server's own bulkhead: payments left open by the last run are
		// finished through the same gateway and limits as live ones.
		Payer: srv.pay, AtStep: o.AtStep,
		Fatal: func(err error) {
			if o.OnFatal != nil {
				o.OnFatal(err)
			}
			select {
			case fatal <- err:
			default:
			}
		},
	})
	if err != nil {
		if cerr := srv.Shutdown(time.Second); cerr != nil {
			o.Logger.Warn("http shutdown after a failed recovery", "err", cerr)
		}
		<-r.served
		return nil, fmt.Errorf("recover from %q: %w", o.Dir, err)
	}
	r.Engine, r.Recovery = eng, time.Since(start)
	owed := eng.RefundsOwed
	m.refundsOwed.Store(&owed)
	srv.SetEngine(eng)
	return r, nil
}

// startCluster joins the cluster; the engine starts when this node leads.
func (r *Running) startCluster(o Options, m *Metrics, fatal chan error) error {
	peers, err := o.splitCluster()
	if err != nil {
		return err
	}
	if err := clusterDataDir(o.Dir); err != nil {
		return err
	}
	node, err := raftlog.Open(raftlog.Config{ID: o.NodeID, Peers: peers, Dir: filepath.Join(o.Dir, "raft"),
		StateDir: filepath.Join(o.Dir, "snap"), TrailingLogs: o.RaftTrailingLogs, LogStore: o.RaftLogStore, Rejoin: o.Rejoin, Logger: o.Logger})
	if err != nil {
		return err
	}
	srv := r.Server
	c := &cluster{
		s: srv, node: node, self: r.Addr, proof: clusterProof(r.Secrets.AdminToken), key: r.Secrets.SigningKey, log: o.Logger,
		clients: map[string]*fasthttp.HostClient{}, fatal: fatal, confirm: newConfirmer(),
		poke: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		engine: func() actors.Config {
			return actors.Config{
				Dir: o.Dir, Logger: o.Logger, Now: o.Now, OnBatch: m.OnBatch, PollBudget: o.PollBudget,
				HoldRetention: o.HoldRetention, SnapshotRecords: o.SnapshotRecords, Payer: srv.pay, AtStep: o.AtStep,
			}
		},
	}
	srv.cluster = c
	c.gauges(m)
	confirm := func(epoch uint64) error {
		if !c.confirmed(epoch) {
			return errNotConfirmed
		}
		return nil
	}
	srv.pay.confirm.Store(&confirm)
	owed := func() int64 {
		if e := c.eng.Load(); e != nil {
			return e.RefundsOwed()
		}
		return 0
	}
	m.refundsOwed.Store(&owed)
	return nil
}

// CurrentEngine is the engine that decides now: on a cluster node, nil
// unless it leads.
func (r *Running) CurrentEngine() *actors.Engine {
	if c := r.Server.cluster; c != nil && !c.leading.Load() {
		return nil
	}
	return r.Server.eng.Load()
}

// Served is closed when the HTTP server stops serving; ServeErr says why.
func (r *Running) Served() <-chan struct{} { return r.served }

// ServeErr is what the HTTP server returned; call it after Served is closed.
func (r *Running) ServeErr() error { return r.serveErr }

// Close stops in order: HTTP first (streams end, requests in flight finish
// within timeout), then the actors, then the log is drained and closed.
func (r *Running) Close(timeout time.Duration) error {
	var errs []error
	if err := r.Server.Shutdown(timeout); err != nil {
		errs = append(errs, err)
	}
	<-r.served
	if r.serveErr != nil {
		errs = append(errs, fmt.Errorf("serve: %w", r.serveErr))
	}
	if c := r.Server.cluster; c != nil {
		close(c.stop)
		<-c.stopped
		if err := c.node.Close(); err != nil {
			errs = append(errs, fmt.Errorf("leave the cluster: %w", err))
		}
	} else if err := r.Engine.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close log: %w", err))
	}
	return errors.Join(errs...)
}

// check says what is wrong with the alert options.
func (a *AlertOptions) check() error {
	for _, f := range []struct {
		flag string
		v    float64
	}{{"--alert-5xx-rate", a.HTTP5xxRate}, {"--alert-payment-errors", a.PaymentErrors}, {"--alert-rate-limited", a.RateLimited}} {
		if f.v > 1 {
			return fmt.Errorf("%s is a share of requests: at most 1 (negative: off)", f.flag)
		}
	}
	if a.Webhook != "" {
		u, err := url.Parse(a.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("--alert-webhook must be an http:// or https:// URL")
		}
	}
	return nil
}

// defaultDashboardURL is the dashboard's address as this host names itself,
// for webhook alerts when --alert-dashboard-url is not given.
func defaultDashboardURL(addr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	port := "80"
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(ta.Port)
	}
	return "http://" + net.JoinHostPort(host, port) + "/dashboard"
}
