package checkpoint_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openSQLite(t *testing.T, path string) *sqlite.Ledger {
	t.Helper()
	l, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "checkpoint.key")
	k1, created, err := checkpoint.LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", fi, err)
	}
	k2, created, err := checkpoint.LoadOrCreateKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: created=%v err=%v same=%v", created, err, k1.Equal(k2))
	}
	os.Chmod(path, 0o644)
	if _, _, err := checkpoint.LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "readable by group or others") {
		t.Fatalf("a 0644 key was accepted: %v", err)
	}
	pub := k1.Public().(ed25519.PublicKey)
	for _, form := range []string{checkpoint.PublicKeyString(pub), string(checkpoint.PublicKeyPEM(pub))} {
		got, err := checkpoint.ParsePublicKey(form)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParsePublicKey(%q) = %v, %v", form, got, err)
		}
		f := filepath.Join(t.TempDir(), "pub")
		os.WriteFile(f, []byte(form), 0o644)
		if got, err := checkpoint.ParsePublicKey(f); err != nil || !got.Equal(pub) {
			t.Fatalf("ParsePublicKey(file) = %v, %v", got, err)
		}
	}
}

func TestSignature(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	c := checkpoint.Sign(checkpoint.Checkpoint{Seq: 7, Head: strings.Repeat("a", 64), Halts: []string{"prod", "*"}, Time: time.Now()}, key)
	if err := c.Check(pub); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*checkpoint.Checkpoint){
		"seq":   func(c *checkpoint.Checkpoint) { c.Seq = 6 },
		"head":  func(c *checkpoint.Checkpoint) { c.Head = strings.Repeat("b", 64) },
		"halts": func(c *checkpoint.Checkpoint) { c.Halts = []string{"prod"} },
		"time":  func(c *checkpoint.Checkpoint) { c.Time = c.Time.Add(time.Second) },
	} {
		d := c
		d.Halts = append([]string(nil), c.Halts...)
		change(&d)
		if err := d.Check(pub); err == nil {
			t.Errorf("checkpoint with a changed %s verifies", name)
		}
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := c.Check(other.Public().(ed25519.PublicKey)); err == nil || !strings.Contains(err.Error(), "signed by key") {
		t.Errorf("checkpoint verifies with another key: %v", err)
	}
}

