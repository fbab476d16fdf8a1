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
	"net"
	"os"
	"os/signal"
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
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	addr := fs.String("addr", env("ONSALE_ADDR", ":8080"), "listen address (ONSALE_ADDR)")
	dir := fs.String("data", env("ONSALE_DATA", "./data"), "data directory: log, snapshots, keys (ONSALE_DATA)")
	admin := fs.String("admin-token", env("ONSALE_ADMIN_TOKEN", ""), "admin bearer token (ONSALE_ADMIN_TOKEN); made and kept in the data directory if empty")
	demo := fs.String("demo", env("ONSALE_DEMO", ""), "a sale definition (JSON) to create at start if no sale with its id exists (ONSALE_DEMO)")
	buyerRate := fs.Int("buyer-rate", envInt("ONSALE_BUYER_RATE", httpapi.BuyerRateDefault), "requests per second per buyer before 429 (0: no limit)")
	addrRate := fs.Int("address-rate", envInt("ONSALE_ADDRESS_RATE", httpapi.AddressRateDefault), "requests per second per client address without a buyer identity before 429 (0: no limit)")
	payLatency := fs.Duration("payment-latency", 0, "built-in payment simulator: latency of each call")
	payFail := fs.Float64("payment-failure-rate", 0, "built-in payment simulator: share of calls that fail as gateway errors (0..1)")
	paySlots := fs.Int("payment-slots", httpapi.GatewaySlotsDefault, "payment calls in flight at most (the bulkhead)")
	noSync := fs.Bool("unsafe-no-fsync", false, "skip fsync: acknowledged writes can be lost on a crash; for experiments only")
	verbose := fs.Bool("v", false, "debug logging")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the server stops (diagnostics)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *payFail < 0 || *payFail > 1 {
		return fmt.Errorf("--payment-failure-rate must be between 0 and 1")
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

	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("create data directory %q: %w (choose another with --data)", *dir, err)
	}
	secrets, err := httpapi.LoadSecrets(*dir, *admin)
	if err != nil {
		return fmt.Errorf("load keys from %q: %w", *dir, err)
	}
	if secrets.NewAdminToken {
		fmt.Fprintf(os.Stderr, "admin token (kept in %s/admin-token; shown only now): %s\n", *dir, secrets.AdminToken)
	}
	metrics := httpapi.NewMetrics()
	srv := httpapi.New(httpapi.Config{
		AdminToken: secrets.AdminToken, SigningKey: secrets.SigningKey,
		Gateway:      &httpapi.Simulator{Latency: *payLatency, FailureRate: *payFail},
		GatewaySlots: *paySlots, BuyerRate: *buyerRate, AddressRate: *addrRate,
		Logger: logger, Metrics: metrics,
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running? choose another with --addr)", *addr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening; recovering state from the log", "addr", ln.Addr().String(), "data", *dir)

	fatal := make(chan error, 1)
	start := time.Now()
	eng, err := actors.Open(actors.Config{
		Dir: *dir, NoSync: *noSync, Logger: logger, OnBatch: metrics.OnBatch,
		Fatal: func(err error) {
			select {
			case fatal <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("recover from %q: %w", *dir, err)
	}
	srv.SetEngine(eng)
	logger.Info("ready", "recovery", time.Since(start).Round(time.Millisecond), "sales", len(eng.Sales()), "log_seq", eng.LogSeq())
	if *demo != "" {
		if err := createDemo(eng, *demo, ln.Addr().String(), logger); err != nil {
			return err
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var runErr error
	select {
	case s := <-sig:
		logger.Info("shutting down", "signal", s.String())
	case err := <-fatal:
		// Exit at once: what was acknowledged is in the log, and a restart
		// recovers it; going on could acknowledge what is not durable.
		runErr = fmt.Errorf("stopped on a fatal error: %w (restart onsale; it recovers from the log)", err)
		logger.Error("fatal", "err", err)
		return runErr
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}
	if err := srv.Shutdown(10 * time.Second); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	if err := eng.Close(); err != nil {
		return errors.Join(runErr, fmt.Errorf("close log: %w", err))
	}
	return runErr
}

// createDemo creates the sale in path unless it exists.
func createDemo(eng *actors.Engine, path, addr string, logger *slog.Logger) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read demo sale: %w", err)
	}
	var def actors.SaleDef
	if err := json.Unmarshal(b, &def); err != nil {
		return fmt.Errorf("demo sale %s: %w", path, err)
	}
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
