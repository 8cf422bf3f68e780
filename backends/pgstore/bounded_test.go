package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/pgstore"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// TestBounded floods a store bounded to 20 rows with 200 one-off keys (each tagged, ticketed,
// leased): after a sweep every table is within its bound. make bench-sql floods a million.
func TestBounded(t *testing.T) {
	t.Parallel()
	pool := newPool(t, serverURL())
	s := newStore(t, pool, pgstore.WithMaxRows(20), pgstore.WithSweepInterval(time.Hour), pgstore.WithTimeout(callTimeout))
	storetest.RunBounded(t, s, storetest.Bounded{
		MaxRows: 20,
		Sweep:   s.Sweep,
		Count: func(t *testing.T, table string) int64 {
			var n int64
			if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+s.Prefix()+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
		Tables: []string{"tickets", "leases", "members", "tags"},
	}, 200)
}