// TestSinkDownNeverBlocksAndCatchesUp: a webhook that answers 503 does
// not slow appends; when it answers again it receives every row it
// missed, in order, each with its hash; a restart resumes from the
// persisted cursor (no row lost, none needed twice).
func TestSinkDownNeverBlocksAndCatchesUp(t *testing.T) {
	var down atomic.Bool
	var mu sync.Mutex
	var got []checkpoint.Line
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Content-Type") != "application/x-ndjson" {
			http.Error(w, "bad type", 400)
			return
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		mu.Lock()
		defer mu.Unlock()
		for sc.Scan() {
			var l checkpoint.Line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			got = append(got, l)
		}
	}))
	defer hook.Close()
	rowsSeen := func() map[int64]string {
		mu.Lock()
		defer mu.Unlock()
		m := map[int64]string{}
		for _, l := range got {
			if l.Type == "row" {
				m[l.Row.Seq] = l.Row.Hash
			}
		}
		return m
	}

	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	open := func() *checkpoint.Ledger {
		s, err := checkpoint.OpenSink(checkpoint.SinkConfig{Name: "hook", Type: "webhook", URL: hook.URL})
		if err != nil {
			t.Fatal(err)
		}
		cp, _, err := checkpoint.Open(context.Background(), openSQLite(t, filepath.Join(dir, "ledger.db")), checkpoint.Options{
			Key: key, File: filepath.Join(dir, "cp", "checkpoints.jsonl"), Sinks: []checkpoint.Sink{s}, Every: 5,
			FlushDelay: 10 * time.Millisecond, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	l := open()
	down.Store(true)
	ctx := context.Background()
	start := time.Now()
	for i := range 40 {
		if _, err := l.Append(ctx, ledger.Record{RunID: fmt.Sprint(i), Kind: ledger.KindIntent}); err != nil {
			t.Fatal(err)
		}
	}
	blocked := time.Since(start)
	if n := len(rowsSeen()); n != 0 {
		t.Fatalf("a down sink received %d rows", n)
	}
	if st := l.Stats().Sinks[0]; !st.Down || st.Failures == 0 {
		t.Logf("appends took %s", blocked)
		waitFor(t, func() bool { st := l.Stats().Sinks[0]; return st.Down && st.Failures > 0 })
	}
	down.Store(false)
	waitFor(t, func() bool { return len(rowsSeen()) == 40 }) // retried with backoff (first retry after 1s)
	l.Close()

	// Rows written while the controller was stopped and the sink was up
	// are sent at the next start from the cursor.
	b := openSQLite(t, filepath.Join(dir, "ledger.db"))
	for i := range 5 {
		if _, err := b.Append(ctx, ledger.Record{RunID: fmt.Sprint("offline", i), Kind: ledger.KindIntent}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	mu.Lock()
	before := len(got)
	mu.Unlock()
	l = open()
	defer l.Close()
	waitFor(t, func() bool { return len(rowsSeen()) == 45 })
	mu.Lock()
	resent := 0
	for _, x := range got[before:] {
		if x.Type == "row" && x.Row.Seq <= 40 {
			resent++
		}
	}
	mu.Unlock()
	if resent != 0 {
		t.Fatalf("%d rows delivered before the restart were sent again: the cursor was not kept", resent)
	}
	for seq, hash := range rowsSeen() {
		if len(hash) != 64 || seq < 1 || seq > 45 {
			t.Fatalf("row line %d %q", seq, hash)
		}
	}
}

// TestFileAndSyslogSinks: a jsonl file gets rows and checkpoints; a syslog
// server (UDP) gets one message per line.
func TestFileAndSyslogSinks(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var msgs atomic.Int64
	var lastMsg atomic.Value
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			lastMsg.Store(string(buf[:n]))
			msgs.Add(1)
		}
	}()
	dir := t.TempDir()
	file := filepath.Join(dir, "export", "rows.jsonl")
	fs, err := checkpoint.OpenSink(checkpoint.SinkConfig{Name: "file", Type: "jsonl", Path: file})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := checkpoint.OpenSink(checkpoint.SinkConfig{Name: "syslog", Type: "syslog", Network: "udp", Address: pc.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l, _, err := checkpoint.Open(context.Background(), openSQLite(t, filepath.Join(dir, "ledger.db")), checkpoint.Options{
		Key: key, File: filepath.Join(dir, "cp", "checkpoints.jsonl"), Sinks: []checkpoint.Sink{fs, ss}, Every: 1 << 20,
		FlushDelay: 10 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := l.Append(context.Background(), ledger.Record{RunID: fmt.Sprint(i), Kind: ledger.KindIntent}); err != nil {
			t.Fatal(err)
		}
	}
	l.Sync() // a checkpoint now
	waitFor(t, func() bool { return msgs.Load() >= 11 })
	l.Close()
	cps, err := checkpoint.ReadFile(file)
	if err != nil || len(cps) == 0 || cps[len(cps)-1].Seq != 10 {
		t.Fatalf("checkpoints in the jsonl export: %+v %v", cps, err)
	}
	b, _ := os.ReadFile(file)
	if n := strings.Count(string(b), `"type":"row"`); n != 10 {
		t.Fatalf("jsonl export holds %d rows, want 10", n)
	}
	if m, _ := lastMsg.Load().(string); !strings.Contains(m, "alphaswarm-ledger") || !strings.Contains(m, `"type":"checkpoint"`) {
		t.Fatalf("last syslog message %q", m)
	}
}

func TestSinkConfigValidate(t *testing.T) {
	f := false
	for _, c := range []checkpoint.SinkConfig{
		{Name: "", Type: "jsonl", Path: "/x"},
		{Name: "a/b", Type: "jsonl", Path: "/x"},
		{Name: "a", Type: "jsonl"},
		{Name: "a", Type: "kafka"},
		{Name: "a", Type: "webhook", URL: "ftp://x"},
		{Name: "a", Type: "webhook", URL: "https://user:pw@x/"},
		{Name: "a", Type: "syslog", Network: "udp"},
		{Name: "a", Type: "jsonl", Path: "/x", Rows: &f, Checkpoints: &f},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUnfinishedAfterPassesThrough: the checkpoint ledger answers
// ledger.UnfinishedAfter with its backend's scanner, or with the fallback
// when the backend has none.
func TestUnfinishedAfterPassesThrough(t *testing.T) {
	for name, wrap := range map[string]func(*sqlite.Ledger) ledger.Ledger{
		"scanner":  func(l *sqlite.Ledger) ledger.Ledger { return l },
		"fallback": func(l *sqlite.Ledger) ledger.Ledger { return struct{ ledger.Ledger }{l} },
	} {
		t.Run(name, func(t *testing.T) {
			ledgertest.RunUnfinishedAfter(t, func(t *testing.T) ledger.Ledger {
				dir := t.TempDir()
				_, key, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				l, _, err := checkpoint.Open(context.Background(), wrap(openSQLite(t, filepath.Join(dir, "ledger.db"))),
					checkpoint.Options{Key: key, File: filepath.Join(dir, "checkpoints"), Logger: quiet()})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			})
		})
	}
}
