// Package pgtest starts throwaway PostgreSQL clusters for tests.
//
// Start gives a test a cluster of its own; CreateDB gives it a fresh database
// in one cluster shared by the whole test binary, which is much faster
// (creating a database takes milliseconds, initdb about a second). Both
// return a pgx DSN that reaches the server over a Unix socket in a short
// temporary directory; the server listens on no TCP port.
//
// The binaries come from PATH (initdb) or /usr/lib/postgresql/*/bin. The
// server refuses to run as root, so when the test runs as root the cluster
// directory is given to the "postgres" user and initdb and the server run as
// that user. When PostgreSQL cannot be started the test is skipped with a
// line starting "SKIPPING: PostgreSQL not available", unless the environment
// variable CI is set, in which case the test fails loudly: CI must not pass
// by skipping the database tests.
//
// Every server is started as a direct child of the test process with a
// parent-death signal (on Linux), so a test binary that crashes or is killed
// by -timeout does not leave a postmaster running; the directories such a
// run leaves behind are removed by the next run. A package that uses
// CreateDB should stop the shared cluster at the end with
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// or by calling Shutdown after m.Run.
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testproc"

	"github.com/jackc/pgx/v5"
)

// dirPrefix names the temporary cluster directories (kept short: the Unix
// socket path must stay under ~107 bytes).
const dirPrefix = "pgt"

// startTimeout bounds initdb and the server start.
const startTimeout = 2 * time.Minute

// Start starts a PostgreSQL cluster for t alone and returns the DSN of its
// "postgres" database as the superuser "postgres". t.Cleanup stops the
// server (immediate shutdown) and removes its directory.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		unavailable(t, err)
		return ""
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Logf("pgtest: stopping cluster in %s: %v", c.dir, err)
		}
	})
	return c.DSN("postgres")
}

// Server is a throwaway cluster for a program that is not a test (the
// bench harness); tests use Start or CreateDB.
type Server struct{ c *cluster }

// Launch starts a throwaway cluster as Start does, with the server
// settings given ("name=value", as postgres -c takes them) besides its
// own. The caller stops it with Stop, which also removes its directory.
func Launch(settings ...string) (*Server, error) {
	c, err := startCluster(settings...)
	if err != nil {
		return nil, err
	}
	return &Server{c: c}, nil
}

// LaunchT is Launch for a test that needs a cluster of its own with
// settings: it fails the test when CI is set and PostgreSQL cannot start
// (skips loudly otherwise), and stops the cluster at the test's end.
func LaunchT(t testing.TB, settings ...string) *Server {
	t.Helper()
	s, err := Launch(settings...)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// CreateDB creates database name and returns its DSN.
func (s *Server) CreateDB(ctx context.Context, name string) (dsn string, err error) {
	if err := s.c.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.c.DSN(name), nil
}

// Stop stops the server (immediate shutdown) and removes its directory.
func (s *Server) Stop() error { return s.c.stop() }

var shared struct {
	once sync.Once
	mu   sync.Mutex
	c    *cluster
	err  error
	n    atomic.Int64
}

// CreateDB creates a fresh, empty database in the cluster shared by the test
// binary (started on first use) and returns its DSN. t.Cleanup drops the
// database, ending any session still connected to it.
func CreateDB(t testing.TB) (dsn string) {
	t.Helper()
	c, err := sharedCluster()
	if err != nil {
		unavailable(t, err)
		return ""
	}
	name := fmt.Sprintf("pgtest_%d", shared.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.DSN(name)
}

func sharedCluster() (*cluster, error) {
	shared.once.Do(func() {
		c, err := startCluster()
		shared.mu.Lock()
		shared.c, shared.err = c, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.err == nil && shared.c == nil {
		return nil, errors.New("pgtest: shared cluster already shut down")
	}
	return shared.c, shared.err
}

// Shutdown stops the shared cluster started by CreateDB, if any, and removes
// its directory. Call it after m.Run in TestMain.
func Shutdown() {
	shared.once.Do(func() {}) // no cluster may start after this
	shared.mu.Lock()
	c := shared.c
	shared.c = nil
	shared.mu.Unlock()
	if c != nil {
		if err := c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stopping shared cluster in %s: %v\n", c.dir, err)
		}
	}
}

// Main runs the tests, stops the shared cluster and exits with the tests'
// status: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"+
			"!!! pgtest: PostgreSQL is REQUIRED when CI is set, but it could not be\n"+
			"!!! started: %v\n"+
			"!!! Install PostgreSQL (initdb, postgres) in CI; these tests must not skip.\n"+
			"!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", err)
	}
	t.Skipf("SKIPPING: PostgreSQL not available: %v", err)
}

