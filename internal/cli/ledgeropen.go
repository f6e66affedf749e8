package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// sqliteMagic opens every SQLite 3 database file (sqlite.org/fileformat.html,
// section 1.3.1 "Magic Header String").
var sqliteMagic = []byte("SQLite format 3\x00")

// openExistingLedger opens a ledger that must already exist, for reading
// (`ledger verify --ledger`): ledger.Open would create a missing SQLite
// file and its directories and migrate it, and a verify of a mistyped path
// would then report an empty, intact chain. A missing or non-SQLite file
// is an error instead; nothing is created.
func openExistingLedger(ctx context.Context, rawURL string) (ledger.Ledger, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, workload.Invalid(workload.FieldError{Path: "--ledger", Message: "is not a URL: " + err.Error()})
	}
	if u.Scheme == "sqlite" {
		path := u.Opaque
		if path == "" {
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, workload.Invalid(workload.FieldError{Path: "--ledger", Message: "needs a path: sqlite:/path/to/ledger.db"})
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, workload.Errorf(workload.NotFound, "ledger %s does not exist (verify never creates one)", path)
		}
		if err != nil {
			return nil, workload.Errorf(workload.InvalidArgument, "ledger %s: %v", path, err)
		}
		head := make([]byte, len(sqliteMagic))
		_, err = io.ReadFull(f, head)
		f.Close()
		if err != nil || !bytes.Equal(head, sqliteMagic) {
			return nil, workload.Errorf(workload.InvalidArgument, "ledger %s is not a SQLite database", path)
		}
	}
	if u.Scheme == "postgres" || u.Scheme == "postgresql" {
		return openPostgresReadOnly(ctx, u)
	}
	return ledger.Open(ctx, rawURL)
}

// readOnlySQLState is PostgreSQL's read_only_sql_transaction (SQLSTATE
// 25006, Appendix A "PostgreSQL Error Codes").
const readOnlySQLState = "25006"

// openPostgresReadOnly opens a PostgreSQL ledger in sessions that cannot
// write: every transaction is read-only (default_transaction_read_only, a
// runtime parameter pgx passes to the server). ledger.Open migrates a
// database that lacks the schema; here that fails before anything is
// created, and is reported as a missing ledger.
func openPostgresReadOnly(ctx context.Context, u *url.URL) (ledger.Ledger, error) {
	q := u.Query()
	q.Set("default_transaction_read_only", "on")
	ro := *u
	ro.RawQuery = q.Encode()
	l, err := ledger.Open(ctx, ro.String())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == readOnlySQLState {
		return nil, workload.Errorf(workload.NotFound,
			"database %s has no alphaswarm ledger, or one whose schema is not up to date (verify never creates or migrates one; `alphaswarm ledger migrate` does)", RedactURL(u.String()))
	}
	return l, err
}
