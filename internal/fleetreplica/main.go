// Command fleetreplica is one replica of a fleet, for the fleet tests and _example/fleet: the stampede
// middleware with fleet coalescing, in front of a proxy to an origin, over Redis (single node or
// Cluster), optionally with a memory tier in front of Redis.
//
// It prints "listening on ADDR" once it serves. Besides the proxied paths it answers
// /_purge/url?path=P, /_purge/key?key=K, /_purge/tag?tag=T and /_stats (the cache's Snapshot as JSON).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

func main() {
	var (
		addr    = flag.String("addr", "127.0.0.1:0", "listen address")
		redisA  = flag.String("redis", "127.0.0.1:6379", "Redis address; several, comma-separated, with -cluster")
		cluster = flag.Bool("cluster", false, "the Redis addresses are a Redis Cluster")
		origin  = flag.String("origin", "", "origin base URL (required)")
		lease   = flag.Duration("lease", 2*time.Second, "fleet lease; 0 turns fleet coalescing off")
		ttl     = flag.Duration("ttl", time.Minute, "cache TTL")
		l1      = flag.Duration("l1", 0, "L1 (memory tier) TTL cap; 0 means no memory tier")
		name    = flag.String("name", "replica", "replica name (logs, stats)")
		timeout = flag.Duration("store-timeout", 200*time.Millisecond, "Redis call timeout")
	)
	flag.Parse()
	if *origin == "" {
		log.Fatal("fleetreplica: -origin is required")
	}
	redis.SetLogger(quiet{}) // a replica whose Redis is down logs every failed dial otherwise
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", *name)

	var client redis.UniversalClient
	addrs := strings.Split(*redisA, ",")
	if *cluster {
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true, MaxRetries: -1,
			PoolSize: 256, ReadTimeout: *timeout, WriteTimeout: *timeout, DialTimeout: *timeout})
	} else {
		client = redis.NewClient(&redis.Options{Addr: addrs[0], ContextTimeoutEnabled: true, MaxRetries: -1,
			PoolSize: 256, ReadTimeout: *timeout, WriteTimeout: *timeout, DialTimeout: *timeout, PoolTimeout: time.Second})
	}
	defer client.Close()
	rs := redisstore.New(client, redisstore.WithTimeout(*timeout))
	defer rs.Close()
	var store stampede.Store = rs
	if *l1 > 0 {
		mem, err := memstore.New(256 << 20)
		if err != nil {
			log.Fatal(err)
		}
		defer mem.Close()
		ts := tieredstore.New(mem, rs, tieredstore.WithL1TTL(*l1))
		defer ts.Close()
		store = ts
	}
	opts := []stampede.Option{stampede.WithName(*name), stampede.WithStoreTimeout(*timeout)}
	if *lease > 0 {
		opts = append(opts, stampede.WithFleetCoalescing(*lease))
	}
	cache := stampede.New(logger, store, *ttl, opts...)

	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 30 * time.Second}
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, *origin+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.Header.Set("X-Replica", *name)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, h := range []string{"Content-Type", "Cache-Tag", "Surrogate-Key", "Cache-Control", "Vary"} {
			if v := resp.Header.Values(h); len(v) > 0 {
				w.Header()[h] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})

	mux := http.NewServeMux()
	mux.Handle("/", cache.Handler(proxy))
	mux.HandleFunc("/_purge/{what}", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var err error
		switch r.PathValue("what") {
		case "url":
			var req *http.Request
			req, err = http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+r.Host+q.Get("path"), nil)
			if err == nil {
				err = cache.Purge(r.Context(), req)
			}
		case "key":
			err = cache.PurgeKey(r.Context(), q.Get("key"))
		case "tag":
			err = cache.PurgeTag(r.Context(), q.Get("tag"))
		default:
			http.NotFound(w, r)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "purged")
	})
	mux.HandleFunc("/_stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cache.Snapshot())
	})

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening on %s\n", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	cache.Wait()
}

// quiet is a go-redis logger that drops everything: the middleware's own logs (breaker open, recovered)
// say what matters.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
