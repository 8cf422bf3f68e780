// Command loader puts a stampede Loader in front of a PostgreSQL query: one query per product however
// many requests ask for it at once, one batched query (WHERE id = ANY($1)) for the products a list page
// misses, products that do not exist remembered for a while, and the loader's statistics at
// /debug/stampede. It is a module of its own, so that pgx never reaches the library's go.mod.
//
//	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable go run .
//	curl localhost:3340/products/1
//	curl 'localhost:3340/products?ids=1,2,3'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// Product is one row of the products table.
type Product struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Price int64  `json:"price_cents"`
}

// Catalog reads products from PostgreSQL through a Loader.
type Catalog struct {
	db       *pgxpool.Pool
	table    string // a quoted identifier
	values   *memstore.Values[any]
	Products *stampede.Loader[int64, Product]
}

// NewCatalog builds the Loader over table in db. Products are kept in memory as Go values for ttl;
// missing ones for a minute.
func NewCatalog(db *pgxpool.Pool, table string, ttl time.Duration) (*Catalog, error) {
	values, err := memstore.NewValues[any](100_000)
	if err != nil {
		return nil, err
	}
	c := &Catalog{db: db, table: pgx.Identifier{table}.Sanitize(), values: values}
	c.Products = stampede.NewLoader("products", c.product,
		stampede.WithValues(values),
		stampede.WithTTL(ttl),
		stampede.WithStaleWhileRevalidate(ttl), // a hot product is refreshed in the background
		stampede.WithBatchLoad(c.products),
		stampede.WithErrorTTL(func(err error) time.Duration {
			if errors.Is(err, stampede.ErrNotFound) {
				return time.Minute
			}
			return 0 // a database error is not kept: the next request tries again
		}),
	)
	return c, nil
}

// Close waits for the loader's background work and stops its memory store.
func (c *Catalog) Close() {
	c.Products.Close()
	c.values.Close()
}

// product is the load function: one row by id.
func (c *Catalog) product(ctx context.Context, id int64) (Product, error) {
	var p Product
	err := c.db.QueryRow(ctx, "SELECT id, name, price_cents FROM "+c.table+" WHERE id = $1", id).Scan(&p.ID, &p.Name, &p.Price)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("product %d: %w", id, stampede.ErrNotFound)
	}
	return p, err
}

// products is the batch load function: the rows of ids in one query; ids without a row are left out.
func (c *Catalog) products(ctx context.Context, ids []int64) (map[int64]Product, error) {
	rows, err := c.db.Query(ctx, "SELECT id, name, price_cents FROM "+c.table+" WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Product, len(ids))
	for rows.Next() {
		var p Product
		if err := rows.Scan(&p.ID, &p.Name, &p.Price); err != nil {
			rows.Close()
			return nil, err
		}
		out[p.ID] = p
	}
	return out, rows.Err()
}

// Rename changes a product's name in the database and invalidates what the loader keeps for it.
func (c *Catalog) Rename(ctx context.Context, id int64, name string) error {
	if _, err := c.db.Exec(ctx, "UPDATE "+c.table+" SET name = $2 WHERE id = $1", id, name); err != nil {
		return err
	}
	return c.Products.Invalidate(ctx, id)
}

// CreateTable creates table and fills it with n products.
func CreateTable(ctx context.Context, db *pgxpool.Pool, table string, n int) error {
	t := pgx.Identifier{table}.Sanitize()
	_, err := db.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t+" (id bigint PRIMARY KEY, name text NOT NULL, price_cents bigint NOT NULL)")
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, "INSERT INTO "+t+" SELECT i, 'product ' || i, i * 100 FROM generate_series(1, $1) AS i ON CONFLICT (id) DO NOTHING", n)
	return err
}

// Routes serves GET /products/{id} and GET /products?ids=1,2,3.
func (c *Catalog) Routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.Error(w, "bad id", http.StatusBadRequest)
			return
		}
		p, err := c.Products.Get(r.Context(), id)
		switch {
		case errors.Is(err, stampede.ErrNotFound):
			http.Error(w, "no such product", http.StatusNotFound)
		case err != nil:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		default:
			writeJSON(w, p)
		}
	})
	mux.HandleFunc("GET /products", func(w http.ResponseWriter, r *http.Request) {
		var ids []int64
		for part := range strings.SplitSeq(r.URL.Query().Get("ids"), ",") {
			if id, err := strconv.ParseInt(part, 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
		found, err := c.Products.GetMany(r.Context(), ids)
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		list := make([]Product, 0, len(found))
		for _, id := range ids {
			if p, ok := found[id]; ok {
				list = append(list, p)
				delete(found, id)
			}
		}
		writeJSON(w, list)
	})
	mux.Handle("GET /debug/stampede", stampede.StatsHandler(c.Products))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	if err := CreateTable(ctx, db, "stampede_products", 1000); err != nil {
		log.Fatal(err)
	}
	c, err := NewCatalog(db, "stampede_products", 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	log.Println("listening on :3340")
	log.Fatal(http.ListenAndServe(":3340", c.Routes()))
}
