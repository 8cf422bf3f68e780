package stampede_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// counts is every counter of a Snapshot, with the reason maps cut down to their non-zero entries, so one
// comparison checks that traffic moved exactly the counters it should and no other.
type counts struct {
	Requests, Hits, StaleHits, Misses, Coalesced, Abandoned, Passes uint64
	Runs, Failures, Panics                                          uint64
	StoreGetErrors, StoreSetErrors, BreakerTrips                    uint64
	BreakerOpen                                                     bool
	PassReasons, Unshareable                                        map[string]uint64
}

func countsOf(s stampede.Snapshot) counts {
	nonZero := func(m map[string]uint64) map[string]uint64 {
		out := map[string]uint64{}
		for k, v := range m {
			if v != 0 {
				out[k] = v
			}
		}
		return out
	}
	return counts{
		Requests: s.Requests, Hits: s.Hits, StaleHits: s.StaleHits, Misses: s.Misses, Coalesced: s.Coalesced,
		Abandoned: s.Abandoned, Passes: s.Passes, Runs: s.Runs, Failures: s.Failures, Panics: s.Panics,
		StoreGetErrors: s.StoreGetErrors, StoreSetErrors: s.StoreSetErrors, BreakerTrips: s.BreakerTrips,
		BreakerOpen: s.BreakerOpen, PassReasons: nonZero(s.PassReasons), Unshareable: nonZero(s.Unshareable),
	}
}

// reasonCounts builds a reason map from name, count pairs.
func reasonCounts(kv ...any) map[string]uint64 {
	m := map[string]uint64{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = uint64(kv[i+1].(int))
	}
	return m
}

// statsRig is one cache under test, its handler and what the handler does.
type statsRig struct {
	c     *stampede.Cache
	h     http.Handler
	serve http.HandlerFunc // what the origin does; swapped by scenarios
	gate  chan struct{}    // when non-nil, the first run waits for it to close
	first chan struct{}    // closed when the first run has started
	once  sync.Once
}

func newStatsRig(store stampede.Store, opts ...stampede.Option) *statsRig {
	rig := &statsRig{first: make(chan struct{})}
	rig.c = stampede.New(nil, store, time.Minute, opts...)
	rig.h = rig.c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		isFirst := false
		rig.once.Do(func() { isFirst = true; close(rig.first) })
		if isFirst && rig.gate != nil {
			<-rig.gate
		}
		rig.serve(w, r)
	}))
	rig.serve = func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }
	return rig
}

// do serves req and waits for its store write.
func (rig *statsRig) do(req *http.Request) *httptest.ResponseRecorder {
	rec := serveDirect(rig.h, req)
	rig.c.Wait()
	return rec
}

// coalesce runs leader, waits until its run has started, lets each waiter join it, then releases the
// run and waits for everyone. cancels end the contexts of the last len(cancels) waiters once all joined;
// those waiters must have left before the run is released.
func (rig *statsRig) coalesce(t *testing.T, leader *http.Request, waiters []*http.Request, cancels []context.CancelFunc) {
	t.Helper()
	rig.gate = make(chan struct{})
	joins := newJoinCounter(int64(len(waiters)))
	stampede.SetJoinHook(rig.c, joins.hook)
	var wg, cancelled sync.WaitGroup
	wg.Go(func() { serveDirect(rig.h, leader) })
	<-rig.first
	for i, w := range waiters {
		if i >= len(waiters)-len(cancels) { // the last len(cancels) waiters are the ones cancels end
			cancelled.Go(func() { serveDirect(rig.h, w) })
			continue
		}
		wg.Go(func() { serveDirect(rig.h, w) })
	}
	if len(waiters) > 0 {
		<-joins.reached
	}
	for _, cancel := range cancels {
		cancel()
	}
	// A cancelled waiter must have left before the run answers: with both ready, its select could
	// otherwise take the answer and count as coalesced.
	cancelled.Wait()
	close(rig.gate)
	wg.Wait()
	rig.c.Wait()
}

func newGet(target string) *http.Request { return httptest.NewRequest(http.MethodGet, target, nil) }

