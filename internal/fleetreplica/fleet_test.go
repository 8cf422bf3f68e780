package fleetreplica

import (
	"context"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// TestFleetColdBurst: 2,000 concurrent requests for one cold key, spread over three replica processes
// sharing one Redis (or a 3-master Cluster) and one origin: the origin is called exactly once.
func TestFleetColdBurst(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		cluster bool
	}{{"single", false}, {"cluster", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := newOrigin(t, 50*time.Millisecond)
			var flags []string
			if tt.cluster {
				flags = []string{"-cluster", "-redis", strings.Join(redistest.StartCluster(t, 3).Addrs(), ",")}
			} else {
				flags = []string{"-redis", redistest.Start(t).Addr()}
			}
			reps := startReplicas(t, 3, o, flags...)
			c := newClient(2000)
			defer c.CloseIdleConnections()

			const n = 2000
			var wg sync.WaitGroup
			var failed atomic.Int64
			xcache := make([]string, n)
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					status, body, xc, err := get(context.Background(), c, reps[i%3].url, "/cold")
					xcache[i] = xc
					if err != nil || status != 200 || body != "/cold #1" {
						failed.Add(1)
						t.Errorf("request %d: %d %q %v", i, status, body, err)
					}
				})
			}
			close(start)
			wg.Wait()
			counts := map[string]int{}
			for _, x := range xcache {
				counts[x]++
			}
			t.Logf("%d requests over 3 replicas: origin calls %d, X-Cache %v", n, o.callsOf("/cold"), counts)
			if got := o.callsOf("/cold"); got != 1 {
				t.Fatalf("origin calls = %d, want 1", got)
			}
		})
	}
}

// zipfTrace is the root package's trace: n paths whose keys follow Zipf(1.001, 10, 200,000).
func zipfTrace(n int, seed int64) []string {
	z := rand.NewZipf(rand.New(rand.NewSource(seed)), 1.001, 10, 200_000)
	trace := make([]string, n)
	for i := range trace {
		trace[i] = fmt.Sprintf("/item/%d", z.Uint64())
	}
	return trace
}

// TestFleetZipf: the Zipf trace (20,000 requests, 1,000 workers) spread over three replicas with a
// memory tier in front of Redis: the origin is called once per distinct key. Played a second time, the
// replicas answer from their memory tier: Redis GETs per distinct key per replica are reported.
func TestFleetZipf(t *testing.T) {
	t.Parallel()
	requests, workers := 20_000, 1_000
	if raceEnabled || testing.Short() {
		requests, workers = 10_000, 300 // three race-built replicas on a small machine
	}
	trace := zipfTrace(requests, 42)
	distinct := map[string]bool{}
	for _, p := range trace {
		distinct[p] = true
	}
	o := newOrigin(t, 10*time.Millisecond)
	srv := redistest.Start(t)
	reps := startReplicas(t, 3, o, "-redis", srv.Addr(), "-l1", "10m")
	c := newClient(workers)
	defer c.CloseIdleConnections()

	play := func() (wrong int64, took time.Duration) {
		var next, bad atomic.Int64
		var wg sync.WaitGroup
		begin := time.Now()
		for range workers {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(len(trace)) {
						return
					}
					status, body, _, err := get(context.Background(), c, reps[i%3].url, trace[i])
					if err != nil || status != 200 || body != trace[i]+" #1" {
						if bad.Add(1) < 5 {
							t.Errorf("%s: %d %q %v", trace[i], status, body, err)
						}
					}
				}
			})
		}
		wg.Wait()
		return bad.Load(), time.Since(begin)
	}
	getsBefore := srv.CommandCalls(t, "get")
	wrong, took := play()
	gets1 := srv.CommandCalls(t, "get") - getsBefore
	if wrong > 0 {
		t.Fatalf("%d wrong responses", wrong)
	}
	t.Logf("pass 1: %d requests, %d workers, 3 replicas, %v: distinct keys %d, origin calls %d; Redis GETs %d (%.2f per distinct key per replica)",
		requests, workers, took.Round(time.Millisecond), len(distinct), o.total.Load()-3, gets1, float64(gets1)/float64(3*len(distinct)))
	if got := o.total.Load() - 3; got != int64(len(distinct)) { // 3: the replicas' warm-up requests
		dup := 0
		o.mu.Lock()
		for _, n := range o.calls {
			if n > 1 {
				dup++
			}
		}
		o.mu.Unlock()
		t.Fatalf("origin calls = %d, want %d (distinct keys); %d keys loaded more than once", got, len(distinct), dup)
	}

	getsBefore = srv.CommandCalls(t, "get")
	if wrong, took = play(); wrong > 0 {
		t.Fatalf("%d wrong responses", wrong)
	}
	gets2 := srv.CommandCalls(t, "get") - getsBefore
	t.Logf("pass 2 (warm): %v: origin calls %d in all; Redis GETs %d (%.3f per distinct key per replica)",
		took.Round(time.Millisecond), o.total.Load()-3, gets2, float64(gets2)/float64(3*len(distinct)))
	if gets2 > 3*len(distinct) {
		t.Errorf("warm pass sent %d GETs, more than one per distinct key per replica (%d)", gets2, 3*len(distinct))
	}
}

