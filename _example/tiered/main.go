// Command tiered puts a memory tier (L1, backends/memstore) in front of Redis (L2, backends/redisstore)
// with backends/tieredstore. A response one replica computed is served by the others from Redis, and
// then from their own memory, with no Redis round trip, for at most -l1 (and never past its freshness).
// A purge on any replica reaches every replica's memory tier, because Redis announces each deletion.
//
//	go run ./_example/tiered -listen :3338 -redis 127.0.0.1:6379
//	go run ./_example/tiered -listen :3339 -redis 127.0.0.1:6379
//	curl -i -H 'Host: shop.example' localhost:3338/price?sku=42   # X-Cache: MISS
//	curl -i -H 'Host: shop.example' localhost:3339/price?sku=42   # X-Cache: HIT, read from Redis
//	curl -i -H 'Host: shop.example' localhost:3339/price?sku=42   # X-Cache: HIT, from 3339's memory
//	curl 'localhost:3339/debug/stampede?format=json'
//
// If Redis goes away, requests are still served (by the handler); caching resumes when it is back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

func main() {
	listen := flag.String("listen", ":3338", "listen address")
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	l1TTL := flag.Duration("l1", tieredstore.DefaultL1TTL, "longest an entry stays in the memory tier")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	client := redis.NewClient(&redis.Options{
		Addr:                  *addr,
		ContextTimeoutEnabled: true, // let the store's deadline reach the socket
		DialTimeout:           200 * time.Millisecond,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolSize:              256,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	})
	defer client.Close()
	l2 := redisstore.New(client, redisstore.WithKeyPrefix("example:"))
	defer l2.Close() // ends the Pub/Sub subscription; the client stays open
	l1, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer l1.Close()
	store := tieredstore.New(l1, l2, tieredstore.WithL1TTL(*l1TTL)) // subscribes to L2's deletions
	defer store.Close()
	cache := stampede.New(logger, store, time.Minute, stampede.WithName("prices"))

	r := chi.NewRouter()
	r.Handle("/debug/stampede", stampede.StatsHandler(cache)) // outside the cache: live figures
	r.Group(func(r chi.Router) {
		r.Use(cache.Handler)
		r.Get("/price", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(150 * time.Millisecond) // a slow pricing service
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"sku":%q,"price":1999,"computed_by":%q}`+"\n", r.URL.Query().Get("sku"), *listen)
		})
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	logger.Info("listening", "addr", *listen, "redis", *addr, "l1", *l1TTL)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	cache.Wait() // the last store writes, before the stores close
}