func newGetWith(target string, hdr ...string) *http.Request {
	r := newGet(target)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

// failingStore fails every call with errStoreDown; SetEx panics instead when panics is set.
type failingStore struct{ panics bool }

var errStoreDown = errors.New("store down")

func (failingStore) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errStoreDown
}
func (s failingStore) SetEx(context.Context, string, []byte, time.Duration) error {
	if s.panics {
		panic("store bug")
	}
	return errStoreDown
}
func (failingStore) Delete(context.Context, string) error { return errStoreDown }

// blockingStore's Get waits for the request to end and returns its context's error, as a client
// disconnecting during a slow store read looks.
type blockingStore struct{ *memstore.Store }

func (blockingStore) Get(ctx context.Context, _ string) ([]byte, bool, error) {
	<-ctx.Done()
	return nil, false, ctx.Err()
}

// racingStore runs, during each Get of a request marked with racingKey, a whole other request for the
// same key, so that every look-up of the marked request is overtaken by a run that finished unstored.
type racingStore struct {
	*memstore.Store
	h http.Handler
}

type racingKey struct{}

func (s *racingStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if ctx.Value(racingKey{}) != nil {
		serveDirect(s.h, newGet("/contended"))
	}
	return s.Store.Get(ctx, key)
}

// errBody is a request body that fails to read.
type errBody struct{}

func (errBody) Read([]byte) (int, error) { return 0, errors.New("read failed") }
func (errBody) Close() error             { return nil }

