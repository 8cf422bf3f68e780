// Command with-key caches per tenant on one route with chi's r.With: the tenant id (from a header here;
// from a verified token in a real service) is part of the key, so tenants never see each other's data.
// Requests without a tenant pass through uncached.
//
// /me is go-chi/stampede's with-key example: a go-chi key function over the Authorization token, which
// says with PerCredential that it keys the caller's credential. Two requests with the same token at once
// take 3 s together, the second answered from the first's run, and later ones come from the store; a
// request with another token gets its own page:
//
//	curl -H 'Authorization: Bar' localhost:3335/me & curl -H 'Authorization: Bar' localhost:3335/me
package main

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
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
	store, err := memstore.New(32 << 20)
	if err != nil {
		log.Fatal(err)
	}
	perTenant := stampede.HandlerWithKey(nil, store, 30*time.Second, tenantKey)

	r := chi.NewRouter()
	r.With(perTenant).Get("/dashboard", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintf(w, "dashboard for tenant %s\n", r.Header.Get("X-Tenant-Id"))
	})

	// Include anything user specific, e.g. Authorization Token
	customCacheKeyFunc := stampede.PerCredential(func(r *http.Request) (uint64, error) {
		token := r.Header.Get("Authorization")
		return stampede.StringToHash(r.Method, strings.ToLower(token)), nil
	})
	cacheMiddleware := stampede.HandlerWithKey(slog.Default(), store, 5*time.Second, customCacheKeyFunc,
		stampede.WithHTTPCacheKeyRequestBody(false))
	r.With(cacheMiddleware).Get("/me", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second) // processing..
		w.WriteHeader(200)
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	})
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	log.Println("listening on :3335")
	log.Fatal(http.ListenAndServe(":3335", r))
}
