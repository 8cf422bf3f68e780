package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// newValues returns a real in-process value store.
func newValues(t testing.TB) *memstore.Values[any] {
	t.Helper()
	v, err := memstore.NewValues[any](1 << 20)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	return v
}

// countingStore is a real store that counts the calls made to it.
type countingStore struct {
	stampede.Store
	gets, batchGets, sets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

func (c *countingStore) SetEx(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	c.sets.Add(1)
	return c.Store.SetEx(ctx, key, v, ttl)
}

// BatchGet reads keys one by one from the wrapped store, as one call.
func (c *countingStore) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	c.batchGets.Add(1)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i], _, _ = c.Store.Get(ctx, k)
	}
	return out, nil
}

// TestLoaderOneLoadForConcurrentGets: 10,000 concurrent Gets of one cold key run its load once, and every
// caller gets its value (docs/behaviour.md §8.1).
func TestLoaderOneLoadForConcurrentGets(t *testing.T) {
	const n = 10_000
	var loads atomic.Int64
	gate := make(chan struct{})
	l := stampede.NewLoader("one", func(_ context.Context, k string) (string, error) {
		loads.Add(1)
		<-gate
		return "value of " + k, nil
	}, stampede.WithStore(newMem(t)))
	defer l.Close()
	joins := newJoinCounter(n - 1)
	stampede.SetLoaderJoinHook(l, joins.hook)

	var wg sync.WaitGroup
	var wrong atomic.Int64
	for range n {
		wg.Go(func() {
			if v, err := l.Get(context.Background(), "k"); err != nil || v != "value of k" {
				wrong.Add(1)
			}
		})
	}
	<-joins.reached // every other caller waits on the one load
	close(gate)
	wg.Wait()
	l.Wait()
	assert.Zero(t, wrong.Load())
	assert.Equal(t, int64(1), loads.Load(), "loads")
	s := l.Snapshot()
	assert.Equal(t, "loader", s.Kind)
	assert.Equal(t, uint64(n), s.Requests)
	assert.Equal(t, uint64(1), s.Misses)
	assert.Equal(t, uint64(n-1), s.Coalesced)
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "value of k", v)
	assert.Equal(t, int64(1), loads.Load(), "a later Get is a hit")
}