// TestStatsCounters drives traffic for each counter and checks every counter's exact value.
func TestStatsCounters(t *testing.T) {
	t.Parallel()
	private := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "private")
		_, _ = io.WriteString(w, "mine")
	}
	tests := []struct {
		name  string
		store func(t *testing.T) stampede.Store // nil: coalesce only
		opts  []stampede.Option
		run   func(t *testing.T, rig *statsRig)
		want  counts
	}{
		{
			name: "miss then hits",
			run: func(t *testing.T, rig *statsRig) {
				for _, want := range []string{"MISS", "HIT", "HIT"} {
					assert.Equal(t, want, rig.do(newGet("/a")).Header().Get("X-Cache"))
				}
			},
			want: counts{Requests: 3, Misses: 1, Runs: 1, Hits: 2},
		},
		{
			name: "HEAD hits the GET entry",
			run: func(t *testing.T, rig *statsRig) {
				rig.do(newGet("/a"))
				rig.do(httptest.NewRequest(http.MethodHead, "/a", nil))
			},
			want: counts{Requests: 2, Misses: 1, Runs: 1, Hits: 1},
		},
		{
			name: "method",
			run: func(t *testing.T, rig *statsRig) {
				rig.do(httptest.NewRequest(http.MethodPost, "/a", strings.NewReader("x")))
				rig.do(httptest.NewRequest(http.MethodDelete, "/a", nil))
			},
			want: counts{Requests: 2, Passes: 2, PassReasons: reasonCounts("method", 2)},
		},
		{
			name: "upgrade",
			run:  func(t *testing.T, rig *statsRig) { rig.do(newGetWith("/ws", "Upgrade", "websocket")) },
			want: counts{Requests: 1, Passes: 1, PassReasons: reasonCounts("upgrade", 1)},
		},
		{
			name: "request no-store",
			run:  func(t *testing.T, rig *statsRig) { rig.do(newGetWith("/a", "Cache-Control", "no-store")) },
			want: counts{Requests: 1, Passes: 1, PassReasons: reasonCounts("request-no-store", 1)},
		},
		{
			name: "key body too large",
			opts: []stampede.Option{stampede.WithMethods("POST"), stampede.WithKeyBodyLimit(4)},
			run: func(t *testing.T, rig *statsRig) {
				rig.do(httptest.NewRequest(http.MethodPost, "/a", strings.NewReader("0123456789")))
			},
			want: counts{Requests: 1, Passes: 1, PassReasons: reasonCounts("key-body-too-large", 1)},
		},
		{
			name: "key body error",
			opts: []stampede.Option{stampede.WithMethods("POST")},
			run: func(t *testing.T, rig *statsRig) {
				req := httptest.NewRequest(http.MethodPost, "/a", nil)
				req.Body = errBody{}
				rig.do(req)
			},
			want: counts{Requests: 1, Passes: 1, PassReasons: reasonCounts("key-body-error", 1)},
		},
		{
			name: "key error",
			opts: []stampede.Option{stampede.WithKeyFunc(func(*http.Request) (string, error) {
				return "", errors.New("no tenant")
			})},
			run:  func(t *testing.T, rig *statsRig) { rig.do(newGet("/a")) },
			want: counts{Requests: 1, Passes: 1, PassReasons: reasonCounts("key-error", 1)},
		},
		{
			name: "private, then hit-for-pass",
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = private
				assert.Equal(t, "MISS", rig.do(newGet("/a")).Header().Get("X-Cache"))
				assert.Equal(t, "BYPASS", rig.do(newGet("/a")).Header().Get("X-Cache"))
			},
			want: counts{Requests: 2, Misses: 1, Runs: 1, Unshareable: reasonCounts("private", 1), Passes: 1,
				PassReasons: reasonCounts("hit-for-pass", 1)},
		},
		{
			name: "unshareable responses by reason",
			opts: []stampede.Option{stampede.WithMaxBodyBytes(8)},
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = func(w http.ResponseWriter, r *http.Request) {
					switch r.URL.Path {
					case "/no-store":
						w.Header().Set("Cache-Control", "no-store")
					case "/set-cookie":
						w.Header().Set("Set-Cookie", "a=b")
					case "/vary-star":
						w.Header().Set("Vary", "*")
					case "/event-stream":
						w.Header().Set("Content-Type", "text/event-stream")
						_ = http.NewResponseController(w).Flush()
					case "/hijacked":
						_, _, _ = http.NewResponseController(w).Hijack() // the recorder cannot; it still counts
					case "/too-large":
						_, _ = io.WriteString(w, "more than eight bytes")
						return
					}
					_, _ = io.WriteString(w, "x")
				}
				for _, p := range []string{"/no-store", "/set-cookie", "/vary-star", "/event-stream", "/hijacked", "/too-large"} {
					rig.do(newGet(p))
				}
				rig.do(newGetWith("/auth", "Authorization", "Bearer t"))
			},
			want: counts{Requests: 7, Misses: 7, Runs: 7, Unshareable: reasonCounts("no-store", 1, "set-cookie", 1,
				"vary-star", 1, "event-stream", 1, "hijacked", 1, "too-large", 1, "authorization", 1)},
		},
		{
			name: "5xx is a failure and is not stored",
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }
				rig.do(newGet("/a"))
				rig.do(newGet("/a"))
				rig.serve = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }
				rig.do(newGet("/b"))
			},
			want: counts{Requests: 3, Misses: 3, Runs: 3, Failures: 2},
		},
		{
			name: "panic",
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = func(http.ResponseWriter, *http.Request) { panic("boom") }
				assert.PanicsWithValue(t, "boom", func() { rig.do(newGet("/a")) })
			},
			want: counts{Requests: 1, Misses: 1, Runs: 1, Failures: 1, Panics: 1},
		},
		{
			name: "goexit: the waiter runs the handler itself",
			run: func(t *testing.T, rig *statsRig) {
				var n atomic.Int64
				rig.serve = func(w http.ResponseWriter, _ *http.Request) {
					if n.Add(1) == 1 {
						runtime.Goexit()
					}
					_, _ = io.WriteString(w, "second")
				}
				rig.gate = make(chan struct{})
				joins := newJoinCounter(1)
				stampede.SetJoinHook(rig.c, joins.hook)
				done := make(chan struct{})
				go func() { defer close(done); serveDirect(rig.h, newGet("/a")) }()
				<-rig.first
				waiter := make(chan *httptest.ResponseRecorder)
				go func() { waiter <- serveDirect(rig.h, newGet("/a")) }()
				<-joins.reached
				close(rig.gate)
				<-done
				assert.Equal(t, "BYPASS", (<-waiter).Header().Get("X-Cache"))
				rig.c.Wait()
			},
			want: counts{Requests: 2, Misses: 1, Runs: 1, Failures: 1, Panics: 1, Passes: 1,
				PassReasons: reasonCounts("goexit", 1)},
		},
		{
			name: "coalesced waiters",
			run: func(t *testing.T, rig *statsRig) {
				rig.coalesce(t, newGet("/a"), []*http.Request{newGet("/a"), newGet("/a"), newGet("/a")}, nil)
				rig.do(newGet("/a"))
			},
			want: counts{Requests: 5, Misses: 1, Runs: 1, Coalesced: 3, Hits: 1},
		},
		{
			name:  "coalesce only",
			store: func(*testing.T) stampede.Store { return nil },
			run: func(t *testing.T, rig *statsRig) {
				rig.coalesce(t, newGet("/a"), []*http.Request{newGet("/a"), newGet("/a")}, nil)
				rig.do(newGet("/a"))
			},
			want: counts{Requests: 4, Misses: 2, Runs: 2, Coalesced: 2},
		},
		{
			name: "waiters of an unshareable run pass under its reason",
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = private
				rig.coalesce(t, newGet("/a"), []*http.Request{newGet("/a"), newGet("/a")}, nil)
			},
			want: counts{Requests: 3, Misses: 1, Runs: 1, Unshareable: reasonCounts("private", 1), Passes: 2,
				PassReasons: reasonCounts("private", 2)},
		},
		{
			name: "vary mismatch",
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Vary", "Accept-Language")
					_, _ = io.WriteString(w, r.Header.Get("Accept-Language"))
				}
				rig.coalesce(t, newGetWith("/a", "Accept-Language", "de"), []*http.Request{
					newGetWith("/a", "Accept-Language", "de"), newGetWith("/a", "Accept-Language", "fr"),
				}, nil)
			},
			want: counts{Requests: 3, Misses: 1, Runs: 1, Coalesced: 1, Passes: 1, PassReasons: reasonCounts("vary-mismatch", 1)},
		},
		{
			name: "abandoned waiter",
			run: func(t *testing.T, rig *statsRig) {
				ctx, cancel := context.WithCancel(t.Context())
				rig.coalesce(t, newGet("/a"), []*http.Request{newGet("/a"), newGet("/a").WithContext(ctx)},
					[]context.CancelFunc{cancel})
			},
			want: counts{Requests: 3, Misses: 1, Runs: 1, Coalesced: 1, Abandoned: 1},
		},
		{
			name: "contention",
			store: func(t *testing.T) stampede.Store {
				return &racingStore{Store: newMem(t)}
			},
			run: func(t *testing.T, rig *statsRig) {
				rig.serve = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }
				req := newGet("/contended")
				req = req.WithContext(context.WithValue(req.Context(), racingKey{}, true))
				assert.Equal(t, "BYPASS", rig.do(req).Header().Get("X-Cache"))
			},
			// The marked request looks in the store four times; each look is overtaken by a run.
			want: counts{Requests: 5, Misses: 4, Runs: 4, Failures: 4, Passes: 1, PassReasons: reasonCounts("contention", 1)},
		},
		{
			name:  "store errors trip the breaker",
			store: func(*testing.T) stampede.Store { return failingStore{} },
			// A clock that moves on by more than the breaker's minimum failing span at every reading.
			opts: []stampede.Option{stampede.WithCircuitBreaker(2, time.Hour), stampede.WithClock(steppingClock(time.Second))},
			run: func(t *testing.T, rig *statsRig) {
				rig.do(newGet("/a")) // a failed read, then a failed write: two failures open the breaker
				rig.do(newGet("/a")) // the store is skipped: no more errors
			},
			want: counts{Requests: 2, Misses: 2, Runs: 2, StoreGetErrors: 1, StoreSetErrors: 1, BreakerTrips: 1,
				BreakerOpen: true},
		},
		{
			name:  "store that panics on write",
			store: func(*testing.T) stampede.Store { return failingStore{panics: true} },
			opts:  []stampede.Option{stampede.WithCircuitBreaker(100, time.Hour)},
			run:   func(t *testing.T, rig *statsRig) { rig.do(newGet("/a")) },
			want:  counts{Requests: 1, Misses: 1, Runs: 1, StoreGetErrors: 1, StoreSetErrors: 1},
		},
		{
			name:  "a read cut short by the client is not a store error",
			store: func(t *testing.T) stampede.Store { return blockingStore{newMem(t)} },
			run: func(t *testing.T, rig *statsRig) {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				rig.do(newGet("/a").WithContext(ctx))
			},
			want: counts{Requests: 1, Misses: 1, Runs: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var store stampede.Store
			if tt.store != nil {
				store = tt.store(t)
			} else {
				store = newMem(t)
			}
			rig := newStatsRig(store, tt.opts...)
			if rs, ok := store.(*racingStore); ok {
				rs.h = rig.h
			}
			tt.run(t, rig)
			want := tt.want
			if want.PassReasons == nil {
				want.PassReasons = map[string]uint64{}
			}
			if want.Unshareable == nil {
				want.Unshareable = map[string]uint64{}
			}
			assert.Equal(t, want, countsOf(rig.c.Snapshot()))
		})
	}
}

