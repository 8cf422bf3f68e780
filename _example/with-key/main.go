// Command with-key caches per tenant on one route with chi's r.With: the tenant id (from a header here;
// from a verified token in a real service) is part of the key, so tenants never see each other's data.
// Requests without a tenant pass through uncached.
package main

import (
	"errors"
	"fmt"
	"log"
	"net/http"
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
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	log.Println("listening on :3335")
	log.Fatal(http.ListenAndServe(":3335", r))
}
