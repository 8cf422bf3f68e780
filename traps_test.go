package stampede_test

// Tests of traps.go: the configurations that serve but quietly do something else are each reported once,
// and ErrNotCached passes a request through without a warning.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// warnings counts the lines at warn level that contain msg.
func warnings(l *logBuffer, msg string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, msg) {
			n++
		}
	}
	return n
}

// skipUnlessLeases skips a case about a store that should offer leases while the build at hand has it
// offer only part of the protocol (fleet coalescing needs LeaseStore and FencedStore together).
func skipUnlessLeases(t *testing.T, store any) {
	t.Helper()
	_, lease := store.(stampede.LeaseStore)
	_, fenced := store.(stampede.FencedStore)
	if !lease || !fenced {
		t.Skipf("%T offers LeaseStore %v, FencedStore %v in this build: fleet coalescing cannot use it", store, lease, fenced)
	}
}

// TestTrapFleetWithoutLeases: WithFleetCoalescing with a store that offers no leases warns once, when
// the Cache or Loader is built; with redisstore it does not.
func TestTrapFleetWithoutLeases(t *testing.T) {
	t.Parallel()
	const msg = "WithFleetCoalescing does nothing"
	srv := redistest.Start(t)
	tests := []struct {
		name  string
		build func(t *testing.T, logger *logBuffer)
		warns int
	}{
		{"memstore", func(t *testing.T, l *logBuffer) {
			stampede.New(newLogger(l), newMem(t), time.Minute, stampede.WithFleetCoalescing(time.Second))
		}, 1},
		{"no store", func(t *testing.T, l *logBuffer) {
			stampede.New(newLogger(l), nil, time.Minute, stampede.WithFleetCoalescing(time.Second))
		}, 1},
		{"memstore, fleet off", func(t *testing.T, l *logBuffer) {
			stampede.New(newLogger(l), newMem(t), time.Minute)
		}, 0},
		{"redisstore", func(t *testing.T, l *logBuffer) {
			store := closing(t, redisstore.New(redisClient(t, srv.Addr(), 4)))
			skipUnlessLeases(t, store)
			c := stampede.New(newLogger(l), store, time.Minute, stampede.WithFleetCoalescing(time.Second))
			t.Cleanup(c.Close)
		}, 0},
		{"loader, in-process tier", func(t *testing.T, l *logBuffer) {
			ld := stampede.NewLoader("users", func(_ context.Context, id int) (string, error) { return "", nil },
				stampede.WithLogger(newLogger(l)), stampede.WithTTL(time.Minute), stampede.WithFleetCoalescing(time.Second))
			t.Cleanup(ld.Close)
		}, 1},
		{"loader, memstore values", func(t *testing.T, l *logBuffer) {
			values, err := memstore.NewValues[any](100)
			require.NoError(t, err)
			t.Cleanup(values.Close)
			ld := stampede.NewLoader("users", func(_ context.Context, id int) (string, error) { return "", nil },
				stampede.WithLogger(newLogger(l)), stampede.WithValues(values), stampede.WithTTL(time.Minute),
				stampede.WithFleetCoalescing(time.Second))
			t.Cleanup(ld.Close)
		}, 1},
		{"loader, redisstore", func(t *testing.T, l *logBuffer) {
			store := closing(t, redisstore.New(redisClient(t, srv.Addr(), 4)))
			skipUnlessLeases(t, store)
			ld := stampede.NewLoader("users", func(_ context.Context, id int) (string, error) { return "", nil },
				stampede.WithLogger(newLogger(l)), stampede.WithStore(store), stampede.WithTTL(time.Minute),
				stampede.WithFleetCoalescing(time.Second))
			t.Cleanup(ld.Close)
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l logBuffer
			tt.build(t, &l)
			require.Equal(t, tt.warns, warnings(&l, msg), l.String())
		})
	}
}