// TestStatsMemoryStore: the memory figures are the store's own, evictions included.
func TestStatsMemoryStore(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 600)
	store, err := memstore.New(1000) // room for one entry of this size, not two
	require.NoError(t, err)
	t.Cleanup(store.Close)
	c := stampede.New(nil, store, time.Minute)
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))

	assert.Equal(t, &stampede.MemoryStats{Store: store}, c.Snapshot().Memory)
	serveDirect(h, newGet("/a"))
	c.Wait()
	store.CleanUp()
	snap := c.Snapshot()
	require.NotNil(t, snap.Memory)
	assert.Equal(t, 1, snap.Memory.Entries)
	assert.Equal(t, store.Stats().Bytes, snap.Memory.Bytes)
	assert.Greater(t, snap.Memory.Bytes, int64(600))
	assert.Zero(t, snap.Memory.Evictions)

	serveDirect(h, newGet("/b"))
	c.Wait()
	store.CleanUp()
	st := store.Stats()
	assert.Equal(t, &stampede.MemoryStats{Entries: st.Entries, Bytes: st.Bytes, Evictions: st.Evictions, Store: store},
		c.Snapshot().Memory)
	assert.EqualValues(t, 1, st.Evictions, "one of the two entries was evicted or refused")

	assert.Nil(t, stampede.New(nil, failingStore{}, time.Minute).Snapshot().Memory, "a store without sizes")
	assert.Nil(t, stampede.New(nil, store, 0).Snapshot().Memory, "coalesce only stores nothing")
}

