package stampede_test

// This file covers the background refresh (run.go's refresh): it runs the request that was keyed, body
// and headers included, and under chi it keeps its own copy of the route context.

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// TestRefreshReplaysKeyedRequest: with WithHTTPCacheKeyRequestBody, a stale-while-revalidate refresh
// of a GET with a body gets that body, and the headers the key and Vary depend on, so the entry stored
// under the body's key is that body's response.
func TestRefreshReplaysKeyedRequest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got := r.Header.Get("X-Tenant") + "/" + r.Header.Get("X-Lang") + "/" + string(b)
		mu.Lock()
		seen = append(seen, got)
		mu.Unlock()
		w.Header().Set("Vary", "X-Lang")
		_, _ = io.WriteString(w, "results for "+got)
	})
	c, clock, do, _ := freshServer(t, h, stampede.WithHTTPCacheKeyRequestBody(true),
		stampede.WithHTTPCacheKeyRequestHeaders([]string{"X-Tenant"}), stampede.WithStaleWhileRevalidate(time.Hour))
	_ = c
	body := func(s string) func(*http.Request) {
		return func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(s))
			r.ContentLength = int64(len(s))
		}
	}
	mods := []func(*http.Request){body(`{"q":"shoes"}`), header("X-Tenant", "acme"), header("X-Lang", "fr")}
	want := "results for acme/fr/" + `{"q":"shoes"}`
	require.Equal(t, want, do("/_search", mods...).body)
	clock.Advance(2 * time.Minute) // stale, within stale-while-revalidate
	r := do("/_search", mods...)
	require.Equal(t, want, r.body)
	require.Contains(t, r.header.Get("Cache-Status"), "stale-while-revalidate")
	// do waited for the refresh: it ran the keyed request and stored its response.
	mu.Lock()
	require.Equal(t, []string{"acme/fr/" + `{"q":"shoes"}`, "acme/fr/" + `{"q":"shoes"}`}, seen)
	mu.Unlock()
	r = do("/_search", mods...)
	require.Equal(t, want, r.body)
	require.Equal(t, "HIT", r.header.Get("X-Cache"))
	require.NotContains(t, r.header.Get("Cache-Status"), "stale")
}

// TestRefreshUnderChi: a refresh started by a request routed by chi runs after that request returned,
// while chi has put its route context back in its pool and handed it to other requests; the refresh
// still sees its own route parameters (and -race sees no shared route context).
func TestRefreshUnderChi(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	c := stampede.New(nil, newMem(t), time.Minute, stampede.WithClock(clock.Now), stampede.WithStaleWhileRevalidate(time.Hour))
	refreshing := make(chan struct{})
	release := make(chan struct{})
	var refreshSaw string
	var runs int
	var mu sync.Mutex
	router := chi.NewRouter()
	router.Use(c.Handler)
	router.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		runs++
		n := runs
		mu.Unlock()
		if n == 2 { // the refresh of /items/1
			close(refreshing)
			<-release
			refreshSaw = chi.URLParam(r, "id") + " " + chi.RouteContext(r.Context()).RoutePattern()
		}
		_, _ = io.WriteString(w, "item "+chi.URLParam(r, "id"))
	})
	router.Get("/other/{name}/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "other "+chi.URLParam(r, "name"))
	})
	srv, client := newServer(t, router, 4)
	send := func(path string) reply {
		r := get(t.Context(), client, srv.URL+path, nil)
		require.NoError(t, r.err)
		return r
	}
	require.Equal(t, "item 1", send("/items/1").body)
	c.Wait()
	clock.Advance(2 * time.Minute)
	require.Equal(t, "item 1", send("/items/1").body) // stale: starts the refresh, and returns
	<-refreshing
	// Other requests reuse chi's pooled route contexts meanwhile.
	for i := range 8 {
		require.Equal(t, "other x", send("/other/x/"+strings.Repeat("9", i+1)).body)
	}
	close(release)
	c.Wait()
	require.Equal(t, "1 /items/{id}", refreshSaw)
}