// TestLoaderZeroDuplicateLoads: cacheme's trace (200,000 Gets over Zipf keys, s=1.001, v=10,
// imax=200,000, seed 42, 10,000 workers): loads == distinct keys, with the memory store and with Redis
// (docs/behaviour.md §8.2).
func TestLoaderZeroDuplicateLoads(t *testing.T) {
	requests, workers := 200_000, 10_000
	if testing.Short() {
		requests, workers = 20_000, 1_000
	}
	trace := zipfTrace(requests, 42)
	distinct := map[string]bool{}
	for _, p := range trace {
		distinct[p] = true
	}
	srv := redistest.Start(t)
	stores := []struct {
		name    string
		workers int
		opts    func(t *testing.T) []stampede.LoaderOption
	}{
		{"memory", workers, func(t *testing.T) []stampede.LoaderOption {
			return []stampede.LoaderOption{stampede.WithStore(newMem(t))}
		}},
		{"values", valuesWorkers(workers), func(t *testing.T) []stampede.LoaderOption {
			return []stampede.LoaderOption{stampede.WithValues(newValues(t))}
		}},
		{"redis", min(workers, redisWorkers()), func(t *testing.T) []stampede.LoaderOption {
			// A healthy store, as in TestRedisZeroDuplicateLoads: timeouts a loaded machine cannot reach.
			client := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, PoolSize: 512,
				PoolTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
			t.Cleanup(func() { _ = client.Close() })
			return []stampede.LoaderOption{
				stampede.WithStore(closing(t, redisstore.New(client, redisstore.WithTimeout(30*time.Second), redisstore.WithKeyPrefix("zipf:")))),
				stampede.WithStoreTimeout(30 * time.Second),
			}
		}},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			var mu sync.Mutex
			loads := map[string]int{}
			var total atomic.Int64
			l := stampede.NewLoader("zipf", func(_ context.Context, k string) (string, error) {
				time.Sleep(time.Millisecond) // the query's work, not synchronisation
				mu.Lock()
				loads[k]++
				mu.Unlock()
				total.Add(1)
				return "item " + k, nil
			}, append(st.opts(t), stampede.WithTTL(time.Hour),
				// Under load a 1 ms load can take minutes to be scheduled: past the default 30 s compute
				// timeout its callers are released with ErrComputeTimeout, correctly, which is not what
				// this test is about.
				stampede.WithComputeTimeout(time.Hour))...)
			defer l.Close()
			var next, wrong atomic.Int64
			var wg sync.WaitGroup
			for range st.workers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(len(trace)) {
							return
						}
						if v, err := l.Get(context.Background(), trace[i]); err != nil || v != "item "+trace[i] {
							if wrong.Add(1) <= 3 {
								t.Logf("Get(%q) = %q, %v", trace[i], v, err)
							}
						}
					}
				})
			}
			wg.Wait()
			l.Wait()
			require.Zero(t, wrong.Load(), "wrong values")
			assert.Equal(t, int64(len(distinct)), total.Load(), "loads must equal distinct keys")
			for k, n := range loads {
				if n != 1 {
					t.Errorf("%s loaded %d times", k, n)
				}
			}
			t.Logf("%s: gets=%d workers=%d distinct=%d loads=%d", st.name, requests, st.workers, len(distinct), total.Load())
		})
	}
}

// valuesWorkers is how many workers the in-process values trace runs with: the protocol is the memory
// store's, so under -race (where the suite's packages run side by side and time-sensitive fleet tests
// share the two cores) a lighter run is enough; the full one runs without -race.
func valuesWorkers(workers int) int {
	if raceEnabled {
		return min(workers, 1_000)
	}
	return workers
}

// redisWorkers is how many workers the Redis trace runs with: under -race go-redis is about ten times
// slower (see TestRedisZeroDuplicateLoads).
func redisWorkers() int {
	if raceEnabled {
		return 2_000
	}
	return 10_000
}

// batchRecorder is a batch load function that records the keys of each call, holding calls at a gate.
type batchRecorder struct {
	mu      sync.Mutex
	calls   [][]int
	perKey  map[int]int
	entered chan struct{} // when non-nil, each call sends on it first
	gate    chan struct{} // when non-nil, each call waits for it
}

func (b *batchRecorder) load(_ context.Context, keys []int) (map[int]string, error) {
	b.mu.Lock()
	b.calls = append(b.calls, slices.Sorted(slices.Values(keys)))
	if b.perKey == nil {
		b.perKey = map[int]int{}
	}
	for _, k := range keys {
		b.perKey[k]++
	}
	b.mu.Unlock()
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	if b.gate != nil {
		<-b.gate
	}
	out := make(map[int]string, len(keys))
	for _, k := range keys {
		out[k] = fmt.Sprint("v", k)
	}
	return out, nil
}

func keyRange(from, to int) []int {
	var ks []int
	for k := from; k <= to; k++ {
		ks = append(ks, k)
	}
	return ks
}

func oneLoad(ctx context.Context, k int) (string, error) { return fmt.Sprint("v", k), nil }