// TestStatsHandlerTime: with a fake clock (synctest), run times are exact, so are their total, mean
// and buckets.
func TestStatsHandlerTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		c := stampede.New(nil, nil, 0)
		h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := time.ParseDuration(r.URL.Query().Get("d"))
			time.Sleep(d)
			if r.URL.Query().Has("fail") {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		for _, d := range []string{"500us", "1ms", "3ms", "40ms", "40ms", "2s", "45s"} {
			serveDirect(h, newGet("/?d="+d))
		}
		serveDirect(h, newGet("/?fail&d=40ms"))

		s := c.Snapshot()
		assert.EqualValues(t, 8, s.Runs)
		assert.EqualValues(t, 1, s.Failures)
		want := 500*time.Microsecond + time.Millisecond + 3*time.Millisecond + 3*40*time.Millisecond + 2*time.Second + 45*time.Second
		assert.Equal(t, want, s.HandlerTime)
		assert.Equal(t, want/8, s.AvgHandlerTime)
		assert.Equal(t, []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
			s.HandlerTimes.Bounds)
		//                             1ms 2.5ms 5ms 10ms 25ms 50ms 100ms 250ms 500ms 1s 2.5s 5s 10s 30s +Inf
		assert.Equal(t, []uint64{2, 0, 1, 0, 0, 3, 0, 0, 0, 0, 1, 0, 0, 0, 1}, s.HandlerTimes.Counts)
		assert.EqualValues(t, 8, s.HandlerTimes.Count)
		assert.InDelta(t, want.Seconds(), s.HandlerTimes.Sum, 1e-9)
	})
}

// TestStatsRates: the derived rates from a known mix of traffic.
func TestStatsRates(t *testing.T) {
	t.Parallel()
	assert.Equal(t, stampede.Snapshot{}.HitRate, stampede.New(nil, nil, 0).Snapshot().HitRate, "no traffic: 0, not NaN")

	rig := newStatsRig(newMem(t), stampede.WithName("products"))
	rig.serve = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
	rig.coalesce(t, newGet("/a"), []*http.Request{newGet("/a"), newGet("/a"), newGet("/a")}, nil) // 1 miss, 3 coalesced
	for range 4 {
		rig.do(newGet("/a")) // 4 hits
	}
	rig.do(newGet("/fail"))                                                   // 1 miss, failed
	rig.do(httptest.NewRequest(http.MethodPost, "/a", strings.NewReader(""))) // 1 pass

	s := rig.c.Snapshot()
	assert.Equal(t, "products", s.Name)
	assert.EqualValues(t, 10, s.Requests)
	assert.InDelta(t, 4.0/10, s.HitRate, 1e-12)
	assert.InDelta(t, 2.0/10, s.MissRate, 1e-12)
	assert.InDelta(t, 1.0/2, s.LoadFailureRate, 1e-12)
	assert.InDelta(t, 3.0/5, s.CollapseRatio, 1e-12)

	assert.Equal(t, "stampede", stampede.New(nil, nil, 0).Snapshot().Name, "the key prefix by default")
}

