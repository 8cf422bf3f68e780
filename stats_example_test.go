package stampede_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// Read a cache's counters and rates, for a health check or an exporter of your own.
func ExampleCache_Snapshot() {
	store, _ := memstore.New(64 << 20)
	defer store.Close()
	cache := stampede.New(nil, store, time.Minute, stampede.WithName("reports"))
	h := cache.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "report") }))
	for range 4 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/report", nil))
		cache.Wait()
	}
	s := cache.Snapshot()
	fmt.Printf("%s: %d requests, %d hits, %d miss, hit rate %.2f, %d entry stored\n",
		s.Name, s.Requests, s.Hits, s.Misses, s.HitRate, s.Memory.Entries)
	// Output:
	// reports: 4 requests, 3 hits, 1 miss, hit rate 0.75, 1 entry stored
}

// Serve the stats of every cache at /debug/stampede: an HTML page with live charts for a browser, JSON
// for ?format=json.
func ExampleStatsHandler() {
	api := stampede.New(nil, nil, 0, stampede.WithName("api"))
	mux := http.NewServeMux()
	mux.Handle("/api/", api.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "ok")
	})))
	mux.Handle("/debug/stampede", stampede.StatsHandler(api))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/api/items")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	resp, err = http.Get(srv.URL + "/debug/stampede?format=json")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var stats struct {
		Caches []stampede.Snapshot `json:"caches"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		panic(err)
	}
	fmt.Println(stats.Caches[0].Name, stats.Caches[0].Requests, stats.Caches[0].Misses)
	// Output:
	// api 1 1
}
