package stampede_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// Put the middleware in front of a slow handler: the first request runs it, later ones are replayed
// from the memory store until the TTL ends.
func ExampleHandler() {
	store, err := memstore.New(64 << 20) // 64 MiB budget
	if err != nil {
		panic(err)
	}
	defer store.Close()
	cache := stampede.New(nil, store, time.Minute)

	var runs atomic.Int64
	r := chi.NewRouter()
	// Every route of r: mount /metrics and the stats page on another router or group (ExampleWithKeyFunc).
	r.Use(cache.Handler) // or r.Use(stampede.Handler(logger, store, time.Minute))
	r.Get("/report", func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		fmt.Fprint(w, "expensive report")
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	for range 3 {
		resp, err := http.Get(srv.URL + "/report")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Header.Get("X-Cache"), string(body))
		cache.Wait() // let the store write finish, so the next request is a hit
	}
	fmt.Println("handler runs:", runs.Load())
	// Output:
	// MISS expensive report
	// HIT expensive report
	// HIT expensive report
	// handler runs: 1
}

// Give each tenant its own cache entries with a KeyFunc; requests it cannot classify pass through.
// HandlerWithKey returns only the middleware; to read the cache's counters, build it with New and
// WithKeyFunc instead (ExampleWithKeyFunc).
func ExampleHandlerWithKey() {
	store, _ := memstore.New(64 << 20)
	defer store.Close()
	tenantKey := func(r *http.Request) (string, error) {
		if t := r.Header.Get("X-Tenant"); t != "" {
			return t, nil
		}
		return "", errors.New("no tenant")
	}
	r := chi.NewRouter()
	r.With(stampede.HandlerWithKey(nil, store, time.Minute, tenantKey)).
		Get("/dashboard", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "dashboard of %s", r.Header.Get("X-Tenant"))
		})

	for _, tenant := range []string{"acme", "globex", "acme", ""} {
		req := httptest.NewRequest("GET", "/dashboard", nil)
		if tenant != "" {
			req.Header.Set("X-Tenant", tenant)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		fmt.Printf("%q gets %q\n", tenant, rec.Body.String())
		if rec.Header().Get("X-Cache") == "BYPASS" {
			fmt.Println("  (passed through: no tenant)")
		}
	}
	// Output:
	// "acme" gets "dashboard of acme"
	// "globex" gets "dashboard of globex"
	// "acme" gets "dashboard of acme"
	// "" gets "dashboard of "
	//   (passed through: no tenant)
}

// A per-tenant cache that can be observed: New with WithKeyFunc gives a *Cache, whose Snapshot and stats
// page show its figures. The cache is on one route; the stats page is on the router, outside it.
func ExampleWithKeyFunc() {
	store, _ := memstore.New(64 << 20)
	defer store.Close()
	tenantOf := func(r *http.Request) (string, error) {
		if t := r.Header.Get("X-Tenant"); t != "" {
			return t, nil
		}
		return "", errors.New("no tenant")
	}
	dashboards := stampede.New(nil, store, time.Minute, stampede.WithName("dashboards"),
		stampede.WithKeyFunc(tenantOf))

	r := chi.NewRouter()
	r.Handle("/debug/stampede", stampede.StatsHandler(dashboards)) // not behind the cache
	r.With(dashboards.Handler).Get("/dashboard", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "dashboard of %s", r.Header.Get("X-Tenant"))
	})

	for _, tenant := range []string{"acme", "globex", "acme"} {
		req := httptest.NewRequest("GET", "/dashboard", nil)
		req.Header.Set("X-Tenant", tenant)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		dashboards.Wait() // let the store write finish, so acme's second request is a hit
		fmt.Printf("%s: %s %s\n", tenant, rec.Header().Get("X-Cache"), rec.Body.String())
	}
	s := dashboards.Snapshot()
	fmt.Printf("%s: %d requests, %d hits, %d misses\n", s.Name, s.Requests, s.Hits, s.Misses)
	// Output:
	// acme: MISS dashboard of acme
	// globex: MISS dashboard of globex
	// acme: HIT dashboard of acme
	// dashboards: 3 requests, 1 hits, 2 misses
}

// Singleflight coalesces identical concurrent requests without storing anything: requests that arrive
// while a run for their key is in progress get its response (X-Cache: COALESCED) instead of running
// the handler again; nothing outlives the run.
func ExampleSingleflight() {
	var runs atomic.Int64
	h := stampede.Singleflight(nil, []string{"Accept-Language"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			fmt.Fprintf(w, "live data (%s)", r.Header.Get("Accept-Language"))
		}))

	var wg sync.WaitGroup
	bodies := make([]string, 5)
	for i := range bodies {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/live", nil)
			req.Header.Set("Accept-Language", "en")
			h.ServeHTTP(rec, req)
			bodies[i] = rec.Body.String()
		})
	}
	wg.Wait()
	fmt.Println(bodies)
	fmt.Println("at most one run per request:", runs.Load() <= 5)
	// Output:
	// [live data (en) live data (en) live data (en) live data (en) live data (en)]
	// at most one run per request: true
}
