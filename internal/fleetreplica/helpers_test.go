package fleetreplica

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
)

// asReplica is set in the environment of the replica processes: the test binary, re-executed, runs Run
// with its arguments instead of the tests (so the replicas have the race detector exactly when the
// tests do).
const asReplica = "STAMPEDE_FLEETREPLICA_RUN"

// binary is the replica binary: this test binary.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(asReplica) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	var err error
	if binary, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// patience is how long anything a test waits for may take before the test calls it hung: a request, a
// Redis call, a lease, a purge reaching the other replicas. The machine decides how fast things happen
// (seconds on a loaded 2-core machine for what takes milliseconds on a quiet one), so no test asserts
// that; a test only fails when something does not happen at all.
//
// It is also the replicas' store timeout, lease and compute timeout unless a test says otherwise: what a
// test asserts about coalescing (one origin call per key) holds while Redis answers, leases last and runs
// stay attached, and a lease that expires or a run detached because the machine is slow is correct
// behaviour, not what those tests are about. Either happens only in a run that the test fails anyway for
// taking too long.
const patience = 2 * time.Minute

// host is the Host every request carries: the key includes the host, and replicas listen on
// different ports.
const host = "fleet.test"

// origin counts its calls per path. Each call answers "path #n" where n counts calls of that path,
// after delay, with the tags in ?tag= as Cache-Tag. A test may set hold (before the first request) to
// stop calls until it lets them go.
type origin struct {
	srv   *httptest.Server
	delay time.Duration
	// hold, when set, is called before each call answers, with the path, the call's number for that
	// path and the replica that made it (X-Replica).
	hold func(path string, n int, replica string)

	total atomic.Int64
	mu    sync.Mutex
	calls map[string]int         // guarded by mu
	by    map[string][]string    // the replicas that called each path, in order; guarded by mu
	done  map[string][]time.Time // when each call returned; guarded by mu
}

func newOrigin(t testing.TB, delay time.Duration) *origin {
	o := &origin{delay: delay, calls: map[string]int{}, by: map[string][]string{}, done: map[string][]time.Time{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.total.Add(1)
		o.mu.Lock()
		o.calls[r.URL.Path]++
		n := o.calls[r.URL.Path]
		o.by[r.URL.Path] = append(o.by[r.URL.Path], r.Header.Get("X-Replica"))
		o.mu.Unlock()
		time.Sleep(o.delay) // the origin's work
		if o.hold != nil {
			o.hold(r.URL.Path, n, r.Header.Get("X-Replica"))
		}
		if tag := r.URL.Query().Get("tag"); tag != "" {
			w.Header().Set("Cache-Tag", tag)
		}
		w.Header().Set("Content-Type", "text/plain")
		o.mu.Lock()
		o.done[r.URL.Path] = append(o.done[r.URL.Path], time.Now())
		o.mu.Unlock()
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) callsOf(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls[path]
}

// duplicates describes the paths called more than once, with the replicas that called them, at most 20.
func (o *origin) duplicates() (n int, desc string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for path, c := range o.calls {
		if c > 1 && !strings.HasPrefix(path, "/warmup/") {
			if n++; n <= 20 {
				fmt.Fprintf(&b, " %s by %v;", path, o.by[path])
			}
		}
	}
	return n, b.String()
}

// replica is one replica process.
type replica struct {
	name string
	url  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startReplicas starts n replica processes in front of o, with the given extra flags after the
// defaults: a store timeout, a wait for a Redis connection, a lease and a compute timeout of patience,
// and a TTL of an hour, so that no entry expires while a slow machine still plays a test's traffic.
func startReplicas(t testing.TB, n int, o *origin, flags ...string) []*replica {
	t.Helper()
	reps := make([]*replica, n)
	for i := range reps {
		name := string(rune('a' + i))
		p := patience.String()
		args := append([]string{"-origin", o.srv.URL, "-name", name,
			"-store-timeout", p, "-pool-timeout", p, "-lease", p, "-compute-timeout", p, "-ttl", "1h"}, flags...)
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), asReplica+"=1",
			"GORACE=atexit_sleep_ms=0") // a race-built binary sleeps 1 s at exit otherwise
		// Replicas of tests running in parallel share stderr: each line says whose it is.
		cmd.Stderr = &prefixWriter{prefix: t.Name() + ": replica " + name + ": "}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := &replica{name: name, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); close(r.done) }()
		t.Cleanup(r.stop)
		line, err := bufio.NewReader(stdout).ReadString('\n')
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		if err != nil || !ok {
			t.Fatalf("replica %s: %q, %v", name, line, err)
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		r.url = "http://" + addr
		reps[i] = r
		// Warm up: the first request dials Redis (and loads a cluster's slot map).
		if _, _, _, err := get(context.Background(), http.DefaultClient, r.url, "/warmup/"+name); err != nil {
			t.Fatalf("replica %s: warm-up: %v", name, err)
		}
	}
	return reps
}

func (r *replica) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	began := time.Now()
	defer func() {
		if d := time.Since(began); d > time.Second {
			fmt.Fprintf(os.Stderr, "replica %s took %v to stop\n", r.name, d)
		}
	}()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// prefixWriter copies a replica's stderr to the test's, each line prefixed with the replica's name.
type prefixWriter struct {
	prefix string
	mu     sync.Mutex
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintln(os.Stderr, p.prefix+line)
	}
	return len(b), nil
}

func newClient(conns int) *http.Client {
	return &http.Client{Timeout: patience, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 5 * time.Second}}
}

// get sends GET base+path with Host fleet.test and returns the status, body and X-Cache.
func get(ctx context.Context, c *http.Client, base, path string) (status int, body, xcache string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Cache"), err
}

func stats(t testing.TB, c *http.Client, r *replica) stampede.Snapshot {
	t.Helper()
	resp, err := c.Get(r.url + "/_stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stampede.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// logStats logs each replica's counters: what the replicas saw when a test fails.
func logStats(t *testing.T, c *http.Client, reps []*replica) {
	t.Helper()
	for _, r := range reps {
		s := stats(t, c, r)
		passes := map[string]uint64{}
		for k, v := range s.PassReasons {
			if v > 0 {
				passes[k] = v
			}
		}
		t.Logf("replica %s: misses %d, hits %d, coalesced %d, passes %v, store get/set errors %d/%d, breaker trips %d, fleet served %d, fenced %d",
			r.name, s.Misses, s.Hits, s.Coalesced, passes, s.StoreGetErrors, s.StoreSetErrors, s.BreakerTrips, s.FleetServed, s.FleetFenced)
	}
}

// waitUntil polls cond until it holds, failing the test if it does not within patience: it waits for
// another process to reach a state, however slowly the machine lets it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
		time.Sleep(time.Millisecond)
	}
}
