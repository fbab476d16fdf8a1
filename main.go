// Command onsale runs high-demand ticket on-sales: a fair virtual line,
// seat holds that expire, payments, and a durable log that survives kill -9.
//
//	onsale serve [--addr :8080] [--data ./data] [--admin-token T] [--demo file.json]
//	onsale bench [flags]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"onsale/actors"
	"onsale/bench"
	"onsale/httpapi"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "bench":
		err = bench.Main(os.Args[2:])
	case "help", "-h", "--help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "onsale: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // -h: the flags were printed as asked
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "onsale:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  onsale serve [flags]   run the server (onsale serve -h for flags)
  onsale bench [flags]   simulate a whole on-sale over HTTP and report (onsale bench -h)
`)
}

// env returns the ONSALE_* variable for a flag, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func serve(args []string) error {
	o := httpapi.DefaultOptions()
	o.Addr = env("ONSALE_ADDR", o.Addr)
	o.Dir = env("ONSALE_DATA", o.Dir)
	o.AdminToken = env("ONSALE_ADMIN_TOKEN", "")
	o.BuyerRate = envInt("ONSALE_BUYER_RATE", o.BuyerRate)
	o.AddressRate = envInt("ONSALE_ADDRESS_RATE", o.AddressRate)
	// A Slack webhook's URL is its secret: the environment keeps it out of
	// ps and shell history.
	o.Alerts.Webhook = env("ONSALE_ALERT_WEBHOOK", o.Alerts.Webhook)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&o.Addr, "addr", o.Addr, "listen address (ONSALE_ADDR)")
	fs.StringVar(&o.Dir, "data", o.Dir, "data directory: log, snapshots, keys (ONSALE_DATA)")
	fs.StringVar(&o.AdminToken, "admin-token", o.AdminToken, "admin bearer token (ONSALE_ADMIN_TOKEN); made and kept in the data directory if empty")
	demo := fs.String("demo", env("ONSALE_DEMO", ""), "a sale definition (JSON) to create at start if no sale with its id exists (ONSALE_DEMO)")
	o.AddFlags(fs)
	o.AddClusterFlags(fs)
	verbose := fs.Bool("v", false, "debug logging")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the server stops (diagnostics)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.Check(); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.NodeID != "" {
		// Several nodes may log to one place (make cluster, a collector).
		logger = logger.With("node", o.NodeID)
	}
	o.Logger = logger
	if step := os.Getenv("ONSALE_CRASH_AT"); step != "" {
		// Crash tests only: die as kill -9 would at that step of a
		// checkout or cancel, to test what a restart makes of it.
		o.AtStep = func(at string) {
			if at == step {
				if err := syscall.Kill(os.Getpid(), syscall.SIGKILL); err != nil {
					panic("ONSALE_CRASH_AT: " + err.Error())
				}
				select {} // the signal is on its way
			}
		}
	}

	// The demo sale is read first: a start that fails on it must not spend
	// the one showing of a new admin token.
	var demoDef *actors.SaleDef
	if *demo != "" {
		def, err := readDemo(*demo)
		if err != nil {
			return err
		}
		demoDef = def
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %q: %w (choose another with --data)", o.Dir, err)
	}
	logger.Info("starting; recovering state from the log", "addr", o.Addr, "data", o.Dir)
	run, err := httpapi.Start(o)
	if err != nil {
		return err
	}
	if run.Secrets.NewAdminToken {
		fmt.Fprintf(os.Stderr, "admin token (kept in %s/admin-token; shown only now): %s\n", o.Dir, run.Secrets.AdminToken)
	} else if o.AdminToken == "" {
		logger.Info("the admin token is the one kept in the data directory", "file", filepath.Join(o.Dir, "admin-token"))
	}
	if eng := run.Engine; eng != nil {
		logger.Info("ready", "addr", run.Addr, "recovery", run.Recovery.Round(time.Millisecond), "sales", len(eng.Sales()), "log_seq", eng.LogSeq())
		if demoDef != nil {
			if err := createDemo(eng, *demoDef, *demo, run.Addr, logger); err != nil {
				return errors.Join(err, run.Close(10*time.Second))
			}
		}
	} else {
		logger.Info("cluster node started; the engine runs on the leader", "addr", run.Addr, "raft", o.RaftAddr)
		if demoDef != nil {
			go demoWhenLeading(run, *demoDef, *demo, logger)
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var runErr error
	select {
	case s := <-sig:
		logger.Info("shutting down", "signal", s.String())
	case err := <-run.Fatal:
		// Exit at once: what was acknowledged is in the log, and a restart
		// recovers it; going on could acknowledge what is not durable.
		logger.Error("fatal", "err", err)
		return fmt.Errorf("stopped on a fatal error: %w (restart onsale; it recovers from the log)", err)
	case <-run.Served():
		runErr = fmt.Errorf("http server: %w", run.ServeErr())
	}
	return errors.Join(runErr, run.Close(10*time.Second))
}

// demoWhenLeading creates the demo sale once this cluster node leads (each
// node tries; the sale is created once, the others find it).
func demoWhenLeading(run *httpapi.Running, def actors.SaleDef, path string, logger *slog.Logger) {
	for {
		select {
		case <-run.Served():
			return
		case <-time.After(200 * time.Millisecond):
		}
		if eng := run.CurrentEngine(); eng != nil {
			if err := createDemo(eng, def, path, run.Addr, logger); err != nil {
				logger.Warn("demo sale", "err", err)
				continue
			}
			return
		}
	}
}

// readDemo reads the sale definition in path.
func readDemo(path string) (*actors.SaleDef, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--demo: read the demo sale: %w", err)
	}
	var def actors.SaleDef
	if err := json.Unmarshal(b, &def); err != nil {
		return nil, fmt.Errorf("--demo: %s is not a sale definition (JSON, as POST /v1/sales takes): %w", path, err)
	}
	return &def, nil
}

// createDemo creates the sale def (read from path) unless it exists.
func createDemo(eng *actors.Engine, def actors.SaleDef, path, addr string, logger *slog.Logger) error {
	if _, ok := eng.Sale(def.ID); ok {
		logger.Info("demo sale exists", "sale", def.ID)
		return nil
	}
	if _, e := eng.CreateSale(def); e != nil {
		return fmt.Errorf("create demo sale from %s: %s", path, e.Message)
	}
	logger.Info("demo sale created", "sale", def.ID, "try", "curl -s http://"+addr+"/v1/sales/"+def.ID)
	return nil
}
