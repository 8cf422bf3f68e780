package sqlstore

import (
	"context"
	"database/sql"
)

// SQLDB adapts database/sql handles to [DB]: reads outside transactions go to Read, everything else
// to Write (the same handle, or for SQLite a handle of one connection, so that writers queue in Go
// rather than spin on the database lock). Transactions start with Isolation.
type SQLDB struct {
	Read, Write *sql.DB
	Isolation   sql.IsolationLevel
}

type sqlQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { _ = r.Rows.Close() }

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
	return execOn(ctx, d.Write, query, args)
}

// Query runs query on Read.
func (d *SQLDB) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	return queryOn(ctx, d.Read, query, args)
}

type sqlTx struct{ tx *sql.Tx }

func (t sqlTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return execOn(ctx, t.tx, query, args)
}

func (t sqlTx) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	return queryOn(ctx, t.tx, query, args)
}

// Tx runs fn in a transaction on Write.
func (d *SQLDB) Tx(ctx context.Context, fn func(Querier) error) error {
	tx, err := d.Write.BeginTx(ctx, &sql.TxOptions{Isolation: d.Isolation})
	if err != nil {
		return err
	}
	if err := fn(sqlTx{tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