// TestLoaderGetManyBatches: GetMany of 100 keys with 40 in the store makes one store read and one batch
// load of the other 60 (docs/behaviour.md §8.5), with the memory store and with Redis (one MGET).
func TestLoaderGetManyBatches(t *testing.T) {
	srv := redistest.Start(t)
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			var store stampede.Store
			var reads func() int
			switch name {
			case "memory":
				cs := &countingStore{Store: newMem(t)}
				store, reads = cs, func() int { return int(cs.gets.Load() + cs.batchGets.Load()) }
			case "redis":
				store = closing(t, redisstore.New(redisClient(t, srv.Addr(), 8), redisstore.WithTimeout(2*time.Second),
					redisstore.WithKeyPrefix("many:")))
				reads = func() int { return srv.CommandCalls(t, "mget") + srv.CommandCalls(t, "get") }
			}
			b := &batchRecorder{}
			l := stampede.NewLoader("many", oneLoad, stampede.WithStore(store), stampede.WithBatchLoad(b.load))
			defer l.Close()
			ctx := context.Background()
			for _, k := range keyRange(1, 40) {
				require.NoError(t, l.Set(ctx, k, fmt.Sprint("v", k)))
			}
			before := reads()
			got, err := l.GetMany(ctx, keyRange(1, 100))
			require.NoError(t, err)
			assert.Equal(t, 1, reads()-before, "store round trips")
			require.Len(t, got, 100)
			for k := 1; k <= 100; k++ {
				assert.Equal(t, fmt.Sprint("v", k), got[k])
			}
			require.Len(t, b.calls, 1, "batch loads")
			assert.Equal(t, keyRange(41, 100), b.calls[0])
			l.Wait()
			s := l.Snapshot()
			assert.Equal(t, uint64(100), s.Requests)
			assert.Equal(t, uint64(40), s.Hits)
			assert.Equal(t, uint64(60), s.Misses)
			assert.Equal(t, uint64(1), s.BatchLoads)
			// Now every key is stored: one more read, no load.
			got, err = l.GetMany(ctx, keyRange(1, 100))
			require.NoError(t, err)
			assert.Len(t, got, 100)
			assert.Len(t, b.calls, 1)
		})
	}
}

// TestLoaderOverlappingGetMany: two concurrent GetMany calls over overlapping cold keys (1-60 and 40-100)
// load each key once: the second takes 40-60 from the first's batch (docs/behaviour.md §8.5).
func TestLoaderOverlappingGetMany(t *testing.T) {
	b := &batchRecorder{entered: make(chan struct{}, 2), gate: make(chan struct{})}
	l := stampede.NewLoader("overlap", oneLoad, stampede.WithStore(newMem(t)), stampede.WithBatchLoad(b.load))
	defer l.Close()
	joins := newJoinCounter(1) // the second call waits on the first's batch (for key 40, then 41-60)
	stampede.SetLoaderJoinHook(l, joins.hook)
	ctx := context.Background()
	type result struct {
		m   map[int]string
		err error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() { m, err := l.GetMany(ctx, keyRange(1, 60)); first <- result{m, err} }()
	<-b.entered // the first batch (1-60) is loading
	go func() { m, err := l.GetMany(ctx, keyRange(40, 100)); second <- result{m, err} }()
	<-b.entered // the second batch (61-100) is loading
	<-joins.reached
	close(b.gate)
	r1, r2 := <-first, <-second
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	assert.Len(t, r1.m, 60)
	assert.Len(t, r2.m, 61)
	for k, v := range r2.m {
		assert.Equal(t, fmt.Sprint("v", k), v)
	}
	require.Len(t, b.calls, 2)
	assert.Equal(t, keyRange(1, 60), b.calls[0])
	assert.Equal(t, keyRange(61, 100), b.calls[1])
	for k := 1; k <= 100; k++ {
		assert.Equal(t, 1, b.perKey[k], "key %d loads", k)
	}
}

// TestLoaderInvalidateAcrossReplicas: two replicas, each with a tier of Go values in front of the same
// Redis. Invalidate on A drops the key from B's tier (and from Redis): B's next Get loads it again
// (docs/behaviour.md §8.6).
func TestLoaderInvalidateAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	var version atomic.Int64
	version.Store(1)
	var loadsB atomic.Int64
	replica := func(loads *atomic.Int64) *stampede.Loader[string, string] {
		store := closing(t, redisstore.New(redisClient(t, srv.Addr(), 4), redisstore.WithTimeout(2*time.Second)))
		t.Cleanup(func() { _ = store.Close() })
		return stampede.NewLoader("users", func(_ context.Context, k string) (string, error) {
			if loads != nil {
				loads.Add(1)
			}
			return fmt.Sprintf("%s v%d", k, version.Load()), nil
		}, stampede.WithStore(store), stampede.WithValues(newValues(t)), stampede.WithLocalTTL(time.Hour),
			stampede.WithTTL(time.Hour))
	}
	a, b := replica(nil), replica(&loadsB)
	defer a.Close()
	defer b.Close()
	dropped := make(chan string, 4)
	stampede.SetLoaderDropHook(b, func(key string) { dropped <- key })
	ctx := context.Background()

	v, err := a.Get(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, "alice v1", v)
	a.Wait()
	v, err = b.Get(ctx, "alice") // from Redis, now in B's tier
	require.NoError(t, err)
	assert.Equal(t, "alice v1", v)
	assert.Zero(t, loadsB.Load())

	version.Store(2)
	require.NoError(t, a.Invalidate(ctx, "alice"))
	assert.Equal(t, stampede.LoaderKey(b, "alice"), <-dropped, "B's tier dropped the key")
	v, err = b.Get(ctx, "alice")
	require.NoError(t, err)
	assert.Equal(t, "alice v2", v)
	assert.Equal(t, int64(1), loadsB.Load(), "B loaded it again")
}

