// Tests of observer.go: the events an Observer is told of, the debug lines of a request's and a run's
// end, Snapshot.InFlight and Snapshot.StoreTimes.
package stampede_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// eventLog is an Observer that keeps what it is told.
type eventLog struct {
	events chan stampede.RequestEvent // ObserveRequest sends here: a test receives each event it expects

	mu     sync.Mutex
	stores []stampede.StoreCall // guarded by mu
}

func newEventLog() *eventLog { return &eventLog{events: make(chan stampede.RequestEvent, 64)} }

func (l *eventLog) ObserveRequest(_ context.Context, ev stampede.RequestEvent) { l.events <- ev }

func (l *eventLog) ObserveStore(_ context.Context, call stampede.StoreCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stores = append(l.stores, call)
}

func (l *eventLog) storeCalls() []stampede.StoreCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]stampede.StoreCall(nil), l.stores...)
}

// TestObserverRequests: through a real server and chi, each request's end is reported with its
// outcome, reason, key digest, route, run and store calls; a cache in front of the router learns the
// route from the run it led, and a hit it serves before the router routed has what routing had found
// so far (a mount's pattern), or nothing.
func TestObserverRequests(t *testing.T) {
	t.Parallel()
	events := newEventLog()
	store := newMem(t)
	route := stampede.New(nil, store, time.Minute, stampede.WithName("route"), stampede.WithObserver(events))
	router := stampede.New(nil, store, time.Minute, stampede.WithName("router"), stampede.WithKeyPrefix("other"),
		stampede.WithObserver(events))
	top := stampede.New(nil, store, time.Minute, stampede.WithName("top"), stampede.WithKeyPrefix("top"),
		stampede.WithObserver(events))
	ok := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(chi.URLParam(r, "id"))) }
	mux := chi.NewRouter()
	mux.With(route.Handler).Get("/items/{id}", ok)
	mux.With(route.Handler).Post("/items/{id}", ok)
	mux.Route("/users", func(sub chi.Router) {
		sub.Use(router.Handler)
		sub.Get("/{id}", ok)
	})
	srv, client := newServer(t, mux, 1)
	topMux := chi.NewRouter()
	topMux.Use(top.Handler)
	topMux.Get("/x/{id}", ok)
	topSrv, topClient := newServer(t, topMux, 1)
	keys := map[string]string{}

	for _, tc := range []struct {
		name, method, path string
		cache              *stampede.Cache
		outcome, reason    string
		route              string
		led                bool
	}{
		{name: "miss", method: http.MethodGet, path: "/items/1", cache: route, outcome: "MISS", route: "/items/{id}", led: true},
		{name: "hit", method: http.MethodGet, path: "/items/1", cache: route, outcome: "HIT", route: "/items/{id}"},
		{name: "pass", method: http.MethodPost, path: "/items/1", cache: route, outcome: "BYPASS", reason: "method", route: "/items/{id}"},
		// chi's Route mounts a sub-router: the pattern is known once it routed, inside the run.
		{name: "router miss", method: http.MethodGet, path: "/users/7", cache: router, outcome: "MISS", route: "/users/{id}", led: true},
		{name: "router hit", method: http.MethodGet, path: "/users/7", cache: router, outcome: "HIT", route: "/users/*"},
		// In front of the whole router: a hit never reaches it.
		{name: "top miss", method: http.MethodGet, path: "/x/1", cache: top, outcome: "MISS", route: "/x/{id}", led: true},
		{name: "top hit", method: http.MethodGet, path: "/x/1", cache: top, outcome: "HIT", route: ""},
	} {
		base, cl := srv.URL, client
		if tc.cache == top {
			base, cl = topSrv.URL, topClient
		}
		req, err := http.NewRequest(tc.method, base+tc.path, nil)
		require.NoError(t, err)
		resp, err := cl.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		ev := <-events.events
		tc.cache.Wait()
		assert.Equal(t, tc.outcome, ev.Outcome, tc.name)
		assert.Equal(t, tc.reason, ev.Reason, tc.name)
		assert.Equal(t, tc.route, ev.Route, tc.name)
		assert.Equal(t, tc.cache.Snapshot().Name, ev.Cache, tc.name)
		assert.Equal(t, "http", ev.Kind, tc.name)
		assert.Equal(t, tc.method, ev.Method, tc.name)
		assert.Equal(t, tc.path, ev.Path, tc.name)
		assert.Positive(t, ev.Duration, tc.name)
		if tc.led {
			assert.Positive(t, ev.Run, tc.name)
			assert.Equal(t, http.StatusOK, ev.Status, tc.name)
		} else {
			assert.Zero(t, ev.Run, tc.name)
			assert.Zero(t, ev.Status, tc.name)
		}
		assert.Zero(t, ev.StoreErrors, tc.name)
		if tc.outcome == "BYPASS" {
			assert.Empty(t, ev.Key, tc.name)
			assert.Equal(t, 2, ev.StoreCalls, tc.name+": the POST invalidates the URL's entries (RFC 9111 §4.4)")
			continue
		}
		assert.Len(t, ev.Key, 32, tc.name)
		if k, ok := keys[tc.path]; ok {
			assert.Equal(t, k, ev.Key, tc.name)
		}
		keys[tc.path] = ev.Key
		assert.Equal(t, 1, ev.StoreCalls, tc.name+": one look-up")
	}
	ops := map[string]int{}
	for _, call := range events.storeCalls() {
		require.NoError(t, call.Err)
		ops[call.Op]++
	}
	assert.Equal(t, map[string]int{"get": 6, "set": 3, "delete": 2}, ops, "a look-up per GET, a write per miss")
}

