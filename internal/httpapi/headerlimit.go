package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"

	"github.com/alphaswarm/controller/workload"
)

// plain431 is what net/http writes, on the connection itself and before
// any handler runs, when a request's header exceeds
// http.Server.MaxHeaderBytes (net/http/server.go, conn.serve: errTooLarge).
// It is written with one Write call (fmt.Fprintf on the connection).
const plain431 = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"

// EnvelopeListener wraps ln so that net/http's plain-text answer to an
// oversized request header becomes the JSON error envelope every other
// error uses (status 431, code invalid_argument, field "headers"). Only
// that exact answer is replaced: handlers' responses always carry a Date
// header, so none of them can equal it. For plain-HTTP listeners (with
// TLS, the connection net/http writes to is the TLS connection above this
// one).
func EnvelopeListener(ln net.Listener) net.Listener { return envelopeListener{ln} }

type envelopeListener struct{ net.Listener }

func (l envelopeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return envelopeConn{c}, nil
}

type envelopeConn struct{ net.Conn }

var json431 = func() []byte {
	env := workload.Fail(workload.Invalid(workload.FieldError{Path: "headers",
		Message: "the request's header (its URL included) is larger than the server accepts"}))
	b, _ := json.Marshal(env)
	b = append(b, '\n')
	return fmt.Appendf(nil, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"+
		"Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
}()

func (c envelopeConn) Write(b []byte) (int, error) {
	if bytes.Equal(b, []byte(plain431)) {
		if _, err := c.Conn.Write(json431); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// CloseWrite lets net/http half-close after the 431 (conn.closeWriteAndWait)
// so the client reads the answer instead of a reset.
func (c envelopeConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
