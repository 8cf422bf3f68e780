// Command fleet shows fleet coalescing: three replica processes (this program, re-executed with the
// argument "replica") share one Redis, each with a memory tier in front of it, and sit in front of one
// origin, which counts its calls. A burst of concurrent requests for one cold key, spread over the
// replicas, calls the origin once; with -fleet=false it is called once per replica. Then a purge by tag
// on one replica reaches the others: the program waits until each replica has dropped its copy (Redis
// announces the deletion to every replica's memory tier, asynchronously) and prints what each serves.
//
//	go run ./_example/fleet -redis 127.0.0.1:6379
//	go run ./_example/fleet -redis 127.0.0.1:6379 -fleet=false
//
// Each replica builds its cache as in runReplica below. The purge and stats routes are on the mux beside
// the cached catch-all, not behind it:
//
//	rs := redisstore.New(client)
//	store := tieredstore.New(mem, rs, tieredstore.WithL1TTL(5*time.Second)) // memstore in front of Redis
//	cache := stampede.New(logger, store, time.Minute, stampede.WithFleetCoalescing(2*time.Second))
//	mux.Handle("/", cache.Handler(proxy))
//	mux.HandleFunc("/_purge/tag", purge) // cache.PurgeTag
//	mux.HandleFunc("/_wait", wait)       // cache.Wait
//	mux.HandleFunc("/_stats", stats)     // cache.Snapshot as JSON
package main

import (
	"bufio"
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
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replica" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := runReplica(ctx, os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	var (
		redisAddr = flag.String("redis", "127.0.0.1:6379", "Redis address")
		fleet     = flag.Bool("fleet", true, "coalesce across replicas (WithFleetCoalescing)")
		burst     = flag.Int("burst", 300, "concurrent requests in the burst")
	)
	flag.Parse()

	// The origin: slow, counts its calls, tags its responses.
	var calls atomic.Int64
	origin := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		time.Sleep(100 * time.Millisecond)
		w.Header().Set("Cache-Tag", "news")
		fmt.Fprintf(w, "%s, origin call #%d\n", r.URL.Path, n)
	})}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = origin.Serve(ol) }()
	defer origin.Close()

	lease := "2s"
	if !*fleet {
		lease = "0" // per-process coalescing only
	}
	var urls []string
	for i := range 3 {
		cmd := exec.Command(os.Args[0], "replica", "-origin", "http://"+ol.Addr().String(), "-redis", *redisAddr,
			"-lease", lease, "-l1", "5s", "-name", fmt.Sprintf("replica-%d", i))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			log.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		if !ok {
			log.Fatalf("replica %d: %q", i, line)
		}
		go func() { _, _ = io.Copy(io.Discard, out) }()
		urls = append(urls, "http://"+addr)
		fmt.Printf("replica %d on %s\n", i, urls[i])
	}

	path := fmt.Sprintf("/article/%d", time.Now().UnixNano()) // a cold key
	var wg sync.WaitGroup
	for i := range *burst {
		wg.Go(func() { _ = get(urls[i%3] + path) })
	}
	wg.Wait()
	fmt.Printf("%d concurrent requests for %s over 3 replicas (fleet=%v): origin calls %d\n", *burst, path, *fleet, calls.Load())

	for i := range urls {
		fmt.Printf("replica %d serves: %s", i, get(urls[i]+path))
	}
	before := make([]string, len(urls))
	for i := range urls {
		before[i] = get(urls[i] + path)
		_ = get(urls[i] + "/_wait") // its store writes are done: none lands after the purge
	}
	_ = get(urls[0] + "/_purge/tag?tag=news")
	fmt.Println("purged tag news on replica 0")
	// The purge deleted the entry in Redis at once; each replica's memory tier drops its copy when
	// Redis's announcement reaches it, a few milliseconds later. Wait for that, then show what each
	// replica serves.
	for i := range urls {
		deadline := time.Now().Add(5 * time.Second)
		body := get(urls[i] + path)
		for body == before[i] && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			body = get(urls[i] + path)
		}
		if body == before[i] {
			fmt.Printf("replica %d still serves its copy after 5 s: the purge did not reach it\n", i)
			continue
		}
		fmt.Printf("replica %d serves: %s", i, body)
	}
	fmt.Printf("origin calls in all: %d\n", calls.Load())
}

// get returns the body of a GET with the Host every replica keys on.
func get(url string) string {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = "fleet.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error() + "\n"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// runReplica serves one replica configured by args until ctx ends: the stampede middleware with fleet
// coalescing (unless -lease is 0), over a memory tier in front of Redis, in front of a proxy to the
// origin. It prints "listening on ADDR" once it serves. Besides the proxied paths it answers
// /_purge/tag?tag=T, /_wait (returns once the cache's store writes are done) and /_stats (the cache's
// Snapshot as JSON).
func runReplica(ctx context.Context, args []string) error {
	flags := flag.NewFlagSet("replica", flag.ContinueOnError)
	var (
		redisAddr = flags.String("redis", "127.0.0.1:6379", "Redis address")
		origin    = flags.String("origin", "", "origin base URL")
		lease     = flags.Duration("lease", 2*time.Second, "fleet lease; 0 turns fleet coalescing off")
		l1        = flags.Duration("l1", 5*time.Second, "memory tier TTL cap")
		name      = flags.String("name", "replica", "replica name (logs, stats)")
	)
	if err := flags.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", *name)
	client := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer client.Close()
	rs := redisstore.New(client)
	defer rs.Close() // ends the Pub/Sub subscription; the client stays open
	mem, err := memstore.New(64 << 20)
	if err != nil {
		return err
	}
	defer mem.Close()
	store := tieredstore.New(mem, rs, tieredstore.WithL1TTL(*l1))
	defer store.Close()
	opts := []stampede.Option{stampede.WithName(*name)}
	if *lease > 0 {
		opts = append(opts, stampede.WithFleetCoalescing(*lease))
	}
	cache := stampede.New(logger, store, time.Minute, opts...)
	defer cache.Close()

	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, *origin+r.URL.RequestURI(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for _, h := range []string{"Content-Type", "Cache-Tag", "Cache-Control"} {
			if v := resp.Header.Values(h); len(v) > 0 {
				w.Header()[h] = v
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})

	mux := http.NewServeMux()
	mux.Handle("/", cache.Handler(proxy))
	// Outside the cache. In a real service, put these behind authentication or on an internal listener.
	mux.HandleFunc("/_purge/tag", func(w http.ResponseWriter, r *http.Request) {
		if err := cache.PurgeTag(r.Context(), r.URL.Query().Get("tag")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "purged")
	})
	mux.HandleFunc("/_wait", func(w http.ResponseWriter, r *http.Request) {
		cache.Wait() // the store writes of finished requests are done
		fmt.Fprintln(w, "done")
	})
	mux.HandleFunc("/_stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(cache.Snapshot())
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	fmt.Printf("listening on %s\n", l.Addr())
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
