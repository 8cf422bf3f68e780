package sqlitestore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/sqlitestore"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// TestBounded floods a store bounded to 20 rows with 200 one-off keys (each tagged, ticketed,
// leased, and half of them announcing an invalidation): after a sweep every table is within its bound.
// make bench-sql floods a million.
func TestBounded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cache.db")
	s := open(t, path, sqlitestore.WithMaxRows(20), sqlitestore.WithSweepInterval(time.Hour), sqlitestore.WithTimeout(callTimeout))
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.RunBounded(t, s, storetest.Bounded{
		MaxRows: 20,
		Sweep:   s.Sweep,
		Count: func(t *testing.T, table string) int64 {
			var n int64
			if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+s.Prefix()+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
		Tables: []string{"tickets", "leases", "members", "tags", "events"},
	}, 200)
}