// TestLoaderPanickingLoad: the call that started a load that panics panics with the same value; the
// callers waiting on it get a *PanicError; nothing is stored, and the next Get loads again
// (docs/behaviour.md §8.4).
func TestLoaderPanickingLoad(t *testing.T) {
	var loads atomic.Int64
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	l := stampede.NewLoader("panics", func(_ context.Context, k string) (string, error) {
		if loads.Add(1) == 1 {
			entered <- struct{}{}
			<-gate
			panic("boom")
		}
		return "fine", nil
	}, stampede.WithStore(newMem(t)))
	defer l.Close()
	joins := newJoinCounter(3)
	stampede.SetLoaderJoinHook(l, joins.hook)

	leader := make(chan any, 1)
	go func() {
		defer func() { leader <- recover() }()
		_, _ = l.Get(context.Background(), "k")
	}()
	<-entered
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := l.Get(context.Background(), "k")
			errs <- err
		}()
	}
	<-joins.reached
	close(gate)
	assert.Equal(t, "boom", <-leader, "the leading call re-raises the panic")
	for range 3 {
		var pe *stampede.PanicError
		err := <-errs
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "boom", pe.Value)
		assert.NotEmpty(t, pe.Stack)
	}
	l.Wait()
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "fine", v)
	assert.Equal(t, int64(2), loads.Load())
	s := l.Snapshot()
	assert.Equal(t, uint64(1), s.Panics)
	assert.Equal(t, uint64(3), s.Failed)
}

// TestLoaderGoexit: a load that calls runtime.Goexit ends the leading call's goroutine the same way;
// its waiters look again and load themselves.
func TestLoaderGoexit(t *testing.T) {
	var loads atomic.Int64
	l := stampede.NewLoader("goexit", func(_ context.Context, k string) (string, error) {
		if loads.Add(1) == 1 {
			runtime.Goexit()
		}
		return "after", nil
	})
	defer l.Close()
	done := make(chan struct{})
	returned := false
	go func() {
		defer close(done)
		_, _ = l.Get(context.Background(), "k")
		returned = true
	}()
	<-done
	assert.False(t, returned, "the leading call's goroutine exited")
	v, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "after", v)
}

