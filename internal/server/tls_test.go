package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	_ "github.com/alphaswarm/controller/ledger/sqlite" // the default ledger of serve
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial n
// to cert/key and returns it.
func writeCert(t *testing.T, certFile, keyFile string, n int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: "alphaswarm test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bump moves a file's mtime forward so that a rewrite within the clock's
// resolution still counts as a change.
func bump(t *testing.T, path string, d time.Duration) {
	t.Helper()
	next := time.Now().Add(d)
	if err := os.Chtimes(path, next, next); err != nil {
		t.Fatal(err)
	}
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, cert, key, 1)
	r, err := newCertReloader(cert, key, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		t.Helper()
		c, err := r.GetCertificate(nil)
		if err != nil || c == nil {
			t.Fatalf("GetCertificate = %v, %v", c, err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}
	// A renewal is served at the next handshake.
	writeCert(t, cert, key, 2)
	bump(t, cert, time.Second)
	bump(t, key, time.Second)
	if s := serial(); s != 2 {
		t.Fatalf("after renewal: serial %d, want 2", s)
	}
	// A broken renewal (key of another pair) keeps the previous one.
	other := filepath.Join(dir, "other.key")
	writeCert(t, filepath.Join(dir, "other.crt"), other, 3)
	b, _ := os.ReadFile(other)
	os.WriteFile(key, b, 0o600)
	bump(t, key, 2*time.Second)
	if s := serial(); s != 2 {
		t.Fatalf("after a mismatched key: serial %d, want the previous 2", s)
	}
	// At start, a pair that does not load is an error.
	if _, err := newCertReloader(cert, key, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("mismatched pair loaded at start")
	}
}

// TestServeTLS runs the server with tls in its config: it answers over
// HTTPS with the configured certificate, serves a renewed one without a
// restart, and refuses to start when admin.token is readable by others.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeCert(t, certFile, keyFile, 1)
	cfg := filepath.Join(dir, "alphaswarm.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nnoLocalTarget: true\ntls:\n  cert: %s\n  key: %s\n", certFile, keyFile)), 0o600)
	t.Setenv("ALPHASWARM_DATA_DIR", data)
	t.Setenv("ALPHASWARM_LISTEN", "")
	t.Setenv("ALPHASWARM_LEDGER", "")

	ctx, cancel := context.WithCancel(testkit.Context(t, 60*time.Second))
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"serve", "--config", cfg}, pw, &stderr); pw.Close() }()
	var addr string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening on https://"); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("serve never said it listens on https; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, pr)
	serial := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the test reads the served certificate
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	// A client that trusts the certificate gets an answer.
	pem, _ := os.ReadFile(certFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hc.CloseIdleConnections()
	if resp.StatusCode != 200 || serial() != 1 {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
	writeCert(t, certFile, keyFile, 2)
	next := time.Now().Add(time.Second)
	os.Chtimes(certFile, next, next)
	os.Chtimes(keyFile, next, next)
	if s := serial(); s != 2 {
		t.Fatalf("after renewal the server presents serial %d, want 2", s)
	}

	// A second start with admin.token made readable by others fails.
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("serve exited %d after the signal; stderr:\n%s", code, stderr.String())
	}
	if err := os.Chmod(filepath.Join(data, "admin.token"), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"--config", cfg}, io.Discard, &stderr); code == 0 ||
		!strings.Contains(stderr.String(), "admin.token") || !strings.Contains(stderr.String(), "readable by group or others") {
		t.Fatalf("serve with a 0644 admin.token: exit %d, stderr %s", code, stderr.String())
	}
}

// TestServeRefusesABadFlag: serve checks its flags before it opens
// anything (review third-party-clients F13).
func TestServeRefusesABadFlag(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ALPHASWARM_DATA_DIR", filepath.Join(dir, "data"))
	var stdout, stderr bytes.Buffer
	ctx := testkit.Context(t, 10*time.Second) // bounded: a build that does not check would serve
	code := run(ctx, []string{"serve", "--log-format", "xml", "--listen", "127.0.0.1:0", "--ledger", "sqlite:" + filepath.Join(dir, "s.db")}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "--log-format") || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want a refusal naming --log-format", code, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "s.db")); !os.IsNotExist(err) {
		t.Fatalf("serve with a bad flag opened its ledger (stat: %v)", err)
	}
}
