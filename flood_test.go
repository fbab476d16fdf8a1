package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// floodFileLimit is the child's file limit in TestConnectionFlood: its
// connection cap is this less the server's reserve, small enough for the
// test to pass it from one process.
const floodFileLimit = 1600

// TestConnectionFlood opens more connections than the server's cap, from
// many loopback addresses, in this process (the server is a child with a
// low file limit). The server must stay up, a connection opened before the
// flood must keep answering, and holds must work as soon as the flood ends.
func TestConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("opens thousands of connections")
	}
	bin := crashBuild(t)
	addr := crashFreeAddr(t)
	out := &crashLog{}
	cmd := exec.Command("sh", "-c", fmt.Sprintf("ulimit -n %d && exec %s serve --addr %s --data %s --admin-token %s --buyer-rate 0 --address-rate 0 --max-conns-per-address 200",
		floodFileLimit, bin, addr, t.TempDir(), crashAdminToken))
	cmd.Env = crashChildEnv()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	s := &crashServer{t: t, exited: exited}
	if !s.ready(addr) {
		t.Fatalf("server not ready; its output:\n%s", out.tail())
	}
	base := "http://" + addr

	// The connection opened before the flood: one keep-alive connection.
	before := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	post := func(c *http.Client, path, token string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v; server output:\n%s", path, err, out.tail())
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, rb
	}
	get := func(c *http.Client, path string) int {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v; server output:\n%s", path, err, out.tail())
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if st, b := post(before, "/v1/sales", crashAdminToken, map[string]any{"id": "f", "zones": []any{map[string]any{"id": "ga", "capacity": 100}}}); st != 201 {
		t.Fatalf("create sale: %d %s", st, b)
	}
	if st := get(before, "/v1/sales/f"); st != 200 {
		t.Fatalf("before the flood: %d", st)
	}

	// The flood: twice the file limit, 100 connections from each of many
	// loopback addresses (under the per-address cap, so the total cap is
	// what stops them).
	const flood = 2 * floodFileLimit
	var conns []net.Conn
	refused := 0
	for i := 0; i < flood; i++ {
		d := net.Dialer{Timeout: 200 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/100/250), byte(2+i/100%250))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
	}
	t.Logf("flood: %d connections open, %d refused or timed out", len(conns), refused)

	// During the flood the process lives and the old connection answers.
	select {
	case <-exited:
		t.Fatalf("the server exited under the flood; its output:\n%s", out.tail())
	default:
	}
	for i := 0; i < 5; i++ {
		if st := get(before, "/v1/sales/f"); st != 200 {
			t.Fatalf("the connection opened before the flood got %d", st)
		}
	}
	resp, err := before.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var open int
	for _, line := range strings.Split(string(m), "\n") {
		if v, ok := strings.CutPrefix(line, "onsale_http_connections "); ok {
			fmt.Sscan(v, &open)
		}
	}
	if capped := floodFileLimit - 1024; open < capped/2 || open > capped {
		t.Fatalf("during the flood the server holds %d connections; its cap is %d", open, capped)
	}
	t.Logf("during the flood the server holds %d connections (cap %d)", open, floodFileLimit-1024)
	for _, c := range conns {
		c.Close()
	}

	// After the flood: a new client joins and holds. New connections may
	// need a moment while the server closes the flood's.
	after := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	var tk struct {
		State       string `json:"state"`
		AccessToken string `json:"access_token"`
	}
	for {
		b, _ := json.Marshal(map[string]string{"buyer": "after"})
		resp, err := after.Post(base+"/v1/sales/f/queue", "application/json", bytes.NewReader(b))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && json.Unmarshal(body, &tk) == nil && tk.State == "admitted" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admission after the flood ended: %v; server output:\n%s", err, out.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st, b := post(after, "/v1/sales/f/holds", tk.AccessToken, map[string]any{"zone": "ga", "quantity": 2}); st != 201 {
		t.Fatalf("hold after the flood: %d %s", st, b)
	}
	resp, err = after.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantCap := fmt.Sprintf("onsale_http_connections_max %d", floodFileLimit-1024)
	if !strings.Contains(string(m), wantCap) {
		t.Fatalf("/metrics lacks %q", wantCap)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("no clean stop after the flood; output:\n%s", out.tail())
	}
	if ps := cmd.ProcessState; ps == nil || !ps.Success() {
		t.Fatalf("server exit: %v; output:\n%s", cmd.ProcessState, out.tail())
	}
}
