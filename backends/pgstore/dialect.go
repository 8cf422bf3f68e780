package pgstore

import (
	"context"
	_ "embed"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede/internal/sqlstore"
)

//go:embed schema.sql
var schema string

// statements splits schema.sql into its statements, comments dropped, with {unlogged} in place.
func statements(unlogged bool) []string {
	u := ""
	if unlogged {
		u = "UNLOGGED"
	}
	var out []string
	for _, st := range strings.Split(schema, ";\n") {
		var lines []string
		for _, l := range strings.Split(st, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if st := strings.TrimSpace(strings.Join(lines, "\n")); st != "" {
			out = append(out, strings.ReplaceAll(st, "{unlogged}", u))
		}
	}
	return out
}

// dialect is PostgreSQL's SQL for the engine.
func dialect(pool *pgxpool.Pool, unlogged bool) sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:   "postgres",
		Schema: statements(unlogged),
		// Replicas that start together must not race each other's CREATE statements (PostgreSQL
		// can fail one with a unique violation in its catalogue).
		MigrateLock: "SELECT pg_advisory_xact_lock(hashtext('{p}stampede_migrate'))",
		Array:       true,
		ShareLock:   " FOR SHARE",
		Upsert: func(table string, cols, key, set, greatest []string, rows int) string {
			var b strings.Builder
			insert(&b, table, cols, rows)
			b.WriteString(" ON CONFLICT (" + strings.Join(key, ", ") + ")")
			if len(set)+len(greatest) == 0 {
				b.WriteString(" DO NOTHING")
				return b.String()
			}
			b.WriteString(" DO UPDATE SET ")
			var parts []string
			for _, c := range set {
				parts = append(parts, c+" = excluded."+c)
			}
			for _, c := range greatest {
				parts = append(parts, c+" = GREATEST("+table+"."+c+", excluded."+c+")")
			}
			b.WriteString(strings.Join(parts, ", "))
			return b.String()
		},
		InsertIgnore: func(table string, cols, key []string, rows int) string {
			var b strings.Builder
			insert(&b, table, cols, rows)
			b.WriteString(" ON CONFLICT (" + strings.Join(key, ", ") + ") DO NOTHING")
			return b.String()
		},
		DeleteLimit: func(table, where string, n int) string {
			return "DELETE FROM " + table + " WHERE ctid = ANY(ARRAY(SELECT ctid FROM " + table + " WHERE " + where +
				" LIMIT " + strconv.Itoa(n) + "))"
		},
		TryLease: func(ctx context.Context, q sqlstore.Querier, p string, k []byte, token int64, exp, now int64) (bool, error) {
			n, err := q.Exec(ctx, "INSERT INTO "+p+"leases (k, token, exp) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE "+
				"SET token = excluded.token, exp = excluded.exp WHERE "+p+"leases.exp <= ?", k, token, exp, now)
			return n == 1, err
		},
		Notify: func(ctx context.Context, q sqlstore.Querier, channel string, msgs []string) error {
			if len(msgs) == 0 {
				return nil
			}
			rows, err := q.Query(ctx, "SELECT pg_notify(?, m) FROM unnest(?::text[]) AS m", channel, msgs)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
			return err
		},
		Listen: func(ctx context.Context, channel string, ready func(), deliver func(string)) error {
			return listen(ctx, pool, channel, ready, deliver)
		},
		Retryable: func(err error) bool {
			var pe *pgconn.PgError
			return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
		},
	}
}

func insert(b *strings.Builder, table string, cols []string, rows int) {
	b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
}

// listenIdle is how long the listener waits for a notification before it checks that the server
// still answers: a paused or unreachable server sends no error, and a listener that does not notice
// would leave the waiters to their leases' expiry for good.
const listenIdle = 5 * time.Second

// listen holds a connection of its own (not one of the pool's) that LISTENs on channel and hands
// every notification to deliver, until ctx ends or the connection fails.
func listen(ctx context.Context, pool *pgxpool.Pool, channel string, ready func(), deliver func(string)) error {
	cfg := pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	cctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	_, err = conn.Exec(cctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	cancel()
	if err != nil {
		return err
	}
	ready()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			deliver(n.Payload)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		// Idle: check that the server still answers.
		pctx, cancel := context.WithTimeout(ctx, listenIdle)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
	}
}

// db adapts a pgx pool to the engine: "?" placeholders become "$n" (rewritten once per statement).
type db struct {
	pool      *pgxpool.Pool
	rewritten sync.Map // statement with "?" -> with "$n"
}

func (d *db) rewrite(q string) string {
	if v, ok := d.rewritten.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	r := b.String()
	d.rewritten.Store(q, r)
	return r
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type pgQuerier struct {
	d *db
	q querier
}

func (p pgQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := p.q.Exec(ctx, p.d.rewrite(query), args...)
	return tag.RowsAffected(), err
}

func (p pgQuerier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := p.q.Query(ctx, p.d.rewrite(query), args...)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (d *db) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return pgQuerier{d, d.pool}.Exec(ctx, query, args...)
}

func (d *db) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	return pgQuerier{d, d.pool}.Query(ctx, query, args...)
}

func (d *db) Tx(ctx context.Context, fn func(sqlstore.Querier) error) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error { return fn(pgQuerier{d, tx}) })
}
