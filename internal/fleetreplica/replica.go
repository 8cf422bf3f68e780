// Package fleetreplica is one replica of a fleet, the server that the fleet tests (in this directory)
// run as separate processes (_example/fleet has a smaller one of its own, so that it can be copied): the
// stampede middleware with fleet coalescing, in front of a proxy to an origin, over Redis (single node
// or Cluster), optionally with a memory tier in front of Redis.
//
// [Run] is the whole replica: a program re-executes itself as a replica and calls it with its command
// line. The replica prints "listening on ADDR" once it serves. Besides the proxied paths it answers
// /_purge/url?path=P, /_purge/key?key=K, /_purge/tag?tag=T and /_stats (the cache's Snapshot as JSON).
package fleetreplica

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// Run serves one replica configured by args (flags; -h lists them) until ctx ends, then shuts the
// server down and waits for the cache's background work. It writes "listening on ADDR" to stdout once
// it serves, and its warnings and the flags' usage to stderr. It returns an error when args are invalid
// or the server cannot listen or serve.
//
// Run sets go-redis's process-wide logger to one that drops everything: call it only in a process that
// is a replica.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("fleetreplica", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		addr     = flags.String("addr", "127.0.0.1:0", "listen address")
		redisA   = flags.String("redis", "127.0.0.1:6379", "Redis address; several, comma-separated, with -cluster")
		cluster  = flags.Bool("cluster", false, "the Redis addresses are a Redis Cluster")
		origin   = flags.String("origin", "", "origin base URL (required)")
		lease    = flags.Duration("lease", 2*time.Second, "fleet lease; 0 turns fleet coalescing off")
		ttl      = flags.Duration("ttl", time.Minute, "cache TTL")
		l1       = flags.Duration("l1", 0, "L1 (memory tier) TTL cap; 0 means no memory tier")
		name     = flags.String("name", "replica", "replica name (logs, stats)")
		timeout  = flags.Duration("store-timeout", 200*time.Millisecond, "Redis call timeout")
		compute  = flags.Duration("compute-timeout", stampede.DefaultComputeTimeout, "bound on one run of the origin")
		poolWait = flags.Duration("pool-timeout", time.Second,
			"how long a Redis call may wait for a free connection (single node; a cluster client keeps go-redis's default, the call timeout + 1 s)")
	)
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *origin == "" {
		return errors.New("fleetreplica: -origin is required")
	}
	redis.SetLogger(quiet{}) // a replica whose Redis is down logs every failed dial otherwise
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", *name)

	var client redis.UniversalClient
	addrs := strings.Split(*redisA, ",")
	if *cluster {
		client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true, MaxRetries: -1,
			PoolSize: 256, ReadTimeout: *timeout, WriteTimeout: *timeout, DialTimeout: *timeout})
	} else {
		client = redis.NewClient(&redis.Options{Addr: addrs[0], ContextTimeoutEnabled: true, MaxRetries: -1,
			PoolSize: 256, ReadTimeout: *timeout, WriteTimeout: *timeout, DialTimeout: *timeout, PoolTimeout: *poolWait})
	}
	defer client.Close()
	rs := redisstore.New(client, redisstore.WithTimeout(*timeout))
	defer rs.Close()
	var store stampede.Store = rs
	if *l1 > 0 {
		mem, err := memstore.New(256 << 20)
		if err != nil {
			return err
		}
		defer mem.Close()
		ts := tieredstore.New(mem, rs, tieredstore.WithL1TTL(*l1))
		defer ts.Close()
		store = ts
	}
	opts := []stampede.Option{stampede.WithName(*name), stampede.WithStoreTimeout(*timeout), stampede.WithComputeTimeout(*compute)}
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
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	fmt.Fprintf(stdout, "listening on %s\n", l.Addr())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	<-served
	cache.Wait()
	return nil
}

// quiet is a go-redis logger that drops everything: the middleware's own logs (breaker open, recovered)
// say what matters.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}