// TestLoaderWaiterCancellation: callers whose context ends stop waiting at once, the leader included;
// the load goes on, detached from them, and its value is stored (docs/behaviour.md §8.3).
func TestLoaderWaiterCancellation(t *testing.T) {
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	var sawCancel atomic.Bool
	l := stampede.NewLoader("cancel", func(ctx context.Context, k string) (string, error) {
		entered <- struct{}{}
		<-gate
		sawCancel.Store(ctx.Err() != nil)
		return "loaded", nil
	}, stampede.WithStore(newMem(t)))
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := l.Get(ctx, "k"); errs <- err }()
	<-entered
	joins := newJoinCounter(1)
	stampede.SetLoaderJoinHook(l, joins.hook)
	go func() { _, err := l.Get(ctx, "k"); errs <- err }()
	<-joins.reached
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	require.ErrorIs(t, <-errs, context.Canceled)
	close(gate)
	l.Wait()
	assert.False(t, sawCancel.Load(), "the load's context is detached from its callers'")
	v, ok := l.Peek(context.Background(), "k")
	assert.True(t, ok)
	assert.Equal(t, "loaded", v)
	s := l.Snapshot()
	assert.Equal(t, uint64(1), s.Misses, "the leading call, counted as the miss it was")
	assert.Equal(t, uint64(1), s.Abandoned, "the waiter")
}

// TestLoaderErrorTTL: a not-found kept by WithErrorTTL is answered without loading, as a *CachedError
// that is ErrNotFound; other errors are not kept (docs/behaviour.md §8.7).
func TestLoaderErrorTTL(t *testing.T) {
	for _, name := range []string{"bytes", "values"} {
		t.Run(name, func(t *testing.T) {
			var loads atomic.Int64
			boom := errors.New("database down")
			opt := stampede.WithStore(newMem(t))
			if name == "values" {
				opt = stampede.WithValues(newValues(t))
			}
			l := stampede.NewLoader("errs", func(_ context.Context, k string) (string, error) {
				loads.Add(1)
				if k == "down" {
					return "", boom
				}
				return "", fmt.Errorf("user %s: %w", k, stampede.ErrNotFound)
			}, opt, stampede.WithErrorTTL(func(err error) time.Duration {
				if errors.Is(err, stampede.ErrNotFound) {
					return time.Minute
				}
				return 0
			}))
			defer l.Close()
			ctx := context.Background()
			_, err := l.Get(ctx, "ghost")
			require.ErrorIs(t, err, stampede.ErrNotFound)
			l.Wait()
			_, err = l.Get(ctx, "ghost")
			var ce *stampede.CachedError
			require.ErrorAs(t, err, &ce)
			assert.ErrorIs(t, err, stampede.ErrNotFound)
			assert.Equal(t, "user ghost: stampede: not found", err.Error())
			assert.Equal(t, int64(1), loads.Load())

			for range 2 {
				_, err = l.Get(ctx, "down")
				require.ErrorIs(t, err, boom)
				l.Wait()
			}
			assert.Equal(t, int64(3), loads.Load(), "other failures are not kept")
			got, err := l.GetMany(ctx, []string{"ghost"})
			require.NoError(t, err, "a missing record is no error to GetMany")
			assert.Empty(t, got)
			assert.Equal(t, uint64(2), l.Snapshot().CachedErrors)
		})
	}
}

