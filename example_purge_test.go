package stampede_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// Remove the stored response for one URL before it expires, when the data behind it changed: the next
// request runs the handler again. The request passed to Purge is keyed as it would be when served.
func ExampleCache_Purge() {
	store, err := memstore.New(16 << 20)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	cache := stampede.New(nil, store, time.Hour)
	version := 0
	h := cache.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		version++
		fmt.Fprintf(w, "price list v%d", version)
	}))
	get := func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "http://shop.example/prices", nil))
		cache.Wait() // let the store write finish, so the next request is a hit
		fmt.Println(rec.Header().Get("X-Cache"), rec.Body.String())
	}

	get()
	get()
	// The prices changed.
	if err := cache.Purge(context.Background(), httptest.NewRequest("GET", "http://shop.example/prices", nil)); err != nil {
		panic(err)
	}
	get()
	get()
	// Output:
	// MISS price list v1
	// HIT price list v1
	// MISS price list v2
	// HIT price list v2
}

// Tag responses with a Cache-Tag (or Surrogate-Key) header and remove every response that carried a
// tag at once. The purge route is mounted beside the cached routes, not behind the cache.
func ExampleCache_PurgeTag() {
	store, err := memstore.New(16 << 20)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	cache := stampede.New(nil, store, time.Hour)
	version := map[string]int{}
	articles := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		version[id]++
		w.Header().Set("Cache-Tag", "articles article-"+id) // tags separated by spaces or commas
		fmt.Fprintf(w, "article %s v%d", id, version[id])
	})

	mux := http.NewServeMux()
	mux.Handle("GET /articles/{id}", cache.Handler(articles))
	mux.HandleFunc("POST /admin/purge-tag", func(w http.ResponseWriter, r *http.Request) { // not cached
		if err := cache.PurgeTag(r.Context(), r.URL.Query().Get("tag")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "purged")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	do := func(method, path string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cache.Wait()
		fmt.Println(strings.TrimSpace(method+" "+path+" "+resp.Header.Get("X-Cache")), "->", string(body))
	}
	do("GET", "/articles/1")
	do("GET", "/articles/2")
	do("GET", "/articles/1")
	do("POST", "/admin/purge-tag?tag=article-1")
	do("GET", "/articles/1")
	do("GET", "/articles/2")
	do("POST", "/admin/purge-tag?tag=articles")
	do("GET", "/articles/2")
	// Output:
	// GET /articles/1 MISS -> article 1 v1
	// GET /articles/2 MISS -> article 2 v1
	// GET /articles/1 HIT -> article 1 v1
	// POST /admin/purge-tag?tag=article-1 -> purged
	// GET /articles/1 MISS -> article 1 v2
	// GET /articles/2 HIT -> article 2 v1
	// POST /admin/purge-tag?tag=articles -> purged
	// GET /articles/2 MISS -> article 2 v2
}
