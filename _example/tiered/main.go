// Command tiered puts a memory tier (L1, backends/memstore) in front of Redis (L2, backends/redisstore)
// with backends/tieredstore. A response one replica computed is served by the others from Redis, and
// then from their own memory, with no Redis round trip, for at most -l1 (and never past its freshness).
// A purge on any replica reaches every replica's memory tier, because Redis announces each deletion.
//
// Which tier answered a hit is counted by the tiered store (tieredstore.Store.Stats), served as JSON at
// /debug/tiers beside the cache's own counters at /debug/stampede:
//
//	go run ./_example/tiered -demo -redis 127.0.0.1:6379   # two replicas in one process, three requests
//
// prints, for a cold key, MISS on replica a, then on replica b a HIT read from Redis, then a HIT from
// b's memory, with each response's X-Cache and Cache-Status and the tier counters. As two processes:
//
//	go run ./_example/tiered -listen :3338 -redis 127.0.0.1:6379
//	go run ./_example/tiered -listen :3339 -redis 127.0.0.1:6379
//	curl -i -H 'Host: shop.example' localhost:3338/price?sku=42   # X-Cache: MISS
//	curl -i -H 'Host: shop.example' localhost:3339/price?sku=42   # X-Cache: HIT, read from Redis
//	curl -i -H 'Host: shop.example' localhost:3339/price?sku=42   # X-Cache: HIT, from 3339's memory
//	curl localhost:3339/debug/tiers                                # {"L1Hits":1,"L2Hits":1,"Misses":...}
//
// If Redis goes away, requests are still served (by the handler); caching resumes when it is back.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	demo := flag.Bool("demo", false, "run two replicas in this process, send three requests, print what answered them, exit")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	client := redis.NewClient(&redis.Options{
		Addr:                  *addr,
		ContextTimeoutEnabled: true, // let the store's deadline reach the socket
		DialTimeout:           200 * time.Millisecond,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	})
	defer client.Close()

	if *demo {
		runDemo(logger, client, *l1TTL)
		return
	}
	rep := newReplica(logger, client, *listen, *l1TTL)
	defer rep.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: *listen, Handler: rep.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	logger.Info("listening", "addr", *listen, "redis", *addr, "l1", *l1TTL)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// replica is one server: a cache over a memory tier in front of the shared Redis.
type replica struct {
	handler http.Handler
	store   *tieredstore.Store
	cache   *stampede.Cache
	close   func()
}

func newReplica(logger *slog.Logger, client *redis.Client, name string, l1TTL time.Duration) *replica {
	l2 := redisstore.New(client, redisstore.WithKeyPrefix("example:"))
	l1, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	store := tieredstore.New(l1, l2, tieredstore.WithL1TTL(l1TTL)) // subscribes to L2's deletions
	cache := stampede.New(logger, store, time.Minute, stampede.WithName("prices"))

	r := chi.NewRouter()
	// Outside the cache: live figures.
	r.Handle("/debug/stampede", stampede.StatsHandler(cache))
	r.Get("/debug/tiers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(store.Stats())
	})
	r.Group(func(r chi.Router) {
		r.Use(cache.Handler)
		r.Get("/price", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(150 * time.Millisecond) // a slow pricing service
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"sku":%q,"price":1999,"computed_by":%q}`+"\n", r.URL.Query().Get("sku"), name)
		})
	})
	return &replica{handler: r, store: store, cache: cache, close: func() {
		cache.Wait() // the last store writes, before the stores close
		cache.Close()
		store.Close()
		l2.Close() // ends the Pub/Sub subscription; the client stays open
		l1.Close()
	}}
}

// runDemo serves two replicas on loopback and asks them for one cold key three times.
func runDemo(logger *slog.Logger, client *redis.Client, l1TTL time.Duration) {
	a, b := newReplica(logger, client, "a", l1TTL), newReplica(logger, client, "b", l1TTL)
	defer a.close()
	defer b.close()
	sa, sb := httptest.NewServer(a.handler), httptest.NewServer(b.handler)
	defer sa.Close()
	defer sb.Close()

	path := fmt.Sprintf("/price?sku=%d", time.Now().UnixNano()) // a key no earlier run stored
	for _, step := range []struct {
		name string
		rep  *replica
		url  string
	}{{"a", a, sa.URL}, {"b", b, sb.URL}, {"b", b, sb.URL}} {
		before := step.rep.store.Stats()
		req, err := http.NewRequest(http.MethodGet, step.url+path, nil)
		if err != nil {
			log.Fatal(err)
		}
		req.Host = "shop.example" // the host is part of the key: both replicas serve one site
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		step.rep.cache.Wait() // its store write is done before the next replica looks
		after := step.rep.store.Stats()
		tier := "the handler (nothing stored yet)"
		switch {
		case after.L1Hits > before.L1Hits:
			tier = "memory (L1)"
		case after.L2Hits > before.L2Hits:
			tier = "Redis (L2), now copied into memory"
		}
		fmt.Printf("replica %s: X-Cache: %-4s Cache-Status: %-32s answered by %s\n  %s",
			step.name, resp.Header.Get("X-Cache"), resp.Header.Get("Cache-Status"), tier, body)
	}
	for _, r := range []struct {
		name string
		rep  *replica
	}{{"a", a}, {"b", b}} {
		st, snap := r.rep.store.Stats(), r.rep.cache.Snapshot()
		fmt.Printf("replica %s: cache hits %d, misses %d; tier hits: memory %d, Redis %d; store misses %d\n",
			r.name, snap.Hits, snap.Misses, st.L1Hits, st.L2Hits, st.Misses)
	}
}
