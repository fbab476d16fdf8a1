package bench

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// streamsPerAddress is how many streams come from one loopback address.
const streamsPerAddress = 1000

// streamsIdleMin is the shortest idle window: one heartbeat interval and a
// little, so that the heartbeats are in the CPU figure.
const streamsIdleMin = 16 * time.Second

// runStreams holds o.Streams event streams open on a line waiting for its
// opening and reports what they cost the server: RSS per stream, CPU while
// nothing changes (heartbeats only), and join and hold latency in another
// sale meanwhile.
func runStreams(o Options, c *client, srv *server) error {
	n := o.Streams
	fmt.Fprintf(o.Out, "streams mode: %d event streams on a line waiting for its opening\n", n)
	stamp := time.Now().UnixNano()
	line, shop := fmt.Sprintf("bench-streams-%d", stamp), fmt.Sprintf("bench-shop-%d", stamp)
	opens := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	if err := createSales(c,
		map[string]any{"id": line, "opens_at": opens, "waiting_room": map[string]any{"active_limit": 1_000_000, "access_ttl_s": 3600},
			"zones": []any{map[string]any{"id": "ga", "capacity": 1_000_000}}},
		shopSale(shop)); err != nil {
		return err
	}
	ids, failed := joinMany(c, o.Conns, line, "join", "e", n)
	if failed > 0 {
		return fmt.Errorf("%d of %d buyers could not join", failed, n)
	}
	rss0, rssErr := rssBytes(srv.pid)

	// The streams: one raw connection each, read by its own goroutine.
	var first, events, beats atomic.Int64
	conns := make([]net.Conn, 0, n)
	var readers sync.WaitGroup
	openStart := time.Now()
	for i, id := range ids {
		// A crowd comes from many addresses: streamsPerAddress from each
		// loopback address 127.0.1.x, under the per-address cap.
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1+byte(i/streamsPerAddress/250), 1+byte(i/streamsPerAddress%250))}}
		if o.Target != "" {
			d.LocalAddr = nil // a remote server: the machine's own address
		}
		conn, err := d.Dial("tcp", srv.addr)
		if err != nil {
			closeAll(conns)
			return fmt.Errorf("open stream %d of %d: %v (the load generator's file limit is %s)", i+1, n, err, fileLimit())
		}
		if _, err := fmt.Fprintf(conn, "GET /v1/sales/%s/queue/%s/events HTTP/1.1\r\nHost: bench\r\n\r\n", line, id); err != nil {
			closeAll(conns)
			return fmt.Errorf("open stream %d: %v", i+1, err)
		}
		conns = append(conns, conn)
		readers.Add(1)
		go func() {
			defer readers.Done()
			br := bufio.NewReaderSize(conn, 512)
			seen := false
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				switch {
				case strings.HasPrefix(line, "data: "):
					events.Add(1)
					if !seen {
						seen = true
						first.Add(1)
					}
				case strings.HasPrefix(line, ": heartbeat"):
					beats.Add(1)
				}
			}
		}()
		if (i+1)%5000 == 0 {
			fmt.Fprintf(o.Out, "    … %d streams open\n", i+1)
		}
	}
	for first.Load() < int64(n) {
		if time.Since(openStart) > time.Minute {
			closeAll(conns)
			return fmt.Errorf("only %d of %d streams got their first event within a minute", first.Load(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(o.Out, "  %d streams open in %.1fs, each with its first event\n", n, time.Since(openStart).Seconds())

	// Idle: nothing changes in the line; the server sends heartbeats.
	idle := o.Duration
	if srv.pid != 0 {
		idle = max(idle, streamsIdleMin) // measured: include a heartbeat round
	}
	cpu0, cpuErr := cpuSeconds(srv.pid)
	ev0 := events.Load()
	time.Sleep(idle)
	cpu1, _ := cpuSeconds(srv.pid)
	rss1, _ := rssBytes(srv.pid)
	if srv.pid != 0 && cpuErr == nil && rssErr == nil {
		fmt.Fprintf(o.Out, "  server RSS %.0f MB with the line, %.0f MB with the streams: %.1f KB per stream\n",
			float64(rss0)/1e6, float64(rss1)/1e6, float64(rss1-rss0)/float64(n)/1e3)
		fmt.Fprintf(o.Out, "  server CPU while %d streams idle for %s: %.1f%% of a core (%d events, %d heartbeats)\n",
			n, idle, 100*(cpu1-cpu0)/idle.Seconds(), events.Load()-ev0, beats.Load())
	} else {
		fmt.Fprintf(o.Out, "  (the server is not a child of the bench: no RSS or CPU figures)\n")
	}

	// Beside the open streams: join and hold in the other sale.
	var wg sync.WaitGroup
	deadline := time.Now().Add(o.Duration)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline); k++ {
				var t ticket
				st, err := c.do("shop_join", "POST", "/v1/sales/"+shop+"/queue", "", "", []byte(`{"buyer":"s`+strconv.Itoa(w)+`-`+strconv.Itoa(k)+`"}`), &t)
				if err != nil || st != 200 || t.State != "admitted" {
					continue
				}
				c.do("shop_hold", "POST", "/v1/sales/"+shop+"/holds", t.AccessToken, "", []byte(`{"zone":"ga","quantity":1}`), nil)
			}
		}()
	}
	wg.Wait()
	j, h := c.lat.quantiles("shop_join"), c.lat.quantiles("shop_hold")
	fmt.Fprintf(o.Out, "  with the streams open: join p50 %s p99 %s, hold p50 %s p99 %s (%d pairs)\n", j.P50, j.P99, h.P50, h.P99, h.N)
	closeAll(conns)
	readers.Wait()
	return nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// rssBytes is a process's resident set (VmRSS); pid 0 is this process.
func rssBytes(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS", path)
}

// fileLimit is this process's open-file limit, for error messages.
func fileLimit() string {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			return strings.Join(strings.Fields(line)[3:5], "/") + " (ulimit -n)"
		}
	}
	return "unknown"
}
