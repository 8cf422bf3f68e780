package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"))
}

// queryCounter is a pgx tracer that counts the statements sent to PostgreSQL whose SQL contains table.
type queryCounter struct {
	table string
	n     atomic.Int64
}

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, q.table) && strings.HasPrefix(data.SQL, "SELECT") {
		q.n.Add(1)
	}
	return ctx
}

func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// database returns a pool on a real PostgreSQL: $DATABASE_URL, else the one these machines run on
// 127.0.0.1:5432 with trust authentication, else one started here with initdb in a temporary
// directory. With none to be had the test is skipped, or fails under CI=true.
func database(t *testing.T, tracer pgx.QueryTracer) *pgxpool.Pool {
	t.Helper()
	urls := []string{os.Getenv("DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=2"}
	var reasons []string
	for _, url := range urls {
		if url == "" {
			continue
		}
		if db, err := connect(url, tracer); err == nil {
			return db
		} else {
			reasons = append(reasons, fmt.Sprintf("%s: %v", redact(url), err))
		}
	}
	url, err := startPostgres(t)
	if err == nil {
		db, cerr := connect(url, tracer)
		if cerr == nil {
			return db
		}
		err = cerr
	}
	reasons = append(reasons, "initdb: "+err.Error())
	msg := "no PostgreSQL for the example's test (set DATABASE_URL, run one on 127.0.0.1:5432 with trust auth, or install PostgreSQL's initdb and pg_ctl):\n  " + strings.Join(reasons, "\n  ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return nil
}

func redact(url string) string {
	if i := strings.Index(url, "@"); i > 0 {
		if j := strings.Index(url, "://"); j > 0 && j < i {
			return url[:j+3] + "…" + url[i:]
		}
	}
	return url
}

func connect(url string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Tracer = tracer
	cfg.MaxConns = 16
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// startPostgres runs initdb and pg_ctl in a temporary directory and returns the server's URL; the
// server is stopped when the test ends. As root it runs them as the postgres user, since initdb
// refuses to run as root.
func startPostgres(t *testing.T) (string, error) {
	initdb, err := findPG("initdb")
	if err != nil {
		return "", err
	}
	pgctl, err := findPG("pg_ctl")
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "stampede-pg-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var asUser []string
	if u, err := user.Current(); err == nil && u.Uid == "0" {
		if _, err := user.Lookup("postgres"); err != nil {
			return "", fmt.Errorf("running as root and there is no postgres user to run initdb as")
		}
		if err := exec.Command("chown", "postgres", dir).Run(); err != nil {
			return "", err
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		args = append(asUser, args...)
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(args[len(asUser)]), err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"); err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s", port, dir)
	if err := run(pgctl, "-D", data, "-o", opts, "-w", "-l", filepath.Join(dir, "log"), "start"); err != nil {
		return "", err
	}
	t.Cleanup(func() { _ = run(pgctl, "-D", data, "-m", "fast", "-w", "stop") })
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port), nil
}

// findPG finds a PostgreSQL program on PATH or in Debian's versioned directories.
func findPG(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) > 0 {
		return matches[len(matches)-1], nil
	}
	return "", fmt.Errorf("%s not found", name)
}

// catalog creates a table of its own in a real PostgreSQL and a Catalog over it, and counts the SELECTs
// that reach the database.
func catalog(t *testing.T) (*Catalog, *queryCounter, *pgxpool.Pool) {
	t.Helper()
	table := fmt.Sprintf("stampede_example_%d_%d", os.Getpid(), time.Now().UnixNano())
	q := &queryCounter{table: table}
	db := database(t, q)
	t.Cleanup(db.Close)
	ctx := context.Background()
	require.NoError(t, CreateTable(ctx, db, table, 1000))
	t.Cleanup(func() { _, _ = db.Exec(context.Background(), "DROP TABLE "+pgx.Identifier{table}.Sanitize()) })
	c, err := NewCatalog(db, table, time.Minute)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, q, db
}

// TestOneQueryForConcurrentRequests: 1,000 concurrent requests for one product send one query.
func TestOneQueryForConcurrentRequests(t *testing.T) {
	c, q, _ := catalog(t)
	srv := httptest.NewServer(c.Routes())
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for range 1000 {
		wg.Go(func() {
			resp, err := client.Get(srv.URL + "/products/7")
			if err != nil {
				wrong.Add(1)
				return
			}
			defer resp.Body.Close()
			var p Product
			if json.NewDecoder(resp.Body).Decode(&p) != nil || p.Name != "product 7" || p.Price != 700 {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	assert.Zero(t, wrong.Load())
	assert.Equal(t, int64(1), q.n.Load(), "queries sent to PostgreSQL")
}

// TestListPageBatches: a list of 10 products of which 4 are cached sends one query for the other 6;
// ids without a row are left out, and remembered.
func TestListPageBatches(t *testing.T) {
	c, q, _ := catalog(t)
	ctx := context.Background()
	for _, id := range []int64{1, 2, 3, 4} {
		_, err := c.Products.Get(ctx, id)
		require.NoError(t, err)
	}
	c.Products.Wait()
	before := q.n.Load()
	got, err := c.Products.GetMany(ctx, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 100_000})
	require.NoError(t, err)
	assert.Len(t, got, 9)
	assert.Equal(t, "product 9", got[9].Name)
	assert.Equal(t, int64(1), q.n.Load()-before, "one batched query for the misses")
	c.Products.Wait()
	_, err = c.Products.Get(ctx, 100_000)
	assert.ErrorContains(t, err, "not found")
	assert.Equal(t, int64(1), q.n.Load()-before, "the missing product was remembered")
	s := c.Products.Snapshot()
	assert.Equal(t, uint64(1), s.BatchLoads)
	assert.Equal(t, uint64(1), s.CachedErrors)
}

// TestRenameInvalidates: after an UPDATE and Invalidate, the next read sees the new row.
func TestRenameInvalidates(t *testing.T) {
	c, q, _ := catalog(t)
	ctx := context.Background()
	p, err := c.Products.Get(ctx, 5)
	require.NoError(t, err)
	assert.Equal(t, "product 5", p.Name)
	c.Products.Wait()
	require.NoError(t, c.Rename(ctx, 5, "renamed"))
	p, err = c.Products.Get(ctx, 5)
	require.NoError(t, err)
	assert.Equal(t, "renamed", p.Name)
	assert.Equal(t, int64(2), q.n.Load())

	srv := httptest.NewServer(c.Routes())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/products/999999")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	srv.Client().CloseIdleConnections()
}
