package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Connection limits. A crowd must never make the server exit: past the
// file limit, accept fails with EMFILE, which fasthttp treats as the end of
// serving.
const (
	// fdReserve is the files kept back from connections: the log's segments
	// and snapshot files (a few), the data directory, the payment gateway's
	// outbound connections (up to a thousand slots), listeners, stdio.
	fdReserve = 1024
	// connectionsFloor is the least we take even under a tiny file limit.
	connectionsFloor = 64
	// ConnsPerAddressDefault: thousands of phones share one carrier NAT
	// address, and each browser opens a few connections (and one stream).
	ConnsPerAddressDefault = 4096
	// acceptBackoffMax is the longest wait after EMFILE/ENFILE before the
	// next accept: a connection closes within that time under any load.
	acceptBackoffMax = time.Second
)

// connectionsCap is how many connections the server holds at once: the
// process's file limit less fdReserve.
func connectionsCap() (limit uint64, capped int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 0, connectionsMax
	}
	n := int64(rl.Cur) - fdReserve
	return rl.Cur, int(min(max(n, connectionsFloor), connectionsMax))
}

// gateListener holds the server to its connection cap and turns EMFILE and
// ENFILE on accept into back-pressure. At the cap it stops accepting: new
// connections wait in the kernel's backlog (or are refused when it is full)
// while the open ones go on being served.
type gateListener struct {
	net.Listener
	slots   chan struct{} // one token per open connection
	closed  chan struct{}
	once    sync.Once
	m       *Metrics
	log     *slog.Logger
	lastLog atomic.Int64 // unix ns of the last EMFILE log line
}

func newGateListener(ln net.Listener, capacity int, m *Metrics, log *slog.Logger) *gateListener {
	return &gateListener{Listener: ln, slots: make(chan struct{}, capacity), closed: make(chan struct{}), m: m, log: log}
}

func (l *gateListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.m.connections.Add(1)
			return &gatedConn{Conn: c, l: l}, nil
		}
		if !fdExhausted(err) {
			<-l.slots
			return nil, err
		}
		l.m.acceptFull.Inc()
		if now := time.Now().UnixNano(); now-l.lastLog.Load() >= int64(time.Second) {
			l.lastLog.Store(now)
			l.log.Warn("out of file descriptors: accepting more connections later; raise the file limit (ulimit -n) or lower the load", "err", err, "open_connections", len(l.slots)-1)
		}
		select {
		case <-time.After(backoff):
		case <-l.closed:
			<-l.slots
			return nil, net.ErrClosed
		}
		backoff = min(2*backoff, acceptBackoffMax)
	}
}

func (l *gateListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// fdExhausted reports an accept error that is the process's or the system's
// file limit (or kernel memory), which passes once connections close.
func fdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// gatedConn gives its slot back once, when closed.
type gatedConn struct {
	net.Conn
	l    *gateListener
	once sync.Once
}

func (c *gatedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.m.connections.Add(-1)
		<-c.l.slots
	})
	return err
}

// describeCaps is the start-up line that says what the server chose.
func describeCaps(limit uint64, capped, perAddr int) string {
	return fmt.Sprintf("file limit %d: up to %d connections, %d per client address", limit, capped, perAddr)
}
