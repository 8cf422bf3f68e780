package pgstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede/backends/pgstore"
)

// serverURL is the PostgreSQL the ordinary tests use: STAMPEDE_PG_URL, else the machine's server on
// 5432. Each test works in tables of its own (a random prefix) and drops them. The tests that stop or
// pause a server start their own (pgtest_test.go).
func serverURL() string {
	if u := os.Getenv("STAMPEDE_PG_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// unavailable skips the test, or fails it under CI=true, where a missing server is an error.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// newPool connects to url; the pool is closed when the test ends.
func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, url)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		unavailable(t, "PostgreSQL at %s: %v (set STAMPEDE_PG_URL, or run make deps)", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// randomPrefix returns a table prefix no other test uses.
func randomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + "_"
}

// newStore returns a migrated Store on fresh tables, closed and dropped when the test ends.
func newStore(t testing.TB, pool *pgxpool.Pool, opts ...pgstore.Option) *pgstore.Store {
	t.Helper()
	s, err := pgstore.New(pool, append([]pgstore.Option{pgstore.WithTablePrefix(randomPrefix())}, opts...)...)
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
