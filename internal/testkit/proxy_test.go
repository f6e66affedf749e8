package testkit_test

import (
	"bufio"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
)

// backend is a TCP server that greets each connection with its name and
// then echoes lines, until killed: kill closes its listener and every
// connection it accepted, as a SIGKILLed process's kernel would.
type backend struct {
	name  string
	addr  string
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), ln: ln}
	b.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Go(func() {
				defer c.Close()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(b.kill)
	return b
}

func (b *backend) kill() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// deadAddr is an address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// greet connects through the proxy and returns the connection and the
// name of the backend that answered ("" if the proxy closed it).
func greet(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatalf("reading the greeting: %v", err)
	}
	return c, r, strings.TrimSpace(line)
}

func TestProxyRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alive []bool // per backend: listening or not
		conns int
		want  []string // the backend that answers each connection in turn
	}{
		{"three backends take turns", []bool{true, true, true}, 7, []string{"b0", "b1", "b2", "b0", "b1", "b2", "b0"}},
		{"a backend that refuses is skipped", []bool{true, false, true}, 5, []string{"b0", "b2", "b0", "b2", "b0"}},
		{"the first backend down", []bool{false, true, true}, 4, []string{"b1", "b2", "b1", "b2"}},
		{"one backend left", []bool{false, false, true}, 3, []string{"b2", "b2", "b2"}},
		{"none accepts: the connection is closed", []bool{false, false}, 2, []string{"", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []string
			for i, up := range tc.alive {
				if up {
					addrs = append(addrs, newBackend(t, "b"+string(rune('0'+i))).addr)
				} else {
					addrs = append(addrs, deadAddr(t))
				}
			}
			p := testkit.NewProxy(t, addrs...)
			var got []string
			for range tc.conns {
				c, _, name := greet(t, p.Addr)
				got = append(got, name)
				c.Close()
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("backends answering in turn = %q, want %q", got, tc.want)
			}
			var recorded []string
			for _, pc := range p.Conns() {
				recorded = append(recorded, "b"+string(rune('0'+pc.Backend)))
			}
			var wantRecorded []string
			for _, w := range tc.want {
				if w != "" {
					wantRecorded = append(wantRecorded, w)
				}
			}
			if !slices.Equal(recorded, wantRecorded) {
				t.Errorf("Conns records backends %q, want %q", recorded, wantRecorded)
			}
		})
	}
}

// TestProxyEnds: the side that ends a connection is recorded, the other
// side sees it end, and Close ends the connections still open (the
// package's TestMain checks no goroutine outlives the tests).
func TestProxyEnds(t *testing.T) {
	b0, b1 := newBackend(t, "b0"), newBackend(t, "b1")
	p := testkit.NewProxy(t, b0.addr, b1.addr)

	// Bytes go both ways.
	c, r, name := greet(t, p.Addr)
	if name != "b0" {
		t.Fatalf("first connection answered by %q, want b0", name)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}

	// The backend dies: the client's connection ends.
	b0.kill()
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("the connection outlived its backend")
	}
	testkit.WaitFor(t, 5*time.Second, "the first connection recorded closed", func() bool { return !p.Conns()[0].Closed.IsZero() })

	// The next connection goes to the backend still alive; the client
	// ends it.
	c2, _, name := greet(t, p.Addr)
	if name != "b1" {
		t.Fatalf("after b0 died, a connection was answered by %q, want b1", name)
	}
	c2.Close()
	testkit.WaitFor(t, 5*time.Second, "the second connection recorded closed", func() bool { return !p.Conns()[1].Closed.IsZero() })

	// One left open is closed by Close.
	_, r3, name := greet(t, p.Addr)
	if name != "b1" {
		t.Fatalf("third connection answered by %q, want b1", name)
	}
	p.Close()
	if _, err := r3.ReadString('\n'); err == nil {
		t.Fatal("a connection outlived the proxy's Close")
	}
	if _, err := net.DialTimeout("tcp", p.Addr, time.Second); err == nil {
		t.Error("the proxy still accepts after Close")
	}

	conns := p.Conns()
	if len(conns) != 3 {
		t.Fatalf("%d connections recorded, want 3: %+v", len(conns), conns)
	}
	for i, want := range []struct {
		backend      int
		backendEnded bool
	}{{0, true}, {1, false}, {1, false}} {
		pc := conns[i]
		if pc.Backend != want.backend || pc.BackendEnded != want.backendEnded || pc.Closed.Before(pc.Opened) {
			t.Errorf("connection %d = %+v, want backend %d, BackendEnded %v, closed after opened", i, pc, want.backend, want.backendEnded)
		}
	}
}