// TestTrapCredentialKey: a custom key function on requests with Authorization or Cookie, and nothing
// keying the credential, warns once per Cache however many such requests come; a function marked with
// PerCredential, a keyed Cookie, or requests without credentials do not.
func TestTrapCredentialKey(t *testing.T) {
	t.Parallel()
	const msg = "nothing says it keys per credential"
	byToken := func(r *http.Request) (string, error) {
		return r.Header.Get("Authorization") + r.Header.Get("Cookie"), nil
	}
	tests := []struct {
		name   string
		mw     func(l *logBuffer) func(http.Handler) http.Handler
		header string // request header set on every request ("Name: value"), or ""
		warns  int
	}{
		{"Authorization, plain key function", func(l *logBuffer) func(http.Handler) http.Handler {
			return stampede.HandlerWithKey(newLogger(l), nil, time.Minute, byToken)
		}, "Authorization: Bearer a", 1},
		{"Cookie, plain key function", func(l *logBuffer) func(http.Handler) http.Handler {
			return stampede.New(newLogger(l), nil, time.Minute, stampede.WithKeyFunc(byToken)).Handler
		}, "Cookie: session=a", 1},
		{"Authorization, PerCredential", func(l *logBuffer) func(http.Handler) http.Handler {
			return stampede.HandlerWithKey(newLogger(l), nil, time.Minute, stampede.PerCredential(byToken))
		}, "Authorization: Bearer a", 0},
		{"Cookie keyed as a header", func(l *logBuffer) func(http.Handler) http.Handler {
			return stampede.New(newLogger(l), nil, time.Minute, stampede.WithKeyFunc(byToken),
				stampede.WithHTTPCacheKeyRequestHeaders([]string{"Cookie"})).Handler
		}, "Cookie: session=a", 0},
		{"no credential", func(l *logBuffer) func(http.Handler) http.Handler {
			return stampede.HandlerWithKey(newLogger(l), nil, time.Minute, byToken)
		}, "", 0},
		{"Authorization, no key function", func(l *logBuffer) func(http.Handler) http.Handler {
			return stampede.Handler(newLogger(l), nil, time.Minute)
		}, "Authorization: Bearer a", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var l logBuffer
			h := tt.mw(&l)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "page") }))
			for range 3 {
				req := httptest.NewRequest(http.MethodGet, "/me", nil)
				if name, value, ok := strings.Cut(tt.header, ": "); ok {
					req.Header.Set(name, value)
				}
				rec := serveDirect(h, req)
				require.Equal(t, "page", rec.Body.String())
			}
			require.Equal(t, tt.warns, warnings(&l, msg), l.String())
		})
	}
}

// TestTrapNestedCache: a cache on a router (Use) and another on one of its routes (With) serve the same
// request; the inner one warns once and passes every such request through, so that the handler's own
// headers, not the inner cache's, are what the outer one records.
func TestTrapNestedCache(t *testing.T) {
	t.Parallel()
	var l logBuffer
	outer := stampede.New(newLogger(&l), newMem(t), time.Minute, stampede.WithName("outer"))
	inner := stampede.New(newLogger(&l), newMem(t), time.Minute, stampede.WithName("inner"),
		stampede.WithKeyFunc(func(r *http.Request) (string, error) { return r.Header.Get("X-Tenant"), nil }))
	r := chi.NewRouter()
	r.Use(outer.Handler)
	r.With(inner.Handler).Get("/dashboard/{n}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "dashboard ", chi.URLParam(r, "n"))
	})
	for i := range 3 {
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/dashboard/%d", i), nil)
		req.Header.Set("X-Tenant", "a")
		rec := serveDirect(r, req)
		require.Equal(t, fmt.Sprintf("dashboard %d", i), rec.Body.String())
		require.Equal(t, "MISS", rec.Header().Get("X-Cache"))
		require.Len(t, rec.Header().Values("Cache-Status"), 1, "only the outer cache's Cache-Status")
	}
	outer.Wait()
	require.Equal(t, 1, warnings(&l, "cache nested in another cache"), l.String())
	snap := inner.Snapshot()
	require.Equal(t, uint64(3), snap.PassReasons["nested"])
	require.Equal(t, uint64(3), snap.Requests)
	require.Equal(t, uint64(3), outer.Snapshot().Misses)

	// Requests the outer cache answers from its store never reach the inner one.
	rec := serveDirect(r, httptest.NewRequest(http.MethodGet, "/dashboard/0", nil))
	require.Equal(t, "HIT", rec.Header().Get("X-Cache"))
	require.Equal(t, uint64(3), inner.Snapshot().Requests)
}

// TestErrNotCached: a key function that returns ErrNotCached (wrapped or not) passes its request through
// uncached, counted as "key-declined", with no warning; any other error warns.
func TestErrNotCached(t *testing.T) {
	t.Parallel()
	var l logBuffer
	runs := 0
	tenant := func(r *http.Request) (string, error) {
		switch t := r.Header.Get("X-Tenant"); t {
		case "":
			return "", fmt.Errorf("no tenant: %w", stampede.ErrNotCached)
		case "bad":
			return "", errors.New("malformed tenant")
		default:
			return t, nil
		}
	}
	c := stampede.New(newLogger(&l), newMem(t), time.Minute, stampede.WithKeyFunc(tenant))
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs++; fmt.Fprint(w, "ok") }))
	for range 3 {
		rec := serveDirect(h, httptest.NewRequest(http.MethodGet, "/report", nil))
		require.Equal(t, "BYPASS", rec.Header().Get("X-Cache"))
		require.Contains(t, rec.Header().Get("Cache-Status"), "detail=key-declined")
	}
	require.Equal(t, 3, runs)
	require.Equal(t, uint64(3), c.Snapshot().PassReasons["key-declined"])
	require.Zero(t, strings.Count(l.String(), "level=WARN"), l.String())

	req := httptest.NewRequest(http.MethodGet, "/report", nil)
	req.Header.Set("X-Tenant", "bad")
	serveDirect(h, req)
	require.Equal(t, 1, warnings(&l, "key function failed"), l.String())
}
