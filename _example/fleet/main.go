// Command fleet shows fleet coalescing: three replica processes (this program, re-executed with
// -replica) share one Redis and sit in front of one origin, which counts its calls. A burst of
// concurrent requests for one cold key, spread over the replicas, calls the origin once; without
// -fleet it is called once per replica. Then a purge by tag on one replica is seen by the others.
//
//	go run ./_example/fleet -redis 127.0.0.1:6379
//	go run ./_example/fleet -redis 127.0.0.1:6379 -fleet=false
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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

func main() {
	var (
		redisAddr = flag.String("redis", "127.0.0.1:6379", "Redis address")
		fleet     = flag.Bool("fleet", true, "coalesce across replicas (WithFleetCoalescing)")
		replica   = flag.String("replica", "", "internal: run as a replica of this origin URL")
		burst     = flag.Int("burst", 300, "concurrent requests in the burst")
	)
	flag.Parse()
	if *replica != "" {
		runReplica(*redisAddr, *replica, *fleet)
		return
	}

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

	var urls []string
	for i := range 3 {
		cmd := exec.Command(os.Args[0], "-replica", "http://"+ol.Addr().String(), "-redis", *redisAddr,
			fmt.Sprintf("-fleet=%v", *fleet))
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
		urls = append(urls, "http://"+strings.TrimSpace(line))
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
	_ = get(urls[0] + "/_purge?tag=news")
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

// runReplica serves the middleware (memory tier over Redis) in front of a proxy to origin and prints
// its address.
func runReplica(redisAddr, origin string, fleet bool) {
	client := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer client.Close()
	rs := redisstore.New(client)
	defer rs.Close()
	mem, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	store := tieredstore.New(mem, rs)
	defer store.Close()
	var opts []stampede.Option
	if fleet {
		opts = append(opts, stampede.WithFleetCoalescing(2*time.Second))
	}
	cache := stampede.New(nil, store, time.Minute, opts...)

	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(origin + r.URL.RequestURI())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Cache-Tag", resp.Header.Get("Cache-Tag"))
		_, _ = io.Copy(w, resp.Body)
	})
	mux := http.NewServeMux()
	mux.Handle("/", cache.Handler(proxy))
	mux.HandleFunc("/_purge", func(w http.ResponseWriter, r *http.Request) {
		if err := cache.PurgeTag(r.Context(), r.URL.Query().Get("tag")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(l.Addr())
	srv := &http.Server{Handler: mux}
	go func() {
		ctx, stop := signalContext()
		defer stop()
		<-ctx.Done()
		_ = srv.Shutdown(context.Background())
	}()
	_ = srv.Serve(l)
	cache.Wait()
}
