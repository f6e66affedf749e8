package sqlite

import "database/sql"

// DB is the ledger's database handle, for the tests that tamper with rows
// behind the ledger's back.
func DB(l *Ledger) *sql.DB { return l.db }
