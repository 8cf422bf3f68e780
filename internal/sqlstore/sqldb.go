package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// SQLDB adapts database/sql handles to [DB]: reads outside transactions go to Read, everything else
// to Write (the same handle, or for SQLite a handle of one connection, so that writers queue in Go
// rather than spin on the database lock). Transactions start with Isolation.
//
// Statements are prepared once per handle and kept (up to maxStmts of them; the IN lists of batched
// reads make statements of many lengths), so that a call is one round trip where the driver would
// otherwise prepare, execute and close a statement each time (go-sql-driver/mysql without
// interpolateParams: three).
type SQLDB struct {
	Read, Write *sql.DB
	Isolation   sql.IsolationLevel

	mu    sync.Mutex
	stmts map[stmtKey]*sql.Stmt // guarded by mu
}

type stmtKey struct {
	db    *sql.DB
	query string
}

// maxStmts bounds the statements a SQLDB keeps prepared: MySQL prepares each on every connection that
// runs it, within max_prepared_stmt_count (16,382 by default) for the whole server.
const maxStmts = 64

// stmt returns query prepared on db, or nil when it is not worth keeping (too many kept already) or
// could not be prepared (the caller then runs the query unprepared, and sees the error there).
func (d *SQLDB) stmt(ctx context.Context, db *sql.DB, query string) *sql.Stmt {
	k := stmtKey{db, query}
	d.mu.Lock()
	st, ok := d.stmts[k]
	full := len(d.stmts) >= maxStmts
	d.mu.Unlock()
	if ok || full {
		return st
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stmts == nil {
		d.stmts = map[stmtKey]*sql.Stmt{}
	}
	if old, ok := d.stmts[k]; ok { // prepared meanwhile by another call
		_ = st.Close()
		return old
	}
	d.stmts[k] = st
	return st
}

// Close closes the prepared statements.
func (d *SQLDB) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, st := range d.stmts {
		_ = st.Close()
	}
	d.stmts = nil
}

type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

type stmtQuerier struct{ st *sql.Stmt }

func (s stmtQuerier) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return s.st.ExecContext(ctx, args...)
}

func (s stmtQuerier) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return s.st.QueryContext(ctx, args...)
}

// on returns what runs query on db: its prepared statement when there is one.
func (d *SQLDB) on(ctx context.Context, db *sql.DB, query string) sqlQuerier {
	if st := d.stmt(ctx, db, query); st != nil {
		return stmtQuerier{st}
	}
	return db
}

func execOn(ctx context.Context, q sqlQuerier, query string, args []any) (int64, error) {
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func queryOn(ctx context.Context, q sqlQuerier, query string, args []any) (Rows, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

// Exec runs query on Write.
func (d *SQLDB) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execOn(ctx, d.on(ctx, d.Write, query), query, args)
}

// Query runs query on Read.
func (d *SQLDB) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	return queryOn(ctx, d.on(ctx, d.Read, query), query, args)
}

type sqlTx struct {
	d  *SQLDB
	tx *sql.Tx
}

// on returns what runs query in the transaction: the handle's prepared statement, bound to it, when
// one was prepared already. It prepares none itself: that takes a connection of the handle, and the
// transaction may hold the only one (SQLite's writer).
func (t sqlTx) on(ctx context.Context, query string) sqlQuerier {
	t.d.mu.Lock()
	st := t.d.stmts[stmtKey{t.d.Write, query}]
	t.d.mu.Unlock()
	if st != nil {
		return stmtQuerier{t.tx.StmtContext(ctx, st)}
	}
	return t.tx
}

func (t sqlTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execOn(ctx, t.on(ctx, query), query, args)
}

func (t sqlTx) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	return queryOn(ctx, t.on(ctx, query), query, args)
}

// Tx runs fn in a transaction on Write.
func (d *SQLDB) Tx(ctx context.Context, fn func(Querier) error) error {
	tx, err := d.Write.BeginTx(ctx, &sql.TxOptions{Isolation: d.Isolation})
	if err != nil {
		return err
	}
	if err := fn(sqlTx{d, tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
