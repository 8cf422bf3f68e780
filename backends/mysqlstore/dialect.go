package mysqlstore

import (
	"context"
	_ "embed"
	"errors"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/seed-a1426414/stampede/internal/sqlstore"
)

//go:embed schema.sql
var schema string

// statements splits schema.sql into its statements, comments dropped.
func statements() []string {
	var out []string
	for _, st := range strings.Split(schema, ";\n") {
		var lines []string
		for _, l := range strings.Split(st, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if st := strings.TrimSpace(strings.Join(lines, "\n")); st != "" {
			out = append(out, st)
		}
	}
	return out
}

func insert(b *strings.Builder, verb, table string, cols []string, rows int) {
	b.WriteString(verb + " INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
}

// dialect is MySQL's (and MariaDB's) SQL for the engine. Transactions run at READ COMMITTED, where a
// locking read (LOCK IN SHARE MODE), an UPDATE or a DELETE sees the latest committed row and InnoDB
// takes no gap locks; announcements are rows of the events table.
func dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:        "mysql",
		Schema:      statements(),
		MigrateLock: "",
		ShareLock:   " LOCK IN SHARE MODE",
		Upsert: func(table string, cols, key, set, greatest []string, rows int) string {
			var b strings.Builder
			if len(set)+len(greatest) == 0 {
				insert(&b, "INSERT IGNORE", table, cols, rows)
				return b.String()
			}
			insert(&b, "INSERT", table, cols, rows)
			b.WriteString(" ON DUPLICATE KEY UPDATE ")
			var parts []string
			for _, c := range set {
				parts = append(parts, c+" = VALUES("+c+")")
			}
			for _, c := range greatest {
				parts = append(parts, c+" = GREATEST("+c+", VALUES("+c+"))")
			}
			b.WriteString(strings.Join(parts, ", "))
			return b.String()
		},
		InsertIgnore: func(table string, cols, key []string, rows int) string {
			var b strings.Builder
			insert(&b, "INSERT IGNORE", table, cols, rows)
			return b.String()
		},
		DeleteLimit: func(table, where string, n int) string {
			return "DELETE FROM " + table + " WHERE " + where + " LIMIT " + strconv.Itoa(n)
		},
		// The token is replaced only when the lease expired; exp is assigned after token, so both
		// IFs see the old exp. Affected rows: 1 inserted, 2 updated, 0 left as it was.
		TryLease: func(ctx context.Context, q sqlstore.Querier, p string, k []byte, token int64, exp, now int64) (bool, error) {
			n, err := q.Exec(ctx, "INSERT INTO "+p+"leases (k, token, exp) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE "+
				"token = IF(exp <= ?, VALUES(token), token), exp = IF(exp <= ?, VALUES(exp), exp)", k, token, exp, now, now)
			return n == 1 || n == 2, err
		},
		Retryable: func(err error) bool {
			var me *mysql.MySQLError
			return errors.As(err, &me) && me.Number == 1213 // ER_LOCK_DEADLOCK
		},
	}
}