// TestLoaderStaleWhileRevalidate: a value past its TTL but within the stale window is served at once
// while one background load refreshes it (docs/behaviour.md §8.8).
func TestLoaderStaleWhileRevalidate(t *testing.T) {
	clock := newFakeClock()
	var version atomic.Int64
	l := stampede.NewLoader("swr", func(_ context.Context, k string) (string, error) {
		return fmt.Sprint("v", version.Add(1)), nil
	}, stampede.WithStore(newMem(t)), stampede.WithTTL(time.Minute),
		stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithClock(clock.Now))
	defer l.Close()
	ctx := context.Background()
	v, _ := l.Get(ctx, "k")
	assert.Equal(t, "v1", v)
	l.Wait()
	clock.Advance(90 * time.Second)
	v, _ = l.Get(ctx, "k")
	assert.Equal(t, "v1", v, "stale, served at once")
	l.Wait()
	v, _ = l.Get(ctx, "k")
	assert.Equal(t, "v2", v, "refreshed in the background")
	s := l.Snapshot()
	assert.Equal(t, uint64(1), s.StaleHits)
	assert.Equal(t, uint64(1), s.Refreshes)
	clock.Advance(3 * time.Minute) // past the stale window: a miss
	v, _ = l.Get(ctx, "k")
	assert.Equal(t, "v3", v)
}

// TestLoaderRefreshBuffering: background refreshes of stale keys are loaded together, by the batch load
// function, once the buffer holds its size.
func TestLoaderRefreshBuffering(t *testing.T) {
	clock := newFakeClock()
	b := &batchRecorder{}
	l := stampede.NewLoader("buffered", oneLoad, stampede.WithStore(newMem(t)), stampede.WithBatchLoad(b.load),
		stampede.WithRefreshBuffering(3, time.Hour), stampede.WithStaleWhileRevalidate(time.Hour),
		stampede.WithClock(clock.Now))
	defer l.Close()
	ctx := context.Background()
	_, err := l.GetMany(ctx, []int{1, 2, 3})
	require.NoError(t, err)
	l.Wait()
	clock.Advance(2 * time.Minute)
	for _, k := range []int{1, 2, 3} {
		_, err := l.Get(ctx, k) // stale: served, refresh queued
		require.NoError(t, err)
	}
	l.Wait()
	require.Len(t, b.calls, 2)
	assert.Equal(t, []int{1, 2, 3}, b.calls[1], "the three refreshes in one batch")
	assert.Equal(t, uint64(2), l.Snapshot().BatchLoads)
}

// TestLoaderValueDoesNotDecode: a stored value that does not decode is a miss: loaded again, logged once,
// never an error to the caller (docs/behaviour.md §8.9).
func TestLoaderValueDoesNotDecode(t *testing.T) {
	type user struct{ Name string }
	var logs logBuffer
	store := newMem(t)
	var loads atomic.Int64
	l := stampede.NewLoader("decode", func(_ context.Context, k int) (user, error) {
		loads.Add(1)
		return user{Name: fmt.Sprint("user ", k)}, nil
	}, stampede.WithStore(store), stampede.WithLogger(newLogger(&logs)))
	defer l.Close()
	ctx := context.Background()
	// Another program's bytes, and an entry whose value is not JSON for a user.
	require.NoError(t, store.SetEx(ctx, stampede.LoaderKey(l, 1), []byte("not an entry"), time.Minute))
	other := stampede.NewLoader("decode", func(_ context.Context, k int) (string, error) { return "<>", nil },
		stampede.WithStore(store), stampede.WithCodec(rawCodec{}))
	_, _ = other.Get(ctx, 2)
	other.Wait()
	for _, k := range []int{1, 2} {
		u, err := l.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprint("user ", k), u.Name)
	}
	l.Wait()
	assert.Equal(t, int64(2), loads.Load())
	assert.Equal(t, uint64(2), l.Snapshot().DecodeErrors)
	assert.Equal(t, 1, strings.Count(logs.String(), "does not decode"), "logged once")
	u, err := l.Get(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "user 1", u.Name, "replaced by the load")
	assert.Equal(t, int64(2), loads.Load())
}

// rawCodec stores strings as they are: not JSON.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return []byte(v.(string)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*v.(*string) = string(b)
	return nil
}

