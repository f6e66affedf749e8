package cli_test

import (
	"bytes"
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
