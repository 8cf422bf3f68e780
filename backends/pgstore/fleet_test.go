package pgstore_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/pgstore"
)

// asReplica is set in the environment of the replica processes of TestFleet: the test binary,
// re-executed, serves as one replica instead of running the tests.
const asReplica = "STAMPEDE_PGSTORE_REPLICA"

func TestMain(m *testing.M) {
	if os.Getenv(asReplica) == "1" {
		if err := replica(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// replica serves the stampede middleware with fleet coalescing on pgstore, in front of a proxy to
// -origin, until SIGTERM. It prints "listening on ADDR" once it serves.
func replica(args []string) error {
	flags := flag.NewFlagSet("replica", flag.ContinueOnError)
	url := flags.String("pg", "", "PostgreSQL URL")
	prefix := flags.String("prefix", "", "table prefix")
	origin := flags.String("origin", "", "origin base URL")
	name := flags.String("name", "replica", "replica name")
	if err := flags.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	pool, err := pgxpool.New(ctx, *url)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := pgstore.New(pool, pgstore.WithTablePrefix(*prefix), pgstore.WithTimeout(time.Minute))
	if err != nil {
		return err
	}
	defer store.Close()
	// Timeouts and the lease are long: what the test asserts (one origin call per key) holds while
	// the database answers and leases last, whatever the machine's speed.
	cache := stampede.New(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), store, time.Hour,
		stampede.WithFleetCoalescing(time.Minute), stampede.WithStoreTimeout(time.Minute), stampede.WithComputeTimeout(time.Minute),
		stampede.WithName(*name))
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(*origin + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.Copy(w, resp.Body)
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: cache.Handler(proxy), ReadHeaderTimeout: time.Minute}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Printf("listening on %s\n", l.Addr())
	_ = srv.Serve(l)
	cache.Wait()
	return nil
}

// TestFleet runs three replica processes with stampede.WithFleetCoalescing on one pgstore and sends
// them a Zipf-distributed burst of concurrent requests (the same keys on every replica at once): the
// origin is called exactly once per distinct key, across the fleet.
func TestFleet(t *testing.T) {
	t.Parallel()
	pool := newPool(t, serverURL())
	store := newStore(t, pool)
	var mu sync.Mutex
	calls := map[string]int{}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // the origin's work: requests for the key pile up meanwhile
		fmt.Fprint(w, r.URL.Path)
	}))
	defer origin.Close()

	var urls []string
	for i := range 3 {
		cmd := exec.Command(os.Args[0], "-pg", serverURL(), "-prefix", store.Prefix(), "-origin", origin.URL,
			"-name", fmt.Sprint("r", i))
		cmd.Env = append(os.Environ(), asReplica+"=1", "GORACE=atexit_sleep_ms=0")
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		if err != nil || !ok {
			t.Fatalf("replica %d: %q, %v", i, line, err)
		}
		urls = append(urls, "http://"+addr)
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	zipf := rand.NewZipf(rand.New(rand.NewPCG(seed, 1)), 1.2, 1, 99)
	paths := make([]string, 600)
	for i := range paths {
		paths[i] = fmt.Sprintf("/item/%d", zipf.Uint64())
	}
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 48)
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest(http.MethodGet, urls[i%3]+p, nil)
			req.Host = "fleet.test" // the key includes the host: the same on every replica
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(b) != p {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d requests failed", n)
	}
	mu.Lock()
	defer mu.Unlock()
	distinct := map[string]bool{}
	for _, p := range paths {
		distinct[p] = true
	}
	total := 0
	for p, n := range calls {
		total += n
		if n != 1 {
			t.Errorf("%s: %d origin calls, want 1", p, n)
		}
	}
	t.Logf("%d requests, %d distinct keys, %d origin calls", len(paths), len(distinct), total)
	if total != len(distinct) {
		t.Fatalf("origin calls %d != distinct keys %d", total, len(distinct))
	}
}