// TestStatsConcurrent: snapshots taken while requests run never count an outcome before its request or
// a failure before its run, and the totals are exact once the traffic stops.
func TestStatsConcurrent(t *testing.T) {
	t.Parallel()
	const workers, perWorker = 8, 200
	rig := newStatsRig(newMem(t))
	rig.serve = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("k") == "0" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}
	stop := make(chan struct{})
	var snaps sync.WaitGroup
	snaps.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := rig.c.Snapshot()
			outcomes := s.Hits + s.StaleHits + s.Misses + s.Coalesced + s.Abandoned + s.Passes
			if !assert.LessOrEqual(t, outcomes, s.Requests) || !assert.LessOrEqual(t, s.Failures, s.Runs) ||
				!assert.LessOrEqual(t, s.Runs, s.Misses) {
				return
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				serveDirect(rig.h, newGet("/?k="+strconv.Itoa((w+i)%5)))
			}
		})
	}
	wg.Wait()
	rig.c.Wait()
	close(stop)
	snaps.Wait()

	s := rig.c.Snapshot()
	assert.EqualValues(t, workers*perWorker, s.Requests)
	assert.Equal(t, s.Requests, s.Hits+s.Misses+s.Coalesced)
	assert.Equal(t, s.Misses, s.Runs)
	assert.Equal(t, s.Failures, s.Misses-4, "every /?k=0 is a failed run, each other key ran once")
}

// TestStatsLogs: each decision is logged at debug level with the key's digest, never the key material or
// header values; with debug off nothing per request is logged.
func TestStatsLogs(t *testing.T) {
	t.Parallel()
	var debug, info logBuffer
	for _, tc := range []struct {
		buf   *logBuffer
		level slog.Level
	}{{&debug, slog.LevelDebug}, {&info, slog.LevelInfo}} {
		logger := slog.New(slog.NewTextHandler(tc.buf, &slog.HandlerOptions{Level: tc.level}))
		c := stampede.New(logger, newMem(t), time.Minute, stampede.WithName("logs"),
			stampede.WithHTTPCacheKeyRequestHeaders([]string{"X-Tenant"}))
		h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Has("private") {
				w.Header().Set("Cache-Control", "private")
			}
		}))
		secret := newGetWith("/secret-path?token=s3cr3t", "X-Tenant", "tenant-s3cr3t")
		serveDirect(h, secret)
		c.Wait()
		serveDirect(h, newGetWith("/secret-path?token=s3cr3t", "X-Tenant", "tenant-s3cr3t"))
		serveDirect(h, newGetWith("/p?private", "Authorization", "Bearer s3cr3t"))
		serveDirect(h, newGetWith("/p?private", "Authorization", "Bearer s3cr3t"))
		serveDirect(h, httptest.NewRequest(http.MethodPost, "/secret-path?token=s3cr3t", nil))
		if tc.level == slog.LevelDebug {
			digest := stampede.StoreKey(c, secret)
			digest = digest[strings.LastIndexByte(digest, '{')+1 : len(digest)-1]
			require.Len(t, digest, 32)
			out := tc.buf.String()
			assert.Contains(t, out, `msg="stampede: request" cache=logs outcome=MISS key=`+digest)
			assert.Contains(t, out, `msg="stampede: request" cache=logs outcome=HIT key=`+digest)
			assert.Contains(t, out, `outcome=BYPASS reason=hit-for-pass key=`)
			assert.Contains(t, out, `outcome=BYPASS reason=method method=POST duration=`)
			assert.Contains(t, out, `msg="stampede: run" cache=logs key=`+digest+` status=200 duration=`)
		}
	}
	assert.NotContains(t, debug.String(), "s3cr3t", "no key material or header value is logged")
	assert.NotContains(t, debug.String(), "secret-path")
	assert.NotContains(t, info.String(), "stampede: request")
}

