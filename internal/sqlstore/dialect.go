package sqlstore

import (
	"context"
	"fmt"
	"strings"
)

// Dialect is what differs between the databases: the few statements whose syntax differs, how a list
// of keys is passed, how a locking read is spelled, and how announcements travel. Statements use "?"
// placeholders and "{p}" for the table prefix; a DB adapter for a database with numbered placeholders
// rewrites them.
type Dialect struct {
	// Name is the database's name in errors ("postgres", "mysql", "sqlite").
	Name string
	// Schema is the DDL that creates the tables, one statement each, every one idempotent.
	Schema []string
	// MigrateLock, when set, runs first in Migrate's transaction, so that replicas starting together
	// do not race each other's CREATE statements (PostgreSQL: an advisory lock).
	MigrateLock string
	// Writers is how many batched writes may be in flight at once (default 4); SQLite, with one
	// writer at a time, has 1.
	Writers int
	// Array: a list is one parameter matched with "= ANY(?)" (PostgreSQL); otherwise "IN (?, ...)".
	Array bool
	// ShareLock is appended to the reads that must block a concurrent revocation until the write
	// they guard commits (" FOR SHARE"); empty where every write transaction is serialised (SQLite).
	ShareLock string
	// Upsert returns an INSERT of rows rows of cols into table that, on a conflict on the key columns,
	// sets each column of set to its new value and each of greatest to the larger of the old and the new.
	Upsert func(table string, cols, key, set, greatest []string, rows int) string
	// InsertIgnore returns an INSERT of cols into table that does nothing on a conflict on key.
	InsertIgnore func(table string, cols, key []string, rows int) string
	// DeleteLimit returns a DELETE of at most n rows of table matching where.
	DeleteLimit func(table, where string, n int) string
	// TryLease runs the lease statement: it sets (k, token, exp) unless a lease of k with exp > now is
	// there, and reports whether it did.
	TryLease func(ctx context.Context, q Querier, p string, k []byte, token int64, exp, now int64) (bool, error)
	// Notify, when set, sends msgs inside the transaction q (PostgreSQL: pg_notify on channel).
	// Without it, announcements are rows of the events table, polled by every Store.
	Notify func(ctx context.Context, q Querier, channel string, msgs []string) error
	// Listen, when set, receives the notifications of channel until ctx ends: it calls ready once
	// listening (again after each reconnection, after which notices may have been missed) and deliver
	// with each payload.
	Listen func(ctx context.Context, channel string, ready func(), deliver func(payload string)) error
	// Retryable reports whether err is a deadlock or serialisation failure worth one more try.
	Retryable func(err error) bool
}

// sql replaces {p} in query with the prefix.
func (s *Store) sql(query string) string { return strings.ReplaceAll(query, "{p}", s.cfg.Prefix) }

// in returns the condition "col is one of n values" and appends the values to args.
func (s *Store) in(col string, vals [][]byte, args []any) (string, []any) {
	if s.d.Array {
		return col + " = ANY(?)", append(args, vals)
	}
	var b strings.Builder
	b.WriteString(col)
	b.WriteString(" IN (")
	for i, v := range vals {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('?')
		args = append(args, v)
	}
	b.WriteByte(')')
	return b.String(), args
}

// ValidPrefix reports whether p can prefix table names: a lower-case SQL identifier of at most 40
// characters (letters, digits, underscores; not starting with a digit), never quoted nor interpolated
// unchecked.
func ValidPrefix(p string) error {
	if p == "" || len(p) > 40 {
		return fmt.Errorf("%w: %q: 1 to 40 characters", ErrInvalidPrefix, p)
	}
	for i, c := range []byte(p) {
		switch {
		case c >= 'a' && c <= 'z', c == '_', c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("%w: %q: lower-case letters, digits and underscores, not starting with a digit", ErrInvalidPrefix, p)
		}
	}
	return nil
}
