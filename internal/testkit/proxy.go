package testkit

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a round-robin TCP proxy in front of several servers, as a load
// balancer in front of replicas: each accepted connection goes to the next
// backend, in order, that accepts a connection within a second; a backend
// that refuses is skipped, and when none accepts the client's connection
// is closed. Bytes are copied both ways (io.Copy) until either side closes
// or fails; then both connections are closed, so a client whose backend
// died sees its connection end.
//
// It records every connection it proxied (Conns), which tells a test
// which backend served a client and which side ended each connection.
type Proxy struct {
	// Addr is the address clients connect to (127.0.0.1, a free port).
	Addr string

	backends []string
	ln       net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	next   int
	closed bool
	open   map[net.Conn]bool
	conns  []*ProxyConn
}

// ProxyConn is one proxied connection.
type ProxyConn struct {
	// Backend is the index of the backend that served the connection.
	Backend int
	// Opened is when the backend accepted it; Closed is when it ended
	// (zero while it is open).
	Opened, Closed time.Time
	// BackendEnded is true when the backend closed (or broke) the
	// connection first, false when the client did or the proxy closed.
	BackendEnded bool
}

// dialBackend bounds the connection attempt to one backend.
const dialBackend = time.Second

// NewProxy listens on a free loopback port and proxies to backends
// (host:port) until the test ends; t.Cleanup closes it.
func NewProxy(t testing.TB, backends ...string) *Proxy {
	t.Helper()
	if len(backends) == 0 {
		t.Fatal("testkit.NewProxy: no backend")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), backends: backends, ln: ln, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Close stops accepting, closes every open connection and returns once
// every goroutine of the proxy has ended. It may be called more than once.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.ln.Close()
		for c := range p.open {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// Conns returns a copy of every connection proxied so far, in the order
// they were opened.
func (p *Proxy) Conns() []ProxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProxyConn, len(p.conns))
	for i, c := range p.conns {
		out[i] = *c
	}
	return out
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers an open connection; false once the proxy is closed.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.open[c] = true
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.open, c)
	}
}

// dial connects to the next backend that accepts, starting after the one
// the previous connection went to.
func (p *Proxy) dial() (net.Conn, int) {
	p.mu.Lock()
	first := p.next
	p.mu.Unlock()
	for k := range p.backends {
		i := (first + k) % len(p.backends)
		b, err := net.DialTimeout("tcp", p.backends[i], dialBackend)
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.next = (i + 1) % len(p.backends)
		p.mu.Unlock()
		return b, i
	}
	return nil, -1
}

func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	b, i := p.dial()
	if b == nil || !p.track(b) {
		if b != nil {
			b.Close()
		}
		c.Close()
		p.untrack(c)
		return
	}
	pc := &ProxyConn{Backend: i, Opened: time.Now()}
	p.mu.Lock()
	p.conns = append(p.conns, pc)
	p.mu.Unlock()

	ended := make(chan bool, 2) // true: the backend side ended first
	go func() { _, _ = io.Copy(b, c); ended <- false }()
	go func() { _, _ = io.Copy(c, b); ended <- true }()
	backendFirst := <-ended
	p.mu.Lock()
	pc.Closed, pc.BackendEnded = time.Now(), backendFirst && !p.closed
	p.mu.Unlock()
	c.Close()
	b.Close()
	<-ended
	p.untrack(c, b)
}
