package stampede_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// redisClient returns a client for tests about what is stored and shared on a healthy Redis: its
// timeouts only catch a Redis that stopped answering, so a loaded machine turns no call into a miss. Give
// its store redisstore.WithTimeout(patience) and the cache WithStoreTimeout(patience) too.
func redisClient(t testing.TB, addr string, poolSize int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, PoolSize: poolSize,
		DialTimeout: patience, ReadTimeout: patience, WriteTimeout: patience, PoolTimeout: patience,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// outageClient returns a client with the settings the redisstore docs recommend (200 ms timeouts, no
// retries), for the tests that kill or stall Redis.
func outageClient(t testing.TB, addr string, poolSize int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1, PoolSize: poolSize,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		PoolTimeout: time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRedisReplicasShare: two middleware instances ("replicas") on one Redis: the second serves the
// first's stored response without running its own handler.
func TestRedisReplicasShare(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	newReplica := func(name string) (*stampede.Cache, *origin) {
		store := closing(t, redisstore.New(redisClient(t, srv.Addr(), 10), redisstore.WithTimeout(patience)))
		c := stampede.New(nil, store, time.Minute, stampede.WithName(name), stampede.WithStoreTimeout(patience))
		return c, &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"from":%q,"q":%q}`, name, r.URL.Query().Get("q"))
		}}
	}
	a, oa := newReplica("a")
	b, ob := newReplica("b")
	ha, hb := a.Handler(oa), b.Handler(ob)

	first := serveDirect(ha, httptest.NewRequest("GET", "/api?q=1", nil))
	a.Wait()
	second := serveDirect(hb, httptest.NewRequest("GET", "/api?q=1", nil))
	assert.Equal(t, "MISS", first.Header().Get("X-Cache"))
	assert.Equal(t, "HIT", second.Header().Get("X-Cache"))
	assert.Equal(t, first.Body.String(), second.Body.String())
	assert.Equal(t, "application/json", second.Header().Get("Content-Type"))
	assert.EqualValues(t, 0, ob.runs.Load(), "replica b must not run its handler")

	other := serveDirect(hb, httptest.NewRequest("GET", "/api?q=2", nil))
	assert.Equal(t, "MISS", other.Header().Get("X-Cache"))
	assert.Contains(t, other.Body.String(), `"from":"b"`)
}

// TestRedisClusterReplicasShare: the same on a 3-master Redis Cluster, with keys on every master.
func TestRedisClusterReplicasShare(t *testing.T) {
	t.Parallel()
	cluster := redistest.StartCluster(t, 3)
	newReplica := func() (*stampede.Cache, *origin) {
		client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), ContextTimeoutEnabled: true,
			MaxRetries: -1, ReadTimeout: patience, WriteTimeout: patience})
		t.Cleanup(func() { _ = client.Close() })
		c := stampede.New(nil, closing(t, redisstore.New(client, redisstore.WithTimeout(patience))), time.Minute,
			stampede.WithStoreTimeout(patience))
		return c, &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) { fmt.Fprintf(w, "page %s", r.URL.Path) }}
	}
	a, oa := newReplica()
	b, ob := newReplica()
	ha, hb := a.Handler(oa), b.Handler(ob)
	const pages = 60
	for i := range pages {
		serveDirect(ha, httptest.NewRequest("GET", fmt.Sprintf("/p/%d", i), nil))
	}
	a.Wait()
	for i := range pages {
		rec := serveDirect(hb, httptest.NewRequest("GET", fmt.Sprintf("/p/%d", i), nil))
		require.Equal(t, "HIT", rec.Header().Get("X-Cache"), "page %d", i)
		require.Equal(t, fmt.Sprintf("page /p/%d", i), rec.Body.String())
	}
	assert.EqualValues(t, pages, oa.runs.Load())
	assert.EqualValues(t, 0, ob.runs.Load())
	for _, node := range cluster.Nodes() {
		n, err := node.Do("DBSIZE")
		require.NoError(t, err)
		assert.NotEqual(t, "0", strings.TrimSpace(n), "every master holds some keys")
	}
}

// TestRedisKilled: Redis dies while a burst is in flight and while idle; every request still gets a
// correct response; after a restart caching resumes by itself, and the breaker logged one warning and
// one recovery. The worst latency is logged (BenchmarkRedisOutage measures it under load).
func TestRedisKilled(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var logs logBuffer
	const storeTimeout, handlerTime = 100 * time.Millisecond, 20 * time.Millisecond
	store := closing(t, redisstore.New(outageClient(t, srv.Addr(), 64), redisstore.WithTimeout(storeTimeout)))
	c := stampede.New(newLogger(&logs), store, time.Minute, stampede.WithCircuitBreaker(3, 50*time.Millisecond))
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
		time.Sleep(handlerTime) // the origin's work
		fmt.Fprintf(w, "body of %s", r.URL.Path)
	}}
	h := c.Handler(o)

	var worst atomic.Int64
	burst := func(name string, n int, mid func()) {
		var wg sync.WaitGroup
		for i := range n {
			if i == n/2 && mid != nil {
				mid()
			}
			wg.Go(func() {
				path := fmt.Sprintf("/k/%d", i%50)
				start := time.Now()
				rec := serveDirect(h, httptest.NewRequest("GET", path, nil))
				d := time.Since(start)
				for {
					old := worst.Load()
					if int64(d) <= old || worst.CompareAndSwap(old, int64(d)) {
						break
					}
				}
				if rec.Code != 200 || rec.Body.String() != "body of "+path {
					t.Errorf("request %s: %d %q", path, rec.Code, rec.Body.String())
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(patience):
			t.Fatalf("%s: requests or store writes still running after %v: they hang on the dead Redis", name, patience)
		}
	}
	burst("killed mid-burst", 400, srv.Stop)
	burst("idle, then down", 200, nil) // Redis is still dead
	t.Logf("worst request latency while Redis was down: %v (store timeout %v, handler %v)",
		time.Duration(worst.Load()).Round(time.Millisecond), storeTimeout, handlerTime)

	srv.Restart()
	deadline := time.Now().Add(patience) // the breaker probes once per back-off (1 s by default)
	for {
		serveDirect(h, httptest.NewRequest("GET", "/after", nil))
		c.Wait()
		if serveDirect(h, httptest.NewRequest("GET", "/after", nil)).Header().Get("X-Cache") == "HIT" {
			break
		}
		require.True(t, time.Now().Before(deadline), "caching did not resume after Redis came back; logs:\n%s", logs.String())
		time.Sleep(20 * time.Millisecond) // waiting on an external process; the breaker's back-off is 50 ms
	}
	// One line per change of state: the breaker opened while Redis was down and closed once it was back.
	// A restart that a loaded machine makes slow may fail a probe or two after the first recovery and
	// open the breaker again; every opening is then closed again.
	out := logs.String()
	opened, closed := strings.Count(out, "circuit breaker open"), strings.Count(out, "circuit breaker closed")
	assert.GreaterOrEqual(t, opened, 1, out)
	assert.Equal(t, opened, closed, out)
	assert.Greater(t, strings.LastIndex(out, "circuit breaker closed"), strings.LastIndex(out, "circuit breaker open"), out)
}

// TestRedisPaused: a Redis that stops answering (stalled until the test ends) costs each request no
// more than the store timeout: every request is served by the handler while Redis is still stalled.
// The client's own timeouts are far longer (patience), so a request that returned was ended by the
// store timeout; the hang check allows 200 times that.
func TestRedisPaused(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const storeTimeout = 100 * time.Millisecond
	store := closing(t, redisstore.New(redisClient(t, srv.Addr(), 16), redisstore.WithTimeout(storeTimeout)))
	c := stampede.New(nil, store, time.Minute)
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, n int64) { fmt.Fprintf(w, "run %d", n) }}
	h := c.Handler(o)
	serveDirect(h, httptest.NewRequest("GET", "/warm", nil)) // a connection to Redis
	c.Wait()
	srv.Freeze()
	for i := range 5 {
		start := time.Now()
		rec := serveDirect(h, httptest.NewRequest("GET", fmt.Sprintf("/slow/%d", i), nil))
		d := time.Since(start)
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, fmt.Sprintf("run %d", i+2), rec.Body.String())
		t.Logf("request %d against a stalled Redis: %v", i, d.Round(time.Millisecond))
		if d > 200*storeTimeout {
			t.Errorf("request %d took %v against a stalled Redis: it waited for Redis, not the store timeout (%v)", i, d, storeTimeout)
		}
	}
	c.Wait()
}

// TestRedisGarbage: garbage, truncated and foreign values under our keys are misses and get replaced.
func TestRedisGarbage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := redisClient(t, srv.Addr(), 10)
	c := stampede.New(nil, closing(t, redisstore.New(client, redisstore.WithTimeout(patience))), time.Minute,
		stampede.WithStoreTimeout(patience))
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, _ int64) { fmt.Fprintf(w, "good %s", r.URL.Path) }}
	h := c.Handler(o)
	values := map[string]string{
		"/garbage":   "\x00\x01\x02garbage",
		"/truncated": "STMP\x01\x00",
		"/foreign":   `{"status":200,"body":"evil"}`,
		"/zipped":    "STZ1 not really s2",
	}
	for path, v := range values {
		k := stampede.StoreKey(c, httptest.NewRequest("GET", path, nil))
		require.NoError(t, client.Set(t.Context(), k, v, time.Minute).Err())
	}
	for path := range values {
		rec := serveDirect(h, httptest.NewRequest("GET", path, nil))
		assert.Equal(t, "good "+path, rec.Body.String())
		assert.Equal(t, "MISS", rec.Header().Get("X-Cache"))
	}
	c.Wait()
	for path := range values {
		rec := serveDirect(h, httptest.NewRequest("GET", path, nil))
		assert.Equal(t, "HIT", rec.Header().Get("X-Cache"), "%s was overwritten with a valid entry", path)
		assert.Equal(t, "good "+path, rec.Body.String())
	}
}

// TestRedisZeroDuplicateLoads: the Zipf trace with the Redis store: handler runs == distinct keys, and
// Redis GETs (INFO commandstats) <= requests.
func TestRedisZeroDuplicateLoads(t *testing.T) {
	requests, workers := 200_000, 10_000
	if raceEnabled {
		// Under -race go-redis is ~10x slower: 10,000 workers then wait on the client's pool longer
		// than any sane timeout, the breaker (rightly) opens and skipped look-ups become loads. The
		// full-size run without -race is in bench/ (make bench) and in CHANGELOG.md's numbers.
		workers = 2_000
	}
	if testing.Short() {
		requests, workers = 20_000, 1_000
	}
	srv := redistest.Start(t)
	// This test is about the protocol on a healthy store, so the client and store get timeouts that a
	// loaded CI machine (the rest of the suite runs beside it) cannot reach; outages are tested elsewhere.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, PoolSize: 512,
		PoolTimeout: patience, ReadTimeout: patience, WriteTimeout: patience})
	t.Cleanup(func() { _ = client.Close() })
	store := closing(t, redisstore.New(client, redisstore.WithTimeout(patience)))
	// Nor may a run outlast its compute timeout (see TestZeroDuplicateLoads).
	c := stampede.New(nil, store, time.Hour, stampede.WithStoreTimeout(patience), stampede.WithComputeTimeout(time.Hour))
	trace := zipfTrace(requests, 42)
	distinct := map[string]bool{}
	for _, p := range trace {
		distinct[p] = true
	}
	var runs atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond) // the origin's work
		runs.Add(1)
		fmt.Fprintf(w, "item %s", r.URL.Path)
	}))
	getsBefore := srv.CommandCalls(t, "get")
	var next, wrong atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(trace)) {
					return
				}
				rec := serveDirect(h, httptest.NewRequest(http.MethodGet, trace[i], nil))
				if rec.Body.String() != "item "+trace[i] {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	c.Wait()
	gets := srv.CommandCalls(t, "get") - getsBefore
	logSnapshot(t, c)
	require.Zero(t, wrong.Load())
	assert.Equal(t, int64(len(distinct)), runs.Load(), "handler runs must equal distinct keys")
	assert.LessOrEqual(t, gets, requests, "Redis GETs")
	t.Logf("requests=%d workers=%d distinct=%d handler runs=%d redis GETs=%d", requests, workers, len(distinct), runs.Load(), gets)
}

// logSnapshot logs the counters that explain a duplicate run: misses, passes by reason, store errors,
// breaker trips.
func logSnapshot(t *testing.T, c *stampede.Cache) {
	t.Helper()
	s := c.Snapshot()
	passes := map[string]uint64{}
	for k, v := range s.PassReasons {
		if v > 0 {
			passes[k] = v
		}
	}
	t.Logf("cache: misses %d, coalesced %d, hits %d, passes %v, store get/set errors %d/%d, breaker trips %d",
		s.Misses, s.Coalesced, s.Hits, passes, s.StoreGetErrors, s.StoreSetErrors, s.BreakerTrips)
}
