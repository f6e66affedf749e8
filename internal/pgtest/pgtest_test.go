package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func socketDir(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("host")
}

func TestStart(t *testing.T) {
	var dir string
	t.Run("cluster", func(t *testing.T) {
		dsn := Start(t)
		dir = socketDir(t, dsn)
		if len(dir+"/.s.PGSQL.5432") > 107 {
			t.Errorf("socket path too long: %s", dir)
		}
		conn := connect(t, dsn)
		var version, fsync, listen string
		err := conn.QueryRow(context.Background(),
			"SELECT current_setting('server_version_num'), current_setting('fsync'), current_setting('listen_addresses')").
			Scan(&version, &fsync, &listen)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("server_version_num=%s fsync=%s", version, fsync)
		if fsync != "on" || listen != "" {
			t.Errorf("fsync=%q listen_addresses=%q, want on and empty", fsync, listen)
		}
	})
	if dir == "" {
		return // skipped
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still there after cleanup (err=%v)", dir, err)
	}
}

func TestCreateDB(t *testing.T) {
	a, b := CreateDB(t), CreateDB(t)
	if a == b {
		t.Fatalf("two CreateDB calls gave the same DSN %s", a)
	}
	if socketDir(t, a) != socketDir(t, b) {
		t.Errorf("CreateDB databases are not in one shared cluster: %s, %s", a, b)
	}
	ctx := context.Background()
	ca, cb := connect(t, a), connect(t, b)
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := cb.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("databases from CreateDB are not isolated")
	}
	var enc string
	if err := ca.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(enc, "UTF8") {
		t.Errorf("server_encoding = %s, want UTF8", enc)
	}
}

func TestCreateDBDropsOnCleanup(t *testing.T) {
	var name string
	t.Run("db", func(t *testing.T) {
		dsn := CreateDB(t)
		u, _ := url.Parse(dsn)
		name = strings.TrimPrefix(u.Path, "/")
		// An open session must not stop the drop.
		conn := connect(t, dsn)
		_ = conn
	})
	if name == "" {
		return
	}
	c, err := sharedCluster()
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, c.DSN("postgres"))
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after cleanup", name)
	}
}

// fakeTB records the first Skipf or Fatalf call.
type fakeTB struct {
	testing.TB
	first string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skipf(format string, args ...any) {
	if f.first == "" {
		f.first = "skip: " + fmt.Sprintf(format, args...)
	}
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	if f.first == "" {
		f.first = "fatal: " + fmt.Sprintf(format, args...)
	}
}

func TestUnavailable(t *testing.T) {
	boom := errors.New("initdb not found")
	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	unavailable(f, boom)
	if !strings.HasPrefix(f.first, "skip: SKIPPING: PostgreSQL not available: initdb not found") {
		t.Errorf("without CI: %q", f.first)
	}
	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	unavailable(f, boom)
	if !strings.HasPrefix(f.first, "fatal: ") || !strings.Contains(f.first, "REQUIRED") || !strings.Contains(f.first, "initdb not found") {
		t.Errorf("with CI: %q", f.first)
	}
}
