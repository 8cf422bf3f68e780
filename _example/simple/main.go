// Command simple puts stampede in front of a slow chi handler with the in-memory store.
//
//	go run ./_example/simple            # serve on :3333
//	go run ./_example/simple -demo      # start, send a burst of concurrent requests, print what happened, exit
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

func main() {
	addr := flag.String("addr", ":3333", "listen address")
	demo := flag.Bool("demo", false, "run a burst against the server, print the outcome and exit")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := memstore.New(64 << 20) // 64 MiB
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	cache := stampede.New(logger, store, 10*time.Second)

	var origin atomic.Int64
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Group(func(r chi.Router) {
		r.Use(cache.Handler)
		r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
			origin.Add(1)
			time.Sleep(200 * time.Millisecond) // an expensive query
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "slow report for %s\n", r.URL.Query().Get("q"))
		})
	})
	r.Get("/uncached", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "this route is not behind the cache")
	})
	r.Handle("/debug/stampede", stampede.StatsHandler(cache)) // live stats page; JSON with ?format=json
	// /bare writes what a stored /slow replays, with no middleware and no sleep: the baseline the
	// benchmarks (bench/cmd/bench, wrk) compare a cache hit with.
	r.Get("/bare", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "slow report for %s\n", r.URL.Query().Get("q"))
	})

	if !*demo {
		logger.Info("listening", "addr", *addr)
		log.Fatal(http.ListenAndServe(*addr, r))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	const clients = 500
	start := time.Now()
	outcomes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			resp, err := http.Get(fmt.Sprintf("%s/slow?q=%d", base, i%5))
			if err != nil {
				log.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			outcomes[resp.Header.Get("X-Cache")]++
			mu.Unlock()
		})
	}
	wg.Wait()
	cache.Wait()
	fmt.Printf("%d concurrent requests over 5 URLs in %v\n", clients, time.Since(start).Round(time.Millisecond))
	fmt.Printf("origin handler runs: %d (without stampede: %d)\n", origin.Load(), clients)
	fmt.Printf("X-Cache outcomes: MISS=%d COALESCED=%d HIT=%d\n", outcomes["MISS"], outcomes["COALESCED"], outcomes["HIT"])
}
