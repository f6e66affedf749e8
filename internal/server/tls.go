package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in a PEM cert/key file pair and
// re-reads the pair when either file's modification time or size changes,
// checked at each TLS handshake (two stat calls). A pair that does not load
// (a renewal caught half-written, a key that does not match) leaves the
// previous certificate in service; it is tried again once the files change
// again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	stamp  [2]fileStamp // of the pair in service
	failed [2]fileStamp // of the last pair that did not load
	cur    *tls.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{fi.ModTime(), fi.Size()}
}

// newCertReloader loads the pair once; a pair that does not load is an
// error at start.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	st := [2]fileStamp{stampOf(certFile), stampOf(keyFile)}
	crt, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c.cur, c.stamp = &crt, st
	return c, nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (c *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := [2]fileStamp{stampOf(c.certFile), stampOf(c.keyFile)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == c.stamp || st == c.failed {
		return c.cur, nil
	}
	crt, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.failed = st
		c.log.Warn("tls: the changed certificate does not load; still serving the previous one", "cert", c.certFile, "err", err)
		return c.cur, nil
	}
	c.cur, c.stamp, c.failed = &crt, st, [2]fileStamp{}
	c.log.Info("tls: certificate reloaded", "cert", c.certFile)
	return c.cur, nil
}

// tlsConfig is the server's TLS configuration over the reloader.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}
