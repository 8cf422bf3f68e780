package fleetreplica

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
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
				logStats(t, c, reps)
				_, dups := o.duplicates()
				t.Fatalf("origin calls = %d, want 1:%s", got, dups)
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
// replicas answer from their memory tier: Redis GETs per distinct key per replica are reported. Redis
// stays healthy and the replicas' timeouts and leases are patience (see startReplicas), so what is
// tested is the protocol, not how fast the machine is: a store timeout or an expired lease makes a
// second origin call correctly, and neither may happen here.
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
	reps := startReplicas(t, 3, o, "-redis", srv.Addr(), "-l1", "1h")
	c := newClient(workers)
	defer c.CloseIdleConnections()

	play := func(pass string) time.Duration {
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
						if bad.Add(1) <= 5 {
							t.Errorf("%s: %s on %s: %d %q %v", pass, trace[i], reps[i%3].name, status, body, err)
						}
					}
				}
			})
		}
		wg.Wait()
		if n := bad.Load(); n > 0 {
			logStats(t, c, reps)
			_, dups := o.duplicates()
			t.Fatalf("%s: %d wrong responses; keys the origin ran more than once, by replica:%s", pass, n, dups)
		}
		return time.Since(begin)
	}
	getsBefore := srv.CommandCalls(t, "get")
	took := play("pass 1")
	gets1 := srv.CommandCalls(t, "get") - getsBefore
	t.Logf("pass 1: %d requests, %d workers, 3 replicas, %v: distinct keys %d, origin calls %d; Redis GETs %d (%.2f per distinct key per replica)",
		requests, workers, took.Round(time.Millisecond), len(distinct), o.total.Load()-3, gets1, float64(gets1)/float64(3*len(distinct)))
	if got := o.total.Load() - 3; got != int64(len(distinct)) { // 3: the replicas' warm-up requests
		logStats(t, c, reps)
		n, dups := o.duplicates()
		t.Fatalf("origin calls = %d, want %d (distinct keys); %d keys loaded more than once:%s", got, len(distinct), n, dups)
	}

	getsBefore = srv.CommandCalls(t, "get")
	took = play("pass 2")
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

// crossReplicaRound sends one request for a cold path to each replica at once and checks that the origin
// ran once and every replica answered its body. It returns, for each replica that did not run the
// handler (X-Cache: HIT, its leader waited for the lease holder), the time from the origin's answer to
// that replica's response, which includes the holder's write, its release and the notice.
func crossReplicaRound(tb testing.TB, o *origin, c *http.Client, reps []*replica, path string) []time.Duration {
	recv := make([]time.Time, len(reps))
	xc := make([]string, len(reps))
	var wg sync.WaitGroup
	for i, r := range reps {
		wg.Go(func() {
			status, body, x, err := get(context.Background(), c, r.url, path)
			recv[i], xc[i] = time.Now(), x
			if err != nil || status != 200 || body != path+" #1" {
				tb.Errorf("%s on %s: %d %q %v", path, r.name, status, body, err)
			}
		})
	}
	wg.Wait()
	o.mu.Lock()
	done, by := o.done[path], o.by[path]
	o.mu.Unlock()
	if len(done) != 1 {
		tb.Fatalf("%s: origin called %d times, by %v", path, len(done), by)
	}
	var lat []time.Duration
	for i := range reps {
		if xc[i] == "HIT" {
			lat = append(lat, recv[i].Sub(done[0]))
		}
	}
	return lat
}

// TestFleetCrossReplica: for each of 100 cold keys one request reaches each replica at once: the origin
// is called once per key and every replica answers its body. The time the waiting replicas take after
// the origin answered is logged; BenchmarkFleetCrossReplica measures it (make bench).
func TestFleetCrossReplica(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, 20*time.Millisecond)
	reps := startReplicas(t, 3, o, "-redis", redistest.Start(t).Addr())
	c := newClient(16)
	defer c.CloseIdleConnections()
	var lat []time.Duration
	for k := range 100 {
		lat = append(lat, crossReplicaRound(t, o, c, reps, fmt.Sprintf("/lat/%d", k))...)
	}
	if len(lat) == 0 {
		t.Fatal("no replica waited for another's run in 100 rounds")
	}
	p50, p99 := percentile(lat, 0.5), percentile(lat, 0.99)
	t.Logf("cross-replica waiters: %d, from the origin's answer to the waiter's response: p50 %v, p99 %v, max %v",
		len(lat), p50, p99, lat[len(lat)-1])
}

