// Command fleet shows fleet coalescing: three replica processes (this program, re-executed with the
// argument "replica"; the replica itself is internal/fleetreplica, the server the fleet tests run) share
// one Redis, each with a memory tier in front of it, and sit in front of one origin, which counts its
// calls. A burst of concurrent requests for one cold key, spread over the replicas, calls the origin
// once; with -fleet=false it is called once per replica. Then a purge by tag on one replica is seen by
// the others.
//
//	go run ./_example/fleet -redis 127.0.0.1:6379
//	go run ./_example/fleet -redis 127.0.0.1:6379 -fleet=false
//
// Each replica builds its cache as below (internal/fleetreplica/replica.go; -fleet=false leaves out
// WithFleetCoalescing). The purge and stats routes are on the mux beside the cached catch-all, not
// behind it:
//
//	rs := redisstore.New(client)
//	store := tieredstore.New(mem, rs, tieredstore.WithL1TTL(5*time.Second)) // memstore in front of Redis
//	cache := stampede.New(logger, store, time.Minute, stampede.WithFleetCoalescing(2*time.Second))
//	mux.Handle("/", cache.Handler(proxy))
//	mux.HandleFunc("/_purge/{what}", purge) // cache.Purge, cache.PurgeKey, cache.PurgeTag
//	mux.HandleFunc("/_stats", stats)        // cache.Snapshot as JSON
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
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

	"github.com/seed-a1426414/stampede/internal/fleetreplica"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "replica" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := fleetreplica.Run(ctx, os.Args[2:], os.Stdout, os.Stderr); err != nil {
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
	_ = get(urls[0] + "/_purge/tag?tag=news")
	fmt.Println("purged tag news on replica 0")
	for i := range urls {
		fmt.Printf("replica %d serves: %s", i, get(urls[i]+path))
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
