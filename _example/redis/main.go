// Command redis shares one cache between replicas through Redis. Run two copies on different ports
// against the same Redis and a response computed by one is served by the other:
//
//	go run ./_example/redis -listen :3336 -redis localhost:6379
//	go run ./_example/redis -listen :3337 -redis localhost:6379
//	curl -i -H 'Host: shop.example' localhost:3336/price?sku=42   # X-Cache: MISS
//	curl -i -H 'Host: shop.example' localhost:3337/price?sku=42   # X-Cache: HIT, handler not run
//	curl 'localhost:3337/debug/stampede?format=json'               # this replica's counters
//
// The Host header is part of the key; behind a load balancer all replicas see the public host, which
// the -H flag stands in for here.
//
// If Redis goes away, requests are still served (by the handler); caching resumes when it is back.
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
)

func main() {
	listen := flag.String("listen", ":3336", "listen address")
	addr := flag.String("redis", "localhost:6379", "Redis address")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	client := redis.NewClient(&redis.Options{
		Addr:                  *addr,
		ContextTimeoutEnabled: true, // let the store's 100 ms deadline reach the socket
		DialTimeout:           200 * time.Millisecond,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolSize:              256, // size for your peak concurrency: waiting for a connection counts too
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	})
	defer client.Close()
	store := redisstore.New(client, redisstore.WithKeyPrefix("example:"), redisstore.WithCompression(redisstore.DefaultCompressionThreshold))

	cache := stampede.New(logger, store, 30*time.Second, stampede.WithName("prices"))

	r := chi.NewRouter()
	r.Handle("/debug/stampede", stampede.StatsHandler(cache)) // outside the cache: live figures
	r.Group(func(r chi.Router) {
		r.Use(cache.Handler) // every route of this group, and only those
		r.Get("/price", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(150 * time.Millisecond) // a slow pricing service
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"sku":%q,"price":1999,"computed_by":%q}`+"\n", r.URL.Query().Get("sku"), *listen)
		})
	})
	logger.Info("listening", "addr", *listen, "redis", *addr)
	log.Fatal(http.ListenAndServe(*listen, r))
}