// percentile returns the p-th percentile of ds (sorted in place).
func percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// TestFleetCrossReplicaLatency: for each of 200 cold keys one request reaches each replica at once; the
// replicas that did not run the handler answer within a few milliseconds of the origin answering the
// one that did (which includes its store write, its release and the notice).
func TestFleetCrossReplicaLatency(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, 20*time.Millisecond)
	reps := startReplicas(t, 3, o, "-redis", redistest.Start(t).Addr())
	c := newClient(16)
	defer c.CloseIdleConnections()
	var lat []time.Duration
	for k := range 200 {
		path := fmt.Sprintf("/lat/%d", k)
		recv := make([]time.Time, 3)
		xc := make([]string, 3)
		var wg sync.WaitGroup
		for i, r := range reps {
			wg.Go(func() {
				status, body, x, err := get(context.Background(), c, r.url, path)
				recv[i], xc[i] = time.Now(), x
				if err != nil || status != 200 || body != path+" #1" {
					t.Errorf("%s on %s: %d %q %v", path, r.name, status, body, err)
				}
			})
		}
		wg.Wait()
		o.mu.Lock()
		done := o.done[path]
		o.mu.Unlock()
		if len(done) != 1 {
			t.Fatalf("%s: origin called %d times", path, len(done))
		}
		for i := range reps {
			if xc[i] == "HIT" { // a replica whose leader waited for the lease holder
				lat = append(lat, recv[i].Sub(done[0]))
			}
		}
	}
	if len(lat) < 200 {
		t.Fatalf("only %d cross-replica waits in 200 rounds", len(lat))
	}
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
	t.Logf("cross-replica waiters: %d, from the origin's answer to the waiter's response: p50 %v, p99 %v, max %v",
		len(lat), p50, p99, lat[len(lat)-1])
	// Generous bounds: the figure is reported, and `go test ./...` runs other packages' load beside this one
	// (alone, under -race on two cores: p50 2 ms, p99 15 ms).
	if p50 > 100*time.Millisecond || p99 > time.Second {
		t.Errorf("p50 %v, p99 %v: above 100 ms, 1 s", p50, p99)
	}
}

// TestFleetLeaseTakeover: the holder hangs past its lease; another replica takes over after the lease
// and serves its own run; the late holder's write is refused, so Redis keeps the newer entry.
func TestFleetLeaseTakeover(t *testing.T) {
	t.Parallel()
	const lease, hang, delay = 500 * time.Millisecond, 1500 * time.Millisecond, 20 * time.Millisecond
	o := newOrigin(t, delay)
	o.hang = hang
	srv := redistest.Start(t)
	reps := startReplicas(t, 2, o, "-redis", srv.Addr(), "-lease", lease.String())
	c := newClient(4)
	defer c.CloseIdleConnections()

	first := make(chan string, 1)
	go func() {
		_, body, _, err := get(context.Background(), c, reps[0].url, "/hang/x")
		if err != nil {
			t.Error(err)
		}
		first <- body
	}()
	for o.callsOf("/hang/x") == 0 {
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	_, body, _, err := get(context.Background(), c, reps[1].url, "/hang/x")
	waited := time.Since(began)
	if err != nil || body != "/hang/x #2" {
		t.Fatalf("replica b: %q %v; want the body of its own run, #2", body, err)
	}
	t.Logf("replica b answered after %v (lease %v, origin %v)", waited.Round(time.Millisecond), lease, delay)
	if max := lease + delay + 300*time.Millisecond; waited > max {
		t.Errorf("replica b waited %v, more than lease + handler time + margin (%v)", waited, max)
	}
	if got := <-first; got != "/hang/x #1" {
		t.Errorf("replica a: %q, want its own run, #1", got)
	}
	// The late holder's write is refused: Redis keeps b's entry.
	time.Sleep(100 * time.Millisecond) // a's write happens after its response; FleetFenced says when
	if s := stats(t, c, reps[0]); s.FleetFenced != 1 {
		t.Errorf("replica a FleetFenced = %d, want 1", s.FleetFenced)
	}
	keys, err := srv.Client().Keys(context.Background(), "stampede:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, k := range keys {
		if !strings.HasSuffix(k, "}") {
			continue // a lease, or a tag set
		}
		raw, err := srv.Client().Get(context.Background(), k).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		e, err := entry.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(string(e.Body), "/hang/x") {
			bodies = append(bodies, string(e.Body))
		}
	}
	if len(bodies) != 1 || bodies[0] != "/hang/x #2" {
		t.Errorf("stored bodies for /hang/x: %q, want the newer run's only, #2", bodies)
	}
}

// TestFleetRedisKilled: Redis is killed while three replicas serve a steady load, then restarted: no
// request fails, and the replicas coalesce per process meanwhile.
func TestFleetRedisKilled(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, 5*time.Millisecond)
	srv := redistest.Start(t)
	reps := startReplicas(t, 3, o, "-redis", srv.Addr(), "-ttl", "300ms", "-store-timeout", "100ms")
	c := newClient(64)
	defer c.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				path := fmt.Sprintf("/k/%d", (w+i)%40)
				status, body, _, err := get(context.Background(), c, reps[(w+i)%3].url, path)
				if err != nil || status != 200 || !strings.HasPrefix(body, path+" #") {
					if failed.Add(1) < 5 {
						t.Errorf("%s: %d %q %v", path, status, body, err)
					}
					continue
				}
				served.Add(1)
			}
		})
	}
	time.Sleep(time.Second)
	srv.Stop()
	killedAt := o.total.Load()
	time.Sleep(1500 * time.Millisecond)
	downCalls := o.total.Load() - killedAt
	srv.Restart()
	wg.Wait()
	t.Logf("served %d, failed %d; origin calls %d in all, %d while Redis was down (1.5 s)",
		served.Load(), failed.Load(), o.total.Load(), downCalls)
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
}