// TestReasonsListed: every reason constant in the package has its own slot in the pass counts, so no
// reason added later is counted as "other".
func TestReasonsListed(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	found := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if i >= len(spec.Values) || !strings.HasPrefix(name.Name, "reason") {
					continue
				}
				if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					found[name.Name], _ = strconv.Unquote(lit.Value)
				}
			}
			return true
		})
	}
	require.GreaterOrEqual(t, len(found), 18)
	listed := stampede.New(nil, nil, 0).Snapshot().PassReasons
	for name, value := range found {
		assert.Contains(t, listed, value, "%s is not in the reasons list of stats.go", name)
	}
	assert.NotContains(t, listed, "other", "other appears only when a reason is missing")
}

// TestOutcomesSumToRequests: over a real server, a mix of traffic (hits, misses, coalesced waiters,
// passes for several reasons, a panicking run with waiters, a waiter whose client leaves, stale hits,
// a stale-if-error run, key-function refusals) counts every request in exactly one outcome, so that
// Requests = Hits + StaleHits + Misses + Coalesced + Abandoned + Failed + Passes once nothing is in
// flight, and Passes is the sum of PassReasons.
func TestOutcomesSumToRequests(t *testing.T) {
	t.Parallel()
	type phase struct {
		entered chan struct{} // each run of a held path sends here first
		gate    chan struct{} // then waits for it to close
	}
	var held atomic.Pointer[phase]
	var failing atomic.Bool // /sie answers 500
	clock := newFakeClock()
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/held", "/held-panic", "/held-private":
			p := held.Load()
			p.entered <- struct{}{}
			<-p.gate
			switch r.URL.Path {
			case "/held-panic":
				panic("boom")
			case "/held-private":
				w.Header().Set("Cache-Control", "private")
			}
		case "/swr":
			w.Header().Set("Cache-Control", "max-age=1")
		case "/sie":
			if failing.Load() {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=0, stale-if-error=600")
		}
		_, _ = io.WriteString(w, "ok")
	})
	c := stampede.New(slog.New(slog.DiscardHandler), newMem(t), time.Minute, stampede.WithClock(clock.Now),
		stampede.WithStaleWhileRevalidate(time.Minute),
		stampede.WithKeyFunc(func(r *http.Request) (string, error) {
			if r.Header.Get("X-Refuse") != "" {
				return "", errors.New("refused")
			}
			return "", nil
		}))
	h := c.Handler(origin)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panicking run's leader is logged by net/http
	srv.Start()
	t.Cleanup(srv.Close)
	client := srv.Client()
	// A connection per request: the transport would resend a GET whose reused connection was cut
	// before it had a response (the panicking run's leader), which would be one request more.
	client.Transport.(*http.Transport).DisableKeepAlives = true

	var sent atomic.Int64 // requests sent
	send := func(method, path string, mod func(*http.Request)) {
		sent.Add(1)
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		require.NoError(t, err)
		if mod != nil {
			mod(req)
		}
		resp, err := client.Do(req)
		if err != nil {
			return // the leader of the panicking run: its connection is cut
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	do := func(path string, mod func(*http.Request)) { send(http.MethodGet, path, mod); c.Wait() }
	// coalesce sends a request for path and holds its run until waiters more have joined it and, when
	// abandon, one more waiter (served directly, with a context that is then cancelled) has left; then it
	// lets the run finish.
	coalesce := func(path string, waiters int, abandon bool) {
		p := &phase{entered: make(chan struct{}, 2*waiters+2), gate: make(chan struct{})}
		held.Store(p)
		joiners := int64(waiters)
		if abandon {
			joiners++
		}
		joins := newJoinCounter(joiners)
		stampede.SetJoinHook(c, joins.hook)
		var wg sync.WaitGroup
		wg.Go(func() { send(http.MethodGet, path, nil) })
		<-p.entered
		for range waiters {
			wg.Go(func() { send(http.MethodGet, path, nil) })
		}
		ctx, cancel := context.WithCancel(t.Context())
		quit := make(chan struct{})
		if abandon {
			sent.Add(1)
			go func() {
				defer close(quit)
				// The server's URL, so that its host, part of the key, is the other requests'.
				serveDirect(h, httptest.NewRequest(http.MethodGet, srv.URL+path, nil).WithContext(ctx))
			}()
		} else {
			close(quit)
		}
		<-joins.reached
		cancel()
		<-quit // the abandoning waiter has returned while the run is held
		close(p.gate)
		wg.Wait()
		c.Wait()
	}

	do("/a", nil) // miss
	do("/a", nil) // hit
	do("/a", nil) // hit
	coalesce("/held", 5, true)
	do("/held", nil)                                                              // hit
	coalesce("/held-panic", 4, false)                                             // a miss and 4 failed
	coalesce("/held-private", 3, false)                                           // a miss and 3 passes (private)
	do("/held-private", nil)                                                      // pass: hit-for-pass
	send(http.MethodPost, "/a", nil)                                              // pass: method
	do("/a", func(r *http.Request) { r.Header.Set("Cache-Control", "no-store") }) // pass: request-no-store
	do("/a", func(r *http.Request) { r.Header.Set("Upgrade", "websocket") })      // pass: upgrade
	do("/a", func(r *http.Request) { r.Header.Set("X-Refuse", "1") })             // pass: key-error
	do("/a", func(r *http.Request) { r.Header.Set("X-Refuse", "1") })             // pass: key-error
	do("/swr", nil)                                                               // miss
	do("/sie", nil)                                                               // miss
	clock.Advance(2 * time.Second)
	do("/swr", nil) // stale hit, and a background refresh
	do("/swr", nil) // hit: the refresh stored a fresh response
	failing.Store(true)
	do("/sie", nil) // the revalidation answers 500: the stale entry answers its leader
	c.Wait()

	s := c.Snapshot()
	assert.EqualValues(t, sent.Load(), s.Requests, "every request reached the middleware")
	assert.Equal(t, s.Requests, s.Hits+s.StaleHits+s.Misses+s.Coalesced+s.Abandoned+s.Failed+s.Passes,
		"each request in exactly one outcome: %+v", countsOf(s))
	var reasons uint64
	for _, n := range s.PassReasons {
		reasons += n
	}
	assert.Equal(t, s.Passes, reasons)
	assert.EqualValues(t, 5, s.Coalesced)
	assert.EqualValues(t, 1, s.Abandoned)
	assert.EqualValues(t, 4, s.Failed)
	assert.EqualValues(t, 1, s.StaleHits)
	assert.EqualValues(t, 7, s.Misses, "/a, /held, /held-panic, /held-private, /swr, /sie twice")
	assert.Equal(t, reasonCounts("private", 3, "hit-for-pass", 1, "method", 1, "request-no-store", 1,
		"upgrade", 1, "key-error", 2), countsOf(s).PassReasons)
	assert.Equal(t, s.Runs, s.Misses+s.Refreshes, "nothing in flight")
}

// steppingClock returns a clock that moves on by step at every reading.
func steppingClock(step time.Duration) func() time.Time {
	var n atomic.Int64
	base := time.Unix(1_700_000_000, 0)
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * step) }
}

// TestStoreNames: a store shared by two sources is named once, after the first; a second store that
// would take a name already used gets a suffix; an uncomparable store is named anew each time.
func TestStoreNames(t *testing.T) {
	t.Parallel()
	a, b := new(int), new(int)
	var n stampede.StoreNames
	name, first := n.Name(&stampede.MemoryStats{Store: a}, "pages")
	assert.Equal(t, "pages", name)
	assert.True(t, first)
	name, first = n.Name(&stampede.MemoryStats{Store: a}, "api")
	assert.Equal(t, "pages", name)
	assert.False(t, first)
	name, first = n.Name(&stampede.MemoryStats{Store: b}, "pages")
	assert.Equal(t, "pages#2", name)
	assert.True(t, first)
	unkeyed := []int{1}
	name1, first1 := n.Name(&stampede.MemoryStats{Store: unkeyed}, "list")
	name2, first2 := n.Name(&stampede.MemoryStats{Store: unkeyed}, "list")
	assert.Equal(t, []string{"list", "list#2"}, []string{name1, name2})
	assert.True(t, first1 && first2)
}
