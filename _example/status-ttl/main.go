// Command status-ttl stores responses for a time that depends on their status: successes for a minute,
// not-found for ten seconds, server errors briefly (so an outage does not become a stampede), and
// everything else not at all. The cache's counters are at /debug/stampede, outside the cache.
//
//	go run ./_example/status-ttl
//	curl -i localhost:3334/items/0                       # 404, kept for 10 s
//	curl 'localhost:3334/debug/stampede?format=json'
package main

import (
	"log"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

func statusTTL(status int) time.Duration {
	switch {
	case status >= 200 && status < 300:
		return time.Minute
	case status == http.StatusNotFound:
		return 10 * time.Second
	case status >= 500:
		return 2 * time.Second // shield a failing origin, briefly
	default:
		return 0 // not stored; still shared with requests waiting on the same run
	}
}

func main() {
	store, err := memstore.New(32 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	cache := stampede.New(nil, store, time.Minute, stampede.WithName("items"), stampede.WithHTTPStatusTTL(statusTTL))

	r := chi.NewRouter()
	r.Handle("/debug/stampede", stampede.StatsHandler(cache)) // outside the cache: live figures
	r.Group(func(r chi.Router) {
		r.Use(cache.Handler)
		r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
			switch chi.URLParam(r, "id") {
			case "0":
				http.Error(w, "no such item", http.StatusNotFound)
			case "500":
				http.Error(w, "database unavailable", http.StatusServiceUnavailable)
			default:
				_, _ = w.Write([]byte("item " + chi.URLParam(r, "id") + "\n"))
			}
		})
	})
	log.Println("listening on :3334")
	log.Fatal(http.ListenAndServe(":3334", r))
}
