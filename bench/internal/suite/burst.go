package suite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
)

// burstRow is one burst: clients requests released at once on one cold key.
type burstRow struct {
	name               string
	clients            int
	runs               int64          // origin handler runs the server counted for the key
	outcomes           map[string]int // X-Cache of the responses ("" when absent)
	errors             int            // requests that failed or did not get 200
	dials              int64          // connections the clients opened during the burst
	min, p50, p99, max time.Duration  // completion times, from the release of the burst
}

// The burst runs its server in a child process: 10,000 connections are 10,000 descriptors on each side,
// and both sides in one process would not fit under a descriptor limit of 20,000.
func runBursts(o options) ([]burstRow, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-burst-server", "-sleep", o.sleep.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the server exits when this closes, also if we die
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("burst server: %w", err)
	}
	base := "http://" + strings.TrimSpace(line)

	var rows []burstRow
	var dials atomic.Int64
	keepAlive := newBurstTransport(o.clients, &dials)
	log.Printf("burst: opening %d keep-alive connections", o.clients)
	if err := warm(keepAlive, base, o.clients, &dials); err != nil {
		return nil, err
	}
	for _, b := range []struct{ name, path string }{
		{"stampede, open keep-alive connections", "/cached/keep-alive"},
		{"no middleware, open keep-alive connections", "/bare/keep-alive"},
	} {
		log.Printf("burst: %s", b.name)
		row, err := burst(keepAlive, base, b.path, o.clients, &dials)
		if err != nil {
			return rows, err
		}
		row.name = b.name
		rows = append(rows, row)
	}
	// Free the descriptors before opening as many again.
	keepAlive.CloseIdleConnections()
	time.Sleep(time.Second)

	var newDials atomic.Int64
	fresh := newBurstTransport(o.clients, &newDials)
	defer fresh.CloseIdleConnections()
	log.Printf("burst: stampede, new connections")
	row, err := burst(fresh, base, "/cached/new-connections", o.clients, &newDials)
	if err != nil {
		return rows, err
	}
	row.name = "stampede, every client opens its connection in the burst"
	rows = append(rows, row)

	for _, r := range rows {
		log.Printf("burst: %-58s runs %5d, outcomes %v, errors %d, dials %d, done min %v p50 %v p99 %v max %v",
			r.name, r.runs, r.outcomes, r.errors, r.dials, r.min, r.p50, r.p99, r.max)
	}
	return rows, nil
}

func newBurstTransport(clients int, dials *atomic.Int64) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        0, // no limit
		MaxIdleConnsPerHost: clients,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
}

// warm opens clients connections: the server holds every /warm request until all of them arrived, so
// each one needs a connection of its own, and all of them are idle in the pool afterwards.
func warm(t *http.Transport, base string, clients int, dials *atomic.Int64) error {
	client := &http.Client{Transport: t, Timeout: 2 * time.Minute}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range clients {
		wg.Go(func() {
			resp, err := client.Get(fmt.Sprintf("%s/warm?n=%d", base, clients))
			if err != nil {
				failed.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		return fmt.Errorf("warm-up: %d of %d requests failed", failed.Load(), clients)
	}
	if n := dials.Load(); n != int64(clients) {
		log.Printf("burst: warm-up opened %d connections for %d clients", n, clients)
	}
	return nil
}

// burst sends clients requests for path at the same instant and reports when each completed.
func burst(t *http.Transport, base, path string, clients int, dials *atomic.Int64) (burstRow, error) {
	client := &http.Client{Transport: t, Timeout: 2 * time.Minute}
	row := burstRow{clients: clients, outcomes: map[string]int{}}
	done := make([]time.Duration, clients)
	xcache := make([]string, clients)
	failed := make([]bool, clients)
	start := make(chan struct{})
	var t0 time.Time
	var ready, wg sync.WaitGroup
	ready.Add(clients)
	for i := range clients {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			ready.Done()
			<-start
			resp, err := client.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = errors.New(resp.Status)
				}
				xcache[i] = resp.Header.Get("X-Cache")
			}
			done[i] = time.Since(t0)
			failed[i] = err != nil
		})
	}
	ready.Wait()
	before := dials.Load()
	t0 = time.Now()
	close(start)
	wg.Wait()
	row.dials = dials.Load() - before

	for i := range clients {
		if failed[i] {
			row.errors++
		}
		row.outcomes[xcache[i]]++
	}
	slices.Sort(done)
	row.min, row.p50, row.p99, row.max = done[0], trace.Percentile(done, 0.5), trace.Percentile(done, 0.99), done[len(done)-1]

	resp, err := http.Get(base + "/runs" + path)
	if err != nil {
		return row, err
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	row.runs, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return row, err
}

// serveBurst is the child process: it serves /cached/{id} (stampede, memory store), /bare/{id} (no
// middleware), both with an origin that sleeps, /warm and /runs/{route}/{id}, on a free loopback port
// that it prints, until its standard input closes.
func serveBurst(sleep time.Duration) {
	var mu sync.Mutex
	runs := map[string]int64{} // origin runs per path
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(sleep)
		mu.Lock()
		runs[r.URL.Path]++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "burst payload for "+r.URL.Path+"\n")
	})
	store, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	cache := stampede.New(nil, store, time.Hour)

	var wmu sync.Mutex
	arrived, gate := 0, make(chan struct{})
	mux := http.NewServeMux()
	mux.Handle("GET /cached/{id}", cache.Handler(origin))
	mux.Handle("GET /bare/{id}", origin)
	mux.HandleFunc("GET /warm", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		wmu.Lock()
		arrived++
		g := gate
		if arrived >= n {
			close(gate)
			arrived, gate = 0, make(chan struct{})
		}
		wmu.Unlock()
		select {
		case <-g:
		case <-time.After(time.Minute):
		}
	})
	mux.HandleFunc("GET /runs/{route}/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := runs["/"+r.PathValue("route")+"/"+r.PathValue("id")]
		mu.Unlock()
		fmt.Fprintln(w, n)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}

// somaxconn is the kernel's cap on a listen backlog, as text ("unknown" where it cannot be read).
func somaxconn() string {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