// cluster is one running server.
type cluster struct {
	dir   string // socket directory; the data directory is dir/data
	cmd   *exec.Cmd
	child *testproc.Child
	done  <-chan struct{} // closed when the server has exited

	stopOnce sync.Once
	stopErr  error
}

// DSN is the pgx connection string of database db as user postgres.
func (c *cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&sslmode=disable", url.PathEscape(db), url.QueryEscape(c.dir))
}

func (c *cluster) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// runAs is who runs initdb and the server.
type runAs struct {
	cred *syscall.Credential // nil: the current user
	uid  int
	gid  int
}

func whoRuns() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: -1, gid: -1}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("running as root and there is no user \"postgres\" to run the server as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return runAs{}, fmt.Errorf("user postgres has a non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid}, nil
}

// findBin finds a PostgreSQL program: on PATH, else in the newest
// /usr/lib/postgresql/*/bin.
func findBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH nor in /usr/lib/postgresql/*/bin", name)
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// baseDir is where cluster directories go: the temp dir when its path is
// short enough for a Unix socket, else /tmp.
func baseDir() string {
	if d := os.TempDir(); len(d) <= 40 {
		return d
	}
	return "/tmp"
}

func startCluster(settings ...string) (*cluster, error) {
	initdb, err := findBin("initdb")
	if err != nil {
		return nil, err
	}
	// The server binary sits beside initdb (PATH usually holds symlinks).
	postgres := filepath.Join(filepath.Dir(initdb), "postgres")
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		postgres = filepath.Join(filepath.Dir(real), "postgres")
	}
	if _, err := os.Stat(postgres); err != nil {
		if postgres, err = findBin("postgres"); err != nil {
			return nil, err
		}
	}
	who, err := whoRuns()
	if err != nil {
		return nil, err
	}
	base := baseDir()
	dir, err := testproc.MakeDir(base, dirPrefix, postmasterAlive)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if who.cred != nil {
		if err := os.Chown(dir, who.uid, who.gid); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-A", "trust", "-U", "postgres",
		"--no-sync", "-E", "UTF8", "--locale=C")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: who.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb failed: %v\n%s", err, out)
	}

	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c := &cluster{dir: dir}
	args := []string{"-D", data, "-k", dir,
		"-c", "listen_addresses=", "-c", "fsync=on",
		"-c", "max_connections=300", "-c", "log_min_messages=warning"}
	for _, kv := range settings {
		args = append(args, "-c", kv)
	}
	c.cmd = exec.Command(postgres, args...)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown.
	c.cmd.SysProcAttr = testproc.DeathSignal(syscall.SIGQUIT, who.cred)
	child, err := testproc.Start(c.cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", postgres, err)
	}
	c.child, c.done = child, child.Done
	if err := c.waitReady(ctx, logPath); err != nil {
		c.stop()
		return nil, err
	}
	ok = true
	return c, nil
}

// waitReady waits for postmaster.pid to say "ready", as pg_ctl -w does.
func (c *cluster) waitReady(ctx context.Context, logPath string) error {
	pidFile := filepath.Join(c.dir, "data", "postmaster.pid")
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(pidFile); err == nil {
			lines := strings.Split(string(b), "\n")
			if len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready" {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited during start (%v); log:\n%s", c.child.Err(), tail(logPath))
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready after %v; log:\n%s", startTimeout, tail(logPath))
		case <-tick.C:
		}
	}
}

// stop shuts the server down the way "pg_ctl stop -m immediate" does
// (SIGQUIT to the postmaster) and removes the cluster directory.
func (c *cluster) stop() error {
	c.stopOnce.Do(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-c.done:
			case <-time.After(30 * time.Second):
				_ = c.cmd.Process.Kill()
				<-c.done
			}
		}
		c.stopErr = os.RemoveAll(c.dir)
	})
	return c.stopErr
}

func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 40 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// postmasterAlive keeps the cluster directory of a dead test while the
// server it started still runs there.
func postmasterAlive(dir string) bool {
	pm, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(pm), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && testproc.Alive(pid)
}