// TestLoaderFleetCoalescing: two replicas sharing a Redis with fleet coalescing load a key once between
// them: the second waits on the first's lease and takes the stored value (docs/behaviour.md §8.2).
func TestLoaderFleetCoalescing(t *testing.T) {
	srv := redistest.Start(t)
	var loads atomic.Int64
	entered, gate := make(chan struct{}, 2), make(chan struct{})
	replica := func() *stampede.Loader[string, string] {
		store := closing(t, redisstore.New(redisClient(t, srv.Addr(), 4), redisstore.WithTimeout(2*time.Second)))
		t.Cleanup(func() { _ = store.Close() })
		return stampede.NewLoader("fleet", func(_ context.Context, k string) (string, error) {
			loads.Add(1)
			entered <- struct{}{}
			<-gate
			return "value of " + k, nil
		}, stampede.WithStore(store), stampede.WithFleetCoalescing(10*time.Second))
	}
	a, b := replica(), replica()
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	ra, rb := make(chan string, 1), make(chan string, 1)
	go func() { v, _ := a.Get(ctx, "k"); ra <- v }()
	<-entered // A holds the lease and loads
	leases := srv.CommandCalls(t, "set")
	go func() { v, _ := b.Get(ctx, "k"); rb <- v }()
	for srv.CommandCalls(t, "set") == leases { // B has asked for the lease (SET NX), and lost it
		runtime.Gosched()
	}
	close(gate)
	assert.Equal(t, "value of k", <-ra)
	assert.Equal(t, "value of k", <-rb)
	assert.Equal(t, int64(1), loads.Load(), "one load in the fleet")
	b.Wait()
	assert.Equal(t, uint64(1), b.Snapshot().FleetServed)
}

// TestLoaderComputeTimeout, in a synctest bubble: a load that ignores its context past the compute
// timeout releases its callers with ErrComputeTimeout; a call after that starts a load of its own; the
// late value is still stored (docs/behaviour.md §8.3).
func TestLoaderComputeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store, err := memstore.New(1 << 20)
		require.NoError(t, err)
		defer store.Close()
		var loads atomic.Int64
		release := make(chan struct{})
		l := stampede.NewLoader("slow", func(ctx context.Context, k string) (string, error) {
			if loads.Add(1) == 1 {
				<-release // ignores ctx
				return "late", nil
			}
			return "second", nil
		}, stampede.WithStore(store), stampede.WithComputeTimeout(time.Second))
		start := time.Now()
		_, err = l.Get(context.Background(), "k")
		require.ErrorIs(t, err, stampede.ErrComputeTimeout)
		assert.Equal(t, time.Second, time.Since(start), "released at the compute timeout (fake time)")
		v, err := l.Get(context.Background(), "k")
		require.NoError(t, err)
		assert.Equal(t, "second", v)
		close(release)
		l.Close()
		assert.Equal(t, int64(2), loads.Load())
	})
}

// TestLoaderHitAllocatesNothing: a hit on Go values in memory costs no allocation, for string and
// integer keys alike.
func TestLoaderHitAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	byName := stampede.NewLoader("by-name", func(_ context.Context, k string) (string, error) { return "v", nil },
		stampede.WithValues(newValues(t)))
	defer byName.Close()
	byID := stampede.NewLoader("by-id", func(_ context.Context, k int64) (string, error) { return "v", nil },
		stampede.WithValues(newValues(t)))
	defer byID.Close()
	_, _ = byName.Get(ctx, "item:42")
	_, _ = byID.Get(ctx, 42)
	byName.Wait()
	byID.Wait()
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = byName.Get(ctx, "item:42") }), "string key")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = byID.Get(ctx, 42) }), "int64 key")
	assert.Equal(t, uint64(2002), byName.Snapshot().Hits+byID.Snapshot().Hits)
}

