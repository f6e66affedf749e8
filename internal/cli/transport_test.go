package cli_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/cli"
	"github.com/alphaswarm/controller/internal/testkit"
)

// recorder is an API stand-in that records the Authorization headers it
// receives and answers every request with an empty list.
type recorder struct {
	mu   sync.Mutex
	auth []string
	srv  *httptest.Server
}

func newRecorder(t *testing.T, ln net.Listener) *recorder {
	r := &recorder{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","data":[]}`+"\n")
	}))
	r.srv.Listener.Close()
	r.srv.Listener = ln
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

func runCLI(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// nonLoopbackIP is an address of this machine that is not loopback, or nil.
func nonLoopbackIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP
		}
	}
	return nil
}

// TestTokenTransport: the local admin token goes only to a loopback
// server; no token goes over plain http:// to another host without
// --insecure; an admin.token readable by others is refused.
func TestTokenTransport(t *testing.T) {
	data := t.TempDir()
	const adminTok = "asw_local-admin-token-for-the-transport-test-000"
	adminFile := filepath.Join(data, "admin.token")
	if err := os.WriteFile(adminFile, []byte(adminTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"ALPHASWARM_DATA_DIR=" + data, "ALPHASWARM_TOKEN="}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := newRecorder(t, ln)
	if r := runCLI(t, base, "status", "--server", local.srv.URL, "-o", "json"); r.code != 0 {
		t.Fatalf("loopback: %+v", r)
	}
	if got := local.seen(); len(got) != 1 || got[0] != "Bearer "+adminTok {
		t.Fatalf("loopback server got %q, want the admin token", got)
	}

	// Plain http:// to another host with a token: refused before any
	// connection, naming the flag.
	r := runCLI(t, append(base, "ALPHASWARM_TOKEN=asw_explicit"), "status", "--server", "http://192.0.2.1:7070")
	if r.code == 0 || !strings.Contains(r.stderr, "--insecure") || !strings.Contains(r.stderr, "plain http://") {
		t.Fatalf("plain http to another host: %+v", r)
	}

	ip := nonLoopbackIP()
	if ip == nil {
		t.Log("no non-loopback address on this machine: the remote-listener half is not run")
	} else {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		remote := newRecorder(t, ln)
		// No explicit token: the admin token file is not used for it.
		if r := runCLI(t, base, "status", "--server", remote.srv.URL, "--insecure", "-o", "json"); r.code != 0 {
			t.Fatalf("remote without token: %+v", r)
		}
		if got := remote.seen(); len(got) != 1 || got[0] != "" {
			t.Fatalf("remote server got %q, want no Authorization", got)
		}
		// An explicit token with --insecure is sent.
		if r := runCLI(t, append(base, "ALPHASWARM_TOKEN=asw_explicit"), "status", "--server", remote.srv.URL, "--insecure", "-o", "json"); r.code != 0 {
			t.Fatalf("remote --insecure: %+v", r)
		}
		if got := remote.seen(); len(got) != 2 || got[1] != "Bearer asw_explicit" {
			t.Fatalf("remote server got %q", got)
		}
	}

	// admin.token readable by others: refused, not sent.
	if err := os.Chmod(adminFile, 0o644); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, base, "status", "--server", local.srv.URL)
	if r.code == 0 || !strings.Contains(r.stderr, "readable by group or others") {
		t.Fatalf("0644 admin.token: %+v", r)
	}
	if got := local.seen(); len(got) != 1 {
		t.Fatalf("a request was sent with a 0644 admin.token: %q", got)
	}
}

// TestServeTLS runs `alphaswarm serve` with tls in its config: it answers
// over HTTPS with the configured certificate, serves a renewed one without
// a restart, and refuses to start when admin.token is readable by others.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	cli.WriteTestCert(t, certFile, keyFile, 1)
	cfg := filepath.Join(dir, "alphaswarm.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nnoLocalTarget: true\ntls:\n  cert: %s\n  key: %s\n", certFile, keyFile)), 0o600)

	ctx := testkit.Context(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, binary, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "ALPHASWARM_DATA_DIR="+data, "ALPHASWARM_LISTEN=", "ALPHASWARM_LEDGER=")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	var addr string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening on https://"); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatalf("serve never said it listens on https; stderr:\n%s", stderr.String())
	}
	go io.Copy(io.Discard, stdout)
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
	cli.WriteTestCert(t, certFile, keyFile, 2)
	next := time.Now().Add(time.Second)
	os.Chtimes(certFile, next, next)
	os.Chtimes(keyFile, next, next)
	if s := serial(); s != 2 {
		t.Fatalf("after renewal the server presents serial %d, want 2", s)
	}

	// A second start with admin.token made readable by others fails.
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if err := os.Chmod(filepath.Join(data, "admin.token"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, []string{"ALPHASWARM_DATA_DIR=" + data, "ALPHASWARM_LISTEN=", "ALPHASWARM_LEDGER="}, "serve", "--config", cfg)
	if r.code == 0 || !strings.Contains(r.stderr, "admin.token") || !strings.Contains(r.stderr, "readable by group or others") {
		t.Fatalf("serve with a 0644 admin.token: %+v", r)
	}
}