// TestObserverStoreErrors: a store that fails is reported per call and counted in the request's event.
func TestObserverStoreErrors(t *testing.T) {
	t.Parallel()
	events := newEventLog()
	c := stampede.New(nil, failingStore{}, time.Minute, stampede.WithObserver(events))
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	serveDirect(h, httptest.NewRequest(http.MethodGet, "/", nil))
	ev := <-events.events
	c.Wait()
	assert.Equal(t, "MISS", ev.Outcome)
	assert.Equal(t, 1, ev.StoreErrors)
	assert.Equal(t, 1, ev.StoreCalls, "no further store call after a failed look-up")
	calls := events.storeCalls()
	require.NotEmpty(t, calls)
	assert.Equal(t, "get", calls[0].Op)
	assert.ErrorIs(t, calls[0].Err, errStoreDown)
}

// TestObserverLoads: a Loader reports each load, with its error.
func TestObserverLoads(t *testing.T) {
	t.Parallel()
	events := newEventLog()
	errNope := errors.New("nope")
	l := stampede.NewLoader("users", func(_ context.Context, k string) (string, error) {
		if k == "bad" {
			return "", errNope
		}
		return "v", nil
	}, stampede.WithObserver(events))
	defer l.Close()
	_, err := l.Get(context.Background(), "good")
	require.NoError(t, err)
	ev := <-events.events
	assert.Equal(t, "LOAD", ev.Outcome)
	assert.Equal(t, "users", ev.Cache)
	assert.Equal(t, "loader", ev.Kind)
	assert.Len(t, ev.Key, 32)
	assert.NoError(t, ev.Err)
	_, err = l.Get(context.Background(), "bad")
	require.ErrorIs(t, err, errNope)
	ev = <-events.events
	assert.ErrorIs(t, ev.Err, errNope)
	_, err = l.Get(context.Background(), "good")
	require.NoError(t, err)
	l.Wait()
	select {
	case ev := <-events.events:
		t.Fatalf("a hit is not a load: %+v", ev)
	default:
	}
}

// TestSnapshotInFlight: a run counts in InFlight from its start to its end.
func TestSnapshotInFlight(t *testing.T) {
	t.Parallel()
	o := &origin{gate: make(chan struct{}), entered: make(chan struct{}, 1),
		serve: func(w http.ResponseWriter, r *http.Request, _ int64) {}}
	c := stampede.New(nil, newMem(t), time.Minute)
	h := c.Handler(o)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveDirect(h, httptest.NewRequest(http.MethodGet, "/", nil))
	}()
	<-o.entered
	assert.Equal(t, int64(1), c.Snapshot().InFlight)
	close(o.gate)
	<-done
	c.Wait()
	assert.Zero(t, c.Snapshot().InFlight)
	assert.Nil(t, c.Snapshot().StoreTimes, "store calls are not timed by default")
}

// TestSnapshotStoreTimes: with WithStoreTimings, every store call is counted by operation.
func TestSnapshotStoreTimes(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute, stampede.WithStoreTimings(true))
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 3 {
		serveDirect(h, httptest.NewRequest(http.MethodGet, "/", nil))
		c.Wait()
	}
	times := c.Snapshot().StoreTimes
	require.NotNil(t, times)
	assert.EqualValues(t, 3, times["get"].Count)
	assert.EqualValues(t, 1, times["set"].Count)
	assert.Zero(t, times["lease"].Count)
	for op, h := range times {
		assert.Len(t, h.Counts, len(h.Bounds)+1, op)
	}
}

// nopObserver is an Observer that does nothing: what observing costs the cache itself.
type nopObserver struct{}

func (nopObserver) ObserveRequest(context.Context, stampede.RequestEvent) {}
func (nopObserver) ObserveStore(context.Context, stampede.StoreCall)      {}

// BenchmarkHitObserved: a 1 KiB memory hit unobserved, with store timings, and with an observer that
// does nothing, beside the bare handler.
func BenchmarkHitObserved(b *testing.B) {
	body := make([]byte, 1<<10)
	bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	for _, tc := range []struct {
		name string
		opts []stampede.Option
	}{
		{"bare", nil},
		{"unobserved", []stampede.Option{}},
		{"store-timings", []stampede.Option{stampede.WithStoreTimings(true)}},
		{"observer", []stampede.Option{stampede.WithObserver(nopObserver{})}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := http.Handler(bare)
			if tc.opts != nil {
				c := stampede.New(nil, newMem(b), time.Hour, tc.opts...)
				h = c.Handler(bare)
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/bench?id=42", nil))
				c.Wait()
			}
			b.ReportAllocs()
			req := httptest.NewRequest(http.MethodGet, "/bench?id=42", nil)
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
