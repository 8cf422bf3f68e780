package mysqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/seed-a1426414/stampede/backends/mysqlstore"
)

// serverDSN is the MariaDB (or MySQL) the ordinary tests use: STAMPEDE_MYSQL_DSN, else the machine's
// server on 3306 (database "test", created if missing). Each test works in tables of its own (a random
// prefix) and drops them. The tests that stop or pause a server start their own (mysqltest_test.go).
func serverDSN() string {
	if d := os.Getenv("STAMPEDE_MYSQL_DSN"); d != "" {
		return d
	}
	return "root@tcp(127.0.0.1:3306)/test"
}

// ensureDatabase creates the database of the default DSN where it is missing.
func ensureDatabase(ctx context.Context, dsn string) {
	if dsn != "root@tcp(127.0.0.1:3306)/test" {
		return
	}
	if db, err := sql.Open("mysql", "root@tcp(127.0.0.1:3306)/"); err == nil {
		_, _ = db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS test")
		_ = db.Close()
	}
}

// unavailable skips the test, or fails it under CI=true, where a missing server is an error.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// openDB opens dsn; the handle is closed when the test ends.
func openDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ensureDatabase(ctx, dsn)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		unavailable(t, "MySQL at %s: %v (set STAMPEDE_MYSQL_DSN, or run make deps)", dsn, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// randomPrefix returns a table prefix no other test uses.
func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + "_"
}

// newStore returns a migrated Store on fresh tables, closed and dropped when the test ends.
func newStore(t testing.TB, db *sql.DB, opts ...mysqlstore.Option) *mysqlstore.Store {
	t.Helper()
	s, err := mysqlstore.New(db, append([]mysqlstore.Option{mysqlstore.WithTablePrefix(randomPrefix())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.DropTables(ctx); err != nil {
			t.Errorf("drop tables: %v", err)
		}
	})
	return s
}
