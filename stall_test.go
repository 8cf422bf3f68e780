package stampede_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// stallingStore is the real memory store with one fault injected: the first Get whose key matches
// returns what the store held at that moment, but only after the test lets it go. It reproduces a slow
// store (Redis) whose answer is stale by the time it arrives.
type stallingStore struct {
	*memstore.Store
	stalled chan struct{} // closed when the stalled Get has read the store
	release chan struct{} // the stalled Get returns once this is closed
	armed   chan struct{} // holds one token: the next Get stalls
}

func (s *stallingStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, ok, err := s.Store.Get(ctx, key)
	select {
	case <-s.armed:
		close(s.stalled)
		<-s.release
	default:
	}
	return b, ok, err
}

// TestStaleLookupDoesNotReload: a request whose store look-up missed, but answered only after another
// run stored the response and finished, must not run the handler again (docs/behaviour.md §5.2).
func TestStaleLookupDoesNotReload(t *testing.T) {
	t.Parallel()
	store := &stallingStore{Store: newMem(t), stalled: make(chan struct{}), release: make(chan struct{}),
		armed: make(chan struct{}, 1)}
	c := stampede.New(nil, store, time.Minute)
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, _ int64) { _, _ = w.Write([]byte("once")) }}
	h := c.Handler(o)

	store.armed <- struct{}{}
	slow := make(chan *httptest.ResponseRecorder, 1)
	go func() { slow <- serveDirect(h, httptest.NewRequest("GET", "/k", nil)) }()
	<-store.stalled // the slow request has seen an empty store

	first := serveDirect(h, httptest.NewRequest("GET", "/k", nil)) // leads a run, stores, finishes
	c.Wait()
	assert.Equal(t, "MISS", first.Header().Get("X-Cache"))

	close(store.release) // the slow request now learns "miss", which is no longer true
	got := <-slow
	assert.Equal(t, "once", got.Body.String())
	assert.Equal(t, "HIT", got.Header().Get("X-Cache"))
	assert.EqualValues(t, 1, o.runs.Load(), "the handler must not run twice")
}

// victimStore is the real memory store with one fault injected: the first stalls Gets of key victim
// read the store, then wait until the test lets them go, like a slow Redis under load.
type victimStore struct {
	*memstore.Store
	victim  string
	stalls  atomic.Int32
	stalled chan struct{} // receives once per stalled Get, after it read the store
	release chan struct{} // each stalled Get returns after one receive
}

func (s *victimStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, ok, err := s.Store.Get(ctx, key)
	if key == s.victim && s.stalls.Add(-1) >= 0 {
		s.stalled <- struct{}{}
		<-s.release
	}
	return b, ok, err
}

