package sqlstore

import "context"

// Querier runs statements: a database handle or a transaction.
type Querier interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a statement that returns rows. The caller closes them.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// Rows is the result of [Querier.Query], as database/sql and pgx both have it.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// DB is a connection pool adapted by a store module.
type DB interface {
	Querier
	// Tx runs fn in a transaction and commits it when fn returns nil; it rolls back otherwise and
	// returns fn's error.
	Tx(ctx context.Context, fn func(Querier) error) error
}

// queryRow runs query and scans its first row into dest; found is false when it returned none.
func queryRow(ctx context.Context, q Querier, query string, args []any, dest ...any) (found bool, err error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return false, rows.Err()
	}
	if err := rows.Scan(dest...); err != nil {
		return false, err
	}
	return true, rows.Err()
}
