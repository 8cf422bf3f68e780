// Command purge removes stored responses before they expire: one URL with cache.Purge, or every
// response that carried a tag with cache.PurgeTag. The handler tags its responses with a Cache-Tag
// header (Surrogate-Key works too; several tags separated by spaces or commas). The admin routes that
// purge, and the stats page, are mounted on the router outside the cache: behind it, a purge route
// answering GET would be replayed from the store after its first call, and every admin and stats
// request would count in the cache's figures.
//
//	go run ./_example/purge            # serve on :3341
//	go run ./_example/purge -demo      # request, purge, request again against a test server, print, exit
//	curl -i localhost:3341/articles/1                                # X-Cache: MISS, then HIT
//	curl -X POST 'localhost:3341/admin/purge?path=/articles/1'       # that URL only
//	curl -X POST 'localhost:3341/admin/purge-tag?tag=articles'       # every article
//
// With backends/redisstore the tag index lives in Redis, so a purge on one replica covers what every
// replica stored; with backends/memstore, as here, it covers what this process stored.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

func main() {
	addr := flag.String("addr", ":3341", "listen address")
	demo := flag.Bool("demo", false, "request, purge and request again against a test server, print the outcome and exit")
	flag.Parse()

	store, err := memstore.New(32 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	cache := stampede.New(nil, store, time.Hour, stampede.WithName("articles"))

	var mu sync.Mutex
	runs := map[string]int{} // guarded by mu: handler runs per article, shown as its version
	r := chi.NewRouter()
	r.Group(func(r chi.Router) {
		r.Use(cache.Handler)
		r.Get("/articles/{id}", func(w http.ResponseWriter, r *http.Request) {
			id := chi.URLParam(r, "id")
			mu.Lock()
			runs[id]++
			v := runs[id]
			mu.Unlock()
			w.Header().Set("Cache-Tag", "articles article-"+id)
			fmt.Fprintf(w, "article %s, version %d\n", id, v)
		})
	})

	// Outside the cache. In a real service, put these behind authentication or on an internal listener.
	r.Route("/admin", func(r chi.Router) {
		r.Post("/purge", func(w http.ResponseWriter, r *http.Request) {
			path := r.URL.Query().Get("path")
			if !strings.HasPrefix(path, "/") {
				http.Error(w, "path must start with /", http.StatusBadRequest)
				return
			}
			target, err := http.NewRequestWithContext(r.Context(), http.MethodGet, path, nil)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			// Keyed as a client's GET for path: same host and scheme, none of the admin's headers (an
			// Authorization header, for one, is part of the key).
			target.Host, target.TLS = r.Host, r.TLS
			respond(w, cache.Purge(r.Context(), target))
		})
		r.Post("/purge-tag", func(w http.ResponseWriter, r *http.Request) {
			respond(w, cache.PurgeTag(r.Context(), r.URL.Query().Get("tag")))
		})
	})
	r.Handle("/debug/stampede", stampede.StatsHandler(cache))

	if !*demo {
		log.Println("listening on", *addr)
		log.Fatal(http.ListenAndServe(*addr, r))
	}

	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, step := range []string{
		"GET /articles/1", "GET /articles/1", "GET /articles/2",
		"POST /admin/purge?path=/articles/1",
		"GET /articles/1", "GET /articles/2",
		"POST /admin/purge-tag?tag=articles",
		"GET /articles/1", "GET /articles/2",
	} {
		method, path, _ := strings.Cut(step, " ")
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		xc := resp.Header.Get("X-Cache")
		if xc == "" {
			xc = "-" // not behind the cache
		}
		fmt.Printf("%-36s %-5s %s", step, xc, body)
		cache.Wait() // let the store write finish, so the next request for the URL is a hit
	}
}

// respond reports the outcome of a purge.
func respond(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, stampede.ErrNotCached):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		fmt.Fprintln(w, "purged")
	}
}
