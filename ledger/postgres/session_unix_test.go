//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package postgres

import (
	"net"
	"testing"
	"time"
)

// TestQuietConn: a socket is quiet while open with nothing to read, also
// while a read of pgx's own is parked on it (the look must neither wait
// for that read nor take its bytes); a byte the server sent unasked, or
// its end, is not quiet.
func TestQuietConn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		parked bool // a read waits on the socket meanwhile
		server func(net.Conn)
		want   bool
	}{
		{"idle", false, func(net.Conn) {}, true},
		{"idle, a read parked", true, func(net.Conn) {}, true},
		{"a message pending", false, func(c net.Conn) { c.Write([]byte("E")) }, false},
		{"closed by the server", false, func(c net.Conn) { c.Close() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			server, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			readDone := make(chan struct{})
			t.Cleanup(func() {
				server.Close()
				client.Close()
				if tc.parked {
					<-readDone
				}
			})
			if tc.parked {
				go func() {
					defer close(readDone)
					var b [1]byte
					client.Read(b[:])
				}()
				time.Sleep(50 * time.Millisecond) // parked in the poller
			}
			tc.server(server)
			time.Sleep(50 * time.Millisecond) // the bytes or the FIN arrive
			got := make(chan bool, 1)
			go func() { got <- quietConn(client) }()
			select {
			case q := <-got:
				if q != tc.want {
					t.Errorf("quiet = %v, want %v", q, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("quietConn waited for the parked read")
			}
		})
	}
}
