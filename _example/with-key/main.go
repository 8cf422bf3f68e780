// Command with-key caches per tenant on one route with chi's r.With: the tenant id (from a header here;
// from a verified token in a real service) is part of the key, so tenants never see each other's data.
// Requests without a tenant pass through uncached.
//
// Each cached route has one cache of its own, built with stampede.New and WithKeyFunc, so its counters
// can be read: the stats page at /debug/stampede is mounted on the router, outside both caches.
// stampede.HandlerWithKey(logger, store, ttl, tenantKey) is the go-chi shorthand for the same
// middleware, but it returns only the middleware, whose counters nothing can read.
//
// /me is go-chi/stampede's with-key example: a go-chi key function over the Authorization token, which
// says with PerCredential that it keys the caller's credential. Two requests with the same token at once
// take 3 s together, the second answered from the first's run, and later ones come from the store; a
// request with another token gets its own page:
//
//	go run ./_example/with-key          # serve on :3335
//	go run ./_example/with-key -demo    # request /dashboard as a few tenants, print the cache's counters, exit
//	curl -H 'Authorization: Bar' localhost:3335/me & curl -H 'Authorization: Bar' localhost:3335/me
//	curl 'localhost:3335/debug/stampede?format=json'
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

var errNoTenant = errors.New("no tenant")

func tenantKey(r *http.Request) (string, error) {
	if t := r.Header.Get("X-Tenant-Id"); t != "" {
		return t, nil
	}
	return "", errNoTenant
}

func main() {
	demo := flag.Bool("demo", false, "request /dashboard as a few tenants, print the outcome and the cache's counters, exit")
	flag.Parse()

	store, err := memstore.New(32 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	dashboards := stampede.New(nil, store, 30*time.Second, stampede.WithName("dashboards"),
		stampede.WithKeyFunc(tenantKey))

	// Include anything user specific, e.g. Authorization Token
	customCacheKeyFunc := stampede.PerCredential(func(r *http.Request) (uint64, error) {
		token := r.Header.Get("Authorization")
		return stampede.StringToHash(r.Method, strings.ToLower(token)), nil
	})
	me := stampede.New(slog.Default(), store, 5*time.Second, stampede.WithName("me"),
		stampede.WithCredentialKeyFunc(customCacheKeyFunc), stampede.WithHTTPCacheKeyRequestBody(false))

	r := chi.NewRouter()
	// Not behind either cache: the stats must be live, and the health check must reach the process.
	r.Handle("/debug/stampede", stampede.StatsHandler(dashboards, me))
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })

	r.With(dashboards.Handler).Get("/dashboard", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintf(w, "dashboard for tenant %s\n", r.Header.Get("X-Tenant-Id"))
	})
	r.With(me.Handler).Get("/me", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second) // processing..
		w.WriteHeader(200)
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	})

	if !*demo {
		log.Println("listening on :3335")
		log.Fatal(http.ListenAndServe(":3335", r))
	}

	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, tenant := range []string{"acme", "globex", "acme", ""} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/dashboard", nil)
		if tenant != "" {
			req.Header.Set("X-Tenant-Id", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("tenant %q: %s %s", tenant, resp.Header.Get("X-Cache"), body)
		dashboards.Wait() // let the store write finish, so acme's second request is a hit
	}
	s := dashboards.Snapshot()
	fmt.Printf("%s: %d requests, %d hits, %d misses, %d passes (%d without a tenant)\n",
		s.Name, s.Requests, s.Hits, s.Misses, s.Passes, s.PassReasons["key-error"])
}
