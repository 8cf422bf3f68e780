// Package sqlbench measures the SQL stores (backends/pgstore, backends/mysqlstore,
// backends/sqlitestore) beside each other: the Zipf trace through the middleware on each, a flood of
// one-off keys against each table bound, and PostgreSQL and MariaDB killed and restarted in the middle
// of a trace. It is run by make bench-sql (not by make test): the tests here print figures and assert
// only what must hold (no duplicate handler run while the database answers, no failed request, the
// tables within their bounds).
package sqlbench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/mysqlstore"
	"github.com/seed-a1426414/stampede/backends/pgstore"
	"github.com/seed-a1426414/stampede/backends/sqlitestore"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
	"github.com/seed-a1426414/stampede/internal/sqltest"
)

// The machine's servers, as the stores' own tests use them.
const (
	pgURL    = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	mysqlDSN = "root@tcp(127.0.0.1:3306)/test"
)

// envInt reads a size from the environment, for shorter runs.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sqlStore is what the benchmarks need of each store.
type sqlStore interface {
	stampede.Store
	Sweep(ctx context.Context) error
	Prefix() string
	Close() error
}

// counter counts a table's rows.
type counter func(table string) int64

func prefix(name string) string { return fmt.Sprintf("bench_%s_%d_", name, time.Now().UnixNano()%1e9) }

// stores opens one store of each kind with opts applied, each on fresh tables dropped at the end.
func stores(t *testing.T, maxRows int64) map[string]struct {
	s     sqlStore
	count counter
} {
	ctx := context.Background()
	out := map[string]struct {
		s     sqlStore
		count counter
	}{}
	pool, err := pgxpool.New(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	pg, err := pgstore.New(pool, pgstore.WithTablePrefix(prefix("pg")), pgstore.WithMaxRows(maxRows), pgstore.WithUnlogged(true))
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Close(); _ = pg.DropTables(context.Background()) })
	out["pgstore"] = struct {
		s     sqlStore
		count counter
	}{pg, func(table string) int64 {
		var n int64
		_ = pool.QueryRow(ctx, "SELECT count(*) FROM "+pg.Prefix()+table).Scan(&n)
		return n
	}}

	db, err := sql.Open("mysql", mysqlDSN)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(64)
	db.SetMaxIdleConns(64)
	t.Cleanup(func() { _ = db.Close() })
	my, err := mysqlstore.New(db, mysqlstore.WithTablePrefix(prefix("my")), mysqlstore.WithMaxRows(maxRows))
	if err != nil {
		t.Fatal(err)
	}
	if err := my.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = my.Close(); _ = my.DropTables(context.Background()) })
	out["mysqlstore"] = struct {
		s     sqlStore
		count counter
	}{my, func(table string) int64 {
		var n int64
		_ = db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+my.Prefix()+table).Scan(&n)
		return n
	}}

	path := filepath.Join(t.TempDir(), "bench.db")
	lite, err := sqlitestore.Open(path, sqlitestore.WithMaxRows(maxRows))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lite.Close() })
	ldb, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ldb.Close() })
	out["sqlitestore"] = struct {
		s     sqlStore
		count counter
	}{lite, func(table string) int64 {
		var n int64
		_ = ldb.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+lite.Prefix()+table).Scan(&n)
		return n
	}}
	return out
}

// TestTrace replays the Zipf trace through the middleware on each store: every distinct key runs the
// handler once (Duplicates 0) and no request fails.
func TestTrace(t *testing.T) {
	n := envInt("STAMPEDE_TRACE", 20_000)
	keys := trace.Keys(n, 1)
	for name, st := range stores(t, 1_000_000) {
		t.Run(name, func(t *testing.T) {
			cache := stampede.New(nil, st.s, time.Hour, stampede.WithKeyPrefix(prefix("trace")))
			r := trace.Run(trace.Config{Keys: keys, Workers: 64, Sleep: 10 * time.Millisecond, Middleware: cache.Handler, Wait: cache.Wait})
			t.Logf("%s: %d requests, %d distinct, %d runs, %d duplicates, %d wrong, wall %v (%.2fx the lower bound), p50 %v, p99 %v",
				name, r.Requests, r.Distinct, r.Runs, r.Duplicates, r.Wrong, r.Wall.Round(time.Millisecond), r.Ratio(), r.P50, r.P99)
			if r.Duplicates != 0 || r.Wrong != 0 || r.Runs != int64(r.Distinct) {
				t.Errorf("handler runs %d for %d distinct keys (%d duplicates), %d wrong", r.Runs, r.Distinct, r.Duplicates, r.Wrong)
			}
		})
	}
}