// TestFleetPurge: with a memory tier in front of Redis on every replica, a purge by URL and a purge by
// tag on replica a stop replicas b and c serving the entry (from their memory tier too) within a
// measured bound.
func TestFleetPurge(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, 5*time.Millisecond)
	srv := redistest.Start(t)
	reps := startReplicas(t, 3, o, "-redis", srv.Addr(), "-l1", "10m")
	c := newClient(16)
	defer c.CloseIdleConnections()
	ctx := context.Background()

	// warm makes every replica hold paths in its memory tier, and checks that the second round sends no GET.
	warm := func(paths ...string) map[string]string {
		bodies := map[string]string{}
		for _, p := range paths {
			_, body, _, err := get(ctx, c, reps[0].url, p)
			if err != nil {
				t.Fatal(err)
			}
			bodies[p] = body
		}
		time.Sleep(50 * time.Millisecond) // replica a's write is in the background
		for _, r := range reps[1:] {
			for _, p := range paths {
				if _, body, x, err := get(ctx, c, r.url, p); err != nil || x != "HIT" || body != bodies[p] {
					t.Fatalf("%s on %s: %q %s %v", p, r.name, body, x, err)
				}
			}
		}
		before := srv.CommandCalls(t, "get")
		for _, r := range reps {
			for _, p := range paths {
				if _, _, x, _ := get(ctx, c, r.url, p); x != "HIT" {
					t.Fatalf("%s on %s: %s, want HIT", p, r.name, x)
				}
			}
		}
		if n := srv.CommandCalls(t, "get") - before; n != 0 {
			t.Fatalf("warm replicas sent %d GETs to Redis; their memory tier should answer", n)
		}
		return bodies
	}
	// gone purges with purge on replica a and returns how long until b and c stop serving the old bodies.
	gone := func(purge string, old map[string]string) time.Duration {
		if status, body, _, err := get(ctx, c, reps[0].url, purge); err != nil || status != 200 {
			t.Fatalf("%s: %d %q %v", purge, status, body, err)
		}
		began := time.Now()
		for p, body := range old {
			for _, r := range reps[1:] {
				for {
					_, got, _, err := get(ctx, c, r.url, p)
					if err != nil {
						t.Fatal(err)
					}
					if got != body {
						break
					}
					if time.Since(began) > 5*time.Second {
						t.Fatalf("%s still serves %s 5 s after %s", r.name, p, purge)
					}
					time.Sleep(200 * time.Microsecond)
				}
			}
		}
		return time.Since(began)
	}

	old := warm("/p/1")
	byURL := gone("/_purge/url?path=/p/1", old)

	tagged := []string{"/t/1?tag=news", "/t/2?tag=news%20sport", "/t/3?tag=sport,news"}
	old = warm(tagged...)
	byTag := gone("/_purge/tag?tag=news", old)
	t.Logf("purge seen by replicas b and c (memory tier included) after: by URL %v, by tag (3 entries) %v",
		byURL, byTag)
	for _, d := range []time.Duration{byURL, byTag} {
		if d > time.Second {
			t.Errorf("purge took %v to reach every replica", d)
		}
	}
}
