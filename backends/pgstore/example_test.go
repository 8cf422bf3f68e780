package pgstore_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/pgstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// A fleet sharing one cache in PostgreSQL, without Redis: each replica runs this. A memory tier in
// front keeps hits in-process; NOTIFY clears every replica's memory tier on a purge; fleet coalescing
// runs the handler once per key across the replicas. (Not run by go test: it needs a server.)
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	pg, err := pgstore.New(pool,
		pgstore.WithTablePrefix("myapp_cache_"),
		pgstore.WithUnlogged(true),                // cheaper writes; emptied after a crash, which a cache can afford
		pgstore.WithMaxRows(500_000),              // the sweep evicts what expires first beyond that
		pgstore.WithTimeout(200*time.Millisecond)) // a slow database costs a request at most this
	if err != nil {
		log.Fatal(err)
	}
	defer pg.Close()
	if err := pg.Migrate(ctx); err != nil { // idempotent: every replica may run it at start-up
		log.Fatal(err)
	}
	mem, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	store := tieredstore.New(mem, pg)
	defer store.Close()

	cache := stampede.New(nil, store, time.Minute, stampede.WithFleetCoalescing(5*time.Second))
	mux := http.NewServeMux()
	mux.Handle("/reports/", cache.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("an expensive report"))
	})))
	log.Fatal(http.ListenAndServe(":8080", mux))
}

// The function API on PostgreSQL: one load per key across the fleet, values shared by every replica.
func Example_loader() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/app")
	if err != nil {
		log.Fatal(err)
	}
	pg, err := pgstore.New(pool)
	if err != nil {
		log.Fatal(err)
	}
	if err := pg.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	prices := stampede.NewLoader("prices", func(ctx context.Context, sku string) (int, error) {
		return 4200, nil // SELECT price FROM products WHERE sku = $1
	}, stampede.WithStore(pg), stampede.WithTTL(time.Minute), stampede.WithFleetCoalescing(5*time.Second))
	defer prices.Close()
	p, err := prices.Get(ctx, "sku-1")
	log.Println(p, err)
}