// TestSlowLookupsAmidManyRunsStillLead: a request whose store look-ups are slow while many runs for
// other keys finish (a loaded machine with a slow store) must still lead the run for its key, which is
// stored and coalesced (docs/behaviour.md §5.1, §5.2), not pass through to the handler unstored. No run for its key
// ever happened, so nothing it looked up can have gone stale.
//
// Each of its first four look-ups spans 20,000 finished runs, more than the 256 per shard the coalescer
// remembers (coalescer.go, recentLen): it cannot tell whether its key was among them, so it looks again
// (retryUnknown), and after maxUnknownRetries (handler.go) it leads without an epoch. It used to count
// these toward maxAttempts and pass through with a BYPASS for "contention".
func TestSlowLookupsAmidManyRunsStillLead(t *testing.T) {
	t.Parallel()
	store := &victimStore{Store: newMem(t), stalled: make(chan struct{}), release: make(chan struct{})}
	store.stalls.Store(4)
	c := stampede.New(nil, store, time.Minute)
	var victimRuns atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/victim" {
			victimRuns.Add(1)
		} else {
			w.Header().Set("Cache-Control", "no-store") // the other runs only need to finish
		}
		_, _ = w.Write([]byte("page " + r.URL.Path))
	}))
	store.victim = stampede.StoreKey(c, httptest.NewRequest("GET", "/victim", nil))

	got := make(chan *httptest.ResponseRecorder, 1)
	go func() { got <- serveDirect(h, httptest.NewRequest("GET", "/victim", nil)) }()
	var rec *httptest.ResponseRecorder
	for lookups := 0; rec == nil; {
		select {
		case <-store.stalled:
			lookups++
			var wg sync.WaitGroup // runs for other keys finish while the look-up waits
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < 20_000; i += 4 {
						serveDirect(h, httptest.NewRequest("GET", fmt.Sprintf("/other/%d/%d", lookups, i), nil))
					}
				})
			}
			wg.Wait()
			c.Wait()
			store.release <- struct{}{}
		case rec = <-got:
			t.Logf("after %d slow look-ups: X-Cache %s, Cache-Status %q", lookups, rec.Header().Get("X-Cache"),
				rec.Header().Get("Cache-Status"))
		case <-time.After(patience):
			t.Fatal("the request for /victim hangs")
		}
	}
	c.Wait()
	assert.Equal(t, "page /victim", rec.Body.String())
	assert.Equal(t, "MISS", rec.Header().Get("X-Cache"), "the request leads its key's run")
	later := serveDirect(h, httptest.NewRequest("GET", "/victim", nil))
	assert.Equal(t, "HIT", later.Header().Get("X-Cache"), "the run was stored")
	assert.EqualValues(t, 1, victimRuns.Load(), "handler runs for /victim")
}

// failOnceStore is the real memory store whose Gets all fail, as a paused Redis node's time out; the
// first runs during (before it fails) what the test gives, such as an invalidation of the key read.
type failOnceStore struct {
	*memstore.Store
	gets   atomic.Int32
	during func()
}

func (s *failOnceStore) Get(context.Context, string) ([]byte, bool, error) {
	if s.gets.Add(1) == 1 && s.during != nil {
		s.during()
	}
	return nil, false, errStoreDown
}

// TestFailedLookupIsTheLastStoreCall: a request whose look-up failed makes no further store call
// before its handler, even when what happened during the look-up (an invalidation of its key, a run
// that ended) would send it to look again: a sick store costs a request one store timeout at most
// (docs/behaviour.md §7.1). It used to look again up to eight times, each a timeout of its own.
func TestFailedLookupIsTheLastStoreCall(t *testing.T) {
	t.Parallel()
	t.Run("middleware", func(t *testing.T) {
		t.Parallel()
		store := &failOnceStore{Store: newMem(t)}
		c := stampede.New(nil, store, time.Minute, stampede.WithCircuitBreaker(1000, time.Second))
		var runs atomic.Int64
		h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			runs.Add(1)
			_, _ = w.Write([]byte("page"))
		}))
		store.during = func() { assert.NoError(t, c.Purge(context.Background(), httptest.NewRequest("GET", "/k", nil))) }
		got := serveDirect(h, httptest.NewRequest("GET", "/k", nil))
		assert.Equal(t, "page", got.Body.String())
		assert.EqualValues(t, 1, store.gets.Load(), "store look-ups of the request")
		assert.EqualValues(t, 1, runs.Load())
	})
	t.Run("loader", func(t *testing.T) {
		t.Parallel()
		store := &failOnceStore{Store: newMem(t)}
		var loads atomic.Int64
		l := stampede.NewLoader("k", func(context.Context, string) (string, error) {
			loads.Add(1)
			return "value", nil
		}, stampede.WithStore(store), stampede.WithCircuitBreaker(1000, time.Second))
		t.Cleanup(l.Close)
		store.during = func() { assert.NoError(t, l.Invalidate(context.Background(), "k")) }
		v, err := l.Get(context.Background(), "k")
		assert.NoError(t, err)
		assert.Equal(t, "value", v)
		assert.EqualValues(t, 1, store.gets.Load(), "store reads of the call")
		assert.EqualValues(t, 1, loads.Load())
	})
}