// TestLoaderOutcomesSumToCalls: a Loader counts every key asked for in exactly one outcome (its
// Requests is their sum), over a mix of hits, misses, coalesced and abandoned waiters, a GetMany whose
// context ends while it waits on two loads, a load that panics with waiters, and a stale hit.
func TestLoaderOutcomesSumToCalls(t *testing.T) {
	type phase struct{ entered, gate chan struct{} }
	var held atomic.Pointer[phase]
	clock := newFakeClock()
	l := stampede.NewLoader("outcomes", func(_ context.Context, k string) (string, error) {
		if strings.HasPrefix(k, "held") {
			p := held.Load()
			p.entered <- struct{}{}
			<-p.gate
			if k == "held-panic" {
				panic("boom")
			}
		}
		return "v:" + k, nil
	}, stampede.WithStore(newMem(t)), stampede.WithTTL(time.Minute),
		stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithClock(clock.Now))
	defer l.Close()
	ctx := context.Background()
	calls := 0 // keys asked for
	get := func(ctx context.Context, k string) error {
		_, err := l.Get(ctx, k)
		return err
	}

	calls += 2
	require.NoError(t, get(ctx, "a")) // miss
	l.Wait()
	require.NoError(t, get(ctx, "a")) // hit

	// Two loads held; three waiters on the first, one waiter and one GetMany of both whose context ends.
	p := &phase{entered: make(chan struct{}, 2), gate: make(chan struct{})}
	held.Store(p)
	var wg sync.WaitGroup
	calls += 2
	wg.Go(func() { assert.NoError(t, get(ctx, "held")) })
	wg.Go(func() { assert.NoError(t, get(ctx, "held2")) })
	<-p.entered
	<-p.entered
	joins := newJoinCounter(5)
	stampede.SetLoaderJoinHook(l, joins.hook)
	calls += 3
	for range 3 {
		wg.Go(func() { assert.NoError(t, get(ctx, "held")) })
	}
	leaving, leave := context.WithCancel(ctx)
	var left sync.WaitGroup
	calls += 1 + 2
	left.Go(func() { assert.ErrorIs(t, get(leaving, "held"), context.Canceled) })
	left.Go(func() {
		_, err := l.GetMany(leaving, []string{"held", "held2"})
		assert.ErrorIs(t, err, context.Canceled)
	})
	<-joins.reached // the GetMany waits on its first key
	leave()
	left.Wait()
	close(p.gate)
	wg.Wait()
	l.Wait()

	// A load that panics, with two waiters.
	p = &phase{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	held.Store(p)
	joins = newJoinCounter(2)
	stampede.SetLoaderJoinHook(l, joins.hook)
	calls += 3
	wg.Go(func() {
		defer func() { assert.Equal(t, "boom", recover()) }()
		_ = get(ctx, "held-panic")
	})
	<-p.entered
	for range 2 {
		wg.Go(func() {
			var pe *stampede.PanicError
			assert.ErrorAs(t, get(ctx, "held-panic"), &pe)
		})
	}
	<-joins.reached
	close(p.gate)
	wg.Wait()
	l.Wait()

	calls += 3
	m, err := l.GetMany(ctx, []string{"a", "b", "c"}) // a hit, two misses
	require.NoError(t, err)
	assert.Len(t, m, 3)
	l.Wait()

	clock.Advance(90 * time.Second)
	calls++
	require.NoError(t, get(ctx, "b")) // stale: served at once, refreshed in the background
	l.Wait()

	s := l.Snapshot()
	assert.EqualValues(t, calls, s.Requests, "every key asked for is counted: %+v", s)
	assert.Equal(t, s.Requests, s.Hits+s.StaleHits+s.Misses+s.Coalesced+s.Abandoned+s.Failed+s.Passes)
	assert.EqualValues(t, 2, s.Hits)
	assert.EqualValues(t, 1, s.StaleHits)
	assert.EqualValues(t, 6, s.Misses, "a, held, held2, held-panic, b, c")
	assert.EqualValues(t, 3, s.Coalesced)
	assert.EqualValues(t, 3, s.Abandoned, "the waiter and both keys of the GetMany")
	assert.EqualValues(t, 2, s.Failed)
}