// BenchmarkFleetCrossReplica measures, per cold key requested from three replicas at once, the time from
// the origin's answer to the response of each replica that waited for the lease holder (its write, its
// release, the notice and the waiter's read), as p50 and p99 over the run.
func BenchmarkFleetCrossReplica(b *testing.B) {
	o := newOrigin(b, 20*time.Millisecond)
	reps := startReplicas(b, 3, o, "-redis", redistest.Start(b).Addr())
	c := newClient(16)
	defer c.CloseIdleConnections()
	var lat []time.Duration
	k := 0
	for b.Loop() {
		lat = append(lat, crossReplicaRound(b, o, c, reps, fmt.Sprintf("/bench/%d", k))...)
		k++
	}
	if len(lat) > 0 {
		b.ReportMetric(float64(percentile(lat, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
	}
}

// TestFleetLeaseTakeover: the holder hangs past its lease; another replica takes the lease over and
// serves its own run; the late holder's write is refused, so Redis keeps the newer entry. The origin
// holds both runs until the test lets them go, so the order is the test's, not the machine's: replica
// b's run starts while a's still hangs, and a answers only after b did.
func TestFleetLeaseTakeover(t *testing.T) {
	t.Parallel()
	const lease = 500 * time.Millisecond
	o := newOrigin(t, 0)
	entered := make(chan string, 2) // "a" or "b": whose run of /hang/x reached the origin
	release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	var releaseOnce sync.Map // replica -> *sync.Once: the test closes a hold, or its end does
	free := func(replica string) {
		once, _ := releaseOnce.LoadOrStore(replica, new(sync.Once))
		once.(*sync.Once).Do(func() { close(release[replica]) })
	}
	o.hold = func(path string, _ int, replica string) {
		if path != "/hang/x" {
			return
		}
		select {
		case entered <- replica:
		default: // a run the test does not expect: it fails on what it sees, this one must not block
		}
		<-release[replica]
	}
	srv := redistest.Start(t)
	reps := startReplicas(t, 2, o, "-redis", srv.Addr(), "-lease", lease.String())
	// Registered after the origin and the replicas, so it runs before their cleanups: a test that fails
	// while a run is held frees it, and the origin's server can close instead of waiting for ever.
	t.Cleanup(func() { free("a"); free("b") })
	c := newClient(4)
	defer c.CloseIdleConnections()
	admin := srv.Client()
	ctx := context.Background()
	// Leases that exist before /hang/x is asked for belong to the requests that started the replicas,
	// whose releases may still be on their way: they are not /hang/x's.
	earlier, err := admin.Keys(ctx, "stampede:*:lock").Result()
	if err != nil {
		t.Fatal(err)
	}
	// lockHolder returns the token of /hang/x's lease ("" when there is none).
	lockHolder := func() string {
		keys, err := admin.Keys(ctx, "stampede:*:lock").Result()
		keys = slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(earlier, k) })
		if err != nil || len(keys) > 1 {
			all, _ := admin.Keys(ctx, "*").Result()
			t.Fatalf("lease keys %q, %v (every key: %q; before /hang/x: %q)", keys, err, all, earlier)
		}
		if len(keys) == 0 {
			return ""
		}
		tok, _ := admin.Get(ctx, keys[0]).Result()
		return tok
	}
	enter := func(want string) {
		t.Helper()
		select {
		case got := <-entered:
			if got != want {
				t.Fatalf("the origin's next run of /hang/x came from replica %s, want %s", got, want)
			}
		case <-time.After(patience):
			t.Fatalf("replica %s's run of /hang/x did not reach the origin within %v", want, patience)
		}
	}

	first := make(chan string, 1)
	go func() {
		_, body, _, err := get(ctx, c, reps[0].url, "/hang/x")
		if err != nil {
			t.Error(err)
		}
		first <- body
	}()
	enter("a")
	tokA := lockHolder()
	if tokA == "" {
		t.Fatal("replica a runs /hang/x without holding its lease")
	}

	second := make(chan string, 1)
	began := time.Now()
	go func() {
		_, body, _, err := get(ctx, c, reps[1].url, "/hang/x")
		if err != nil {
			t.Error(err)
		}
		second <- body
	}()
	enter("b") // only once a's lease expired: a is still held
	if tokB := lockHolder(); tokB == "" || tokB == tokA {
		t.Fatalf("replica b runs /hang/x with lease token %q (a's was %q): it must hold a lease of its own", tokB, tokA)
	}
	free("b")
	if body := <-second; body != "/hang/x #2" {
		t.Fatalf("replica b: %q; want the body of its own run, #2", body)
	}
	t.Logf("replica b answered after %v (lease %v)", time.Since(began).Round(time.Millisecond), lease)

	free("a") // the late holder answers and then tries to store
	if got := <-first; got != "/hang/x #1" {
		t.Errorf("replica a: %q, want its own run, #1", got)
	}
	// The late holder's write is refused: Redis keeps b's entry. a writes after its response.
	waitUntil(t, "replica a's late write refused (FleetFenced)", func() bool {
		s := stats(t, c, reps[0])
		if s.StoreSetErrors > 0 {
			t.Fatalf("replica a's write failed (%d store set errors) instead of being refused", s.StoreSetErrors)
		}
		return s.FleetFenced >= 1
	})
	if s := stats(t, c, reps[0]); s.FleetFenced != 1 {
		t.Errorf("replica a FleetFenced = %d, want 1", s.FleetFenced)
	}
	keys, err := admin.Keys(ctx, "stampede:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, k := range keys {
		if !strings.HasSuffix(k, "}") {
			continue // a lease, or a tag set
		}
		raw, err := admin.Get(ctx, k).Bytes()
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
// request fails, and the replicas coalesce per process meanwhile. The phases end on what was served, not
// on the clock: a few hundred requests before the kill, while Redis is down, and after the restart.
func TestFleetRedisKilled(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, 5*time.Millisecond)
	srv := redistest.Start(t)
	// Short timeouts and the default lease: this test is about outages, where they matter.
	reps := startReplicas(t, 3, o, "-redis", srv.Addr(), "-ttl", "300ms", "-store-timeout", "100ms",
		"-pool-timeout", "1s", "-lease", "2s")
	c := newClient(64)
	defer c.CloseIdleConnections()

	stop := make(chan struct{})
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
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
	const phase = 300 // requests served in each phase
	servedFor := func(what string) {
		t.Helper()
		from := served.Load()
		waitUntil(t, what, func() bool { return served.Load() >= from+phase || failed.Load() > 0 })
	}
	servedFor("requests before the kill")
	srv.Stop()
	killedAt := o.total.Load()
	servedFor("requests while Redis is down")
	downCalls := o.total.Load() - killedAt
	srv.Restart()
	servedFor("requests after the restart")
	close(stop)
	wg.Wait()
	t.Logf("served %d, failed %d; origin calls %d in all, %d while Redis was down (%d requests served)",
		served.Load(), failed.Load(), o.total.Load(), downCalls, phase)
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
}

// TestFleetPurge: with a memory tier in front of Redis on every replica, a purge by URL and a purge by
// tag on replica a stop replicas b and c serving the entry (from their memory tier too). How long the
// purge took to reach them is logged.
func TestFleetPurge(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, 5*time.Millisecond)
	srv := redistest.Start(t)
	reps := startReplicas(t, 3, o, "-redis", srv.Addr(), "-l1", "1h")
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
		// Replica a writes in the background; until it is done, requests there join the run (COALESCED),
		// and a HIT there says the entry is in Redis.
		for _, p := range paths {
			waitUntil(t, p+" stored by replica a", func() bool {
				_, _, x, err := get(ctx, c, reps[0].url, p)
				return err == nil && x == "HIT"
			})
		}
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
					if time.Since(began) > patience {
						t.Fatalf("%s still serves %s %v after %s", r.name, p, patience, purge)
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
}
