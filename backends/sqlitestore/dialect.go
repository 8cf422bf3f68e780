package sqlitestore

import (
	"context"
	_ "embed"
	"strconv"
	"strings"

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

// dialect is SQLite's SQL for the engine. Every write transaction is BEGIN IMMEDIATE (one writer at a
// time), so no read needs a lock of its own; announcements are rows of the events table.
func dialect() sqlstore.Dialect {
	return sqlstore.Dialect{
		Name:    "sqlite",
		Writers: 1,
		Schema:  statements(),
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
				parts = append(parts, c+" = max("+c+", excluded."+c+")")
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
			return "DELETE FROM " + table + " WHERE rowid IN (SELECT rowid FROM " + table + " WHERE " + where +
				" LIMIT " + strconv.Itoa(n) + ")"
		},
		TryLease: func(ctx context.Context, q sqlstore.Querier, p string, k []byte, token int64, exp, now int64) (bool, error) {
			n, err := q.Exec(ctx, "INSERT INTO "+p+"leases (k, token, exp) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE "+
				"SET token = excluded.token, exp = excluded.exp WHERE exp <= ?", k, token, exp, now)
			return n == 1, err
		},
	}
}