// TestFlood writes STAMPEDE_FLOOD (default 1,000,000) one-off keys into each store bounded to 10,000
// rows, from 32 goroutines, sampling the table's size meanwhile: after a sweep it is within its bound.
func TestFlood(t *testing.T) {
	n := envInt("STAMPEDE_FLOOD", 1_000_000)
	const bound = 10_000
	for name, st := range stores(t, bound) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var next, failed atomic.Int64
			var peak atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
						if c := st.count("entries"); c > peak.Load() {
							peak.Store(c)
						}
					}
				}
			}()
			value := make([]byte, 200)
			start := time.Now()
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(n) {
							return
						}
						if err := st.s.SetEx(ctx, fmt.Sprint("flood/", i), value, time.Hour); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			took := time.Since(start)
			close(stop)
			<-sampled
			if err := st.s.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			rows := st.count("entries")
			t.Logf("%s: %d one-off keys in %v (%.0f/s), %d failed writes; entries peaked at %d (sampled each second), %d after a sweep; bound %d",
				name, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), failed.Load(), peak.Load(), rows, bound)
			if rows > bound {
				t.Errorf("%d rows after a sweep, bound %d", rows, bound)
			}
		})
	}
}

// TestKilledMidTrace replays the trace through the middleware on a store whose server is killed a
// third of the way through and restarted at two thirds: no request fails (the handler serves them
// while the store is down).
func TestKilledMidTrace(t *testing.T) {
	n := envInt("STAMPEDE_TRACE", 20_000)
	keys := trace.Keys(n, 2)
	for _, kind := range []string{"pgstore", "mysqlstore"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var srv *sqltest.Server
			var s stampede.Store
			switch kind {
			case "pgstore":
				srv = sqltest.StartPostgres(t)
				pool, err := pgxpool.New(ctx, srv.URL())
				if err != nil {
					t.Fatal(err)
				}
				defer pool.Close()
				pg, err := pgstore.New(pool, pgstore.WithTimeout(200*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				if err := pg.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				defer pg.Close()
				s = pg
			case "mysqlstore":
				srv = sqltest.StartMariaDB(t)
				db, err := sql.Open("mysql", srv.DSN())
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				my, err := mysqlstore.New(db, mysqlstore.WithTimeout(200*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				if err := my.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				defer my.Close()
				s = my
			}
			cache := stampede.New(nil, s, time.Hour, stampede.WithStoreTimeout(200*time.Millisecond))
			var progress atomic.Int64
			done := make(chan struct{})
			var downFor time.Duration
			go func() {
				defer close(done)
				for progress.Load() < int64(n/3) {
					time.Sleep(time.Millisecond)
				}
				began := time.Now()
				srv.Kill()
				for progress.Load() < int64(2*n/3) {
					time.Sleep(time.Millisecond)
				}
				srv.Restart()
				downFor = time.Since(began)
			}()
			r := trace.Run(trace.Config{Keys: keys, Workers: 64, Sleep: 10 * time.Millisecond, Middleware: cache.Handler,
				Wait: cache.Wait, Progress: &progress})
			<-done
			snap := cache.Snapshot()
			t.Logf("%s killed for %v mid-trace: %d requests, %d wrong or failed, %d distinct, %d runs (%d duplicates while it was down), store get/set errors %d/%d, breaker trips %d, p50 %v, p99 %v",
				kind, downFor.Round(time.Millisecond), r.Requests, r.Wrong, r.Distinct, r.Runs, r.Duplicates, snap.StoreGetErrors, snap.StoreSetErrors,
				snap.BreakerTrips, r.P50, r.P99)
			if r.Wrong != 0 {
				t.Errorf("%d requests failed", r.Wrong)
			}
		})
	}
}
