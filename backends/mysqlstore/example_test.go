package mysqlstore_test

import (
	"context"
	"database/sql"
	"log"
	"net/http"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/mysqlstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// A cache shared by the replicas of a service that has MySQL or MariaDB and no Redis, with a memory
// tier in front of it. (Not run by go test: it needs a server.)
func Example() {
	// timeout, readTimeout and writeTimeout keep a dead server from holding a connection for long;
	// each call is also bounded by the store's own timeout.
	db, err := sql.Open("mysql", "app:secret@tcp(db:3306)/app?timeout=1s&readTimeout=1s&writeTimeout=1s")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	my, err := mysqlstore.New(db, mysqlstore.WithTablePrefix("myapp_cache_"), mysqlstore.WithMaxRows(500_000))
	if err != nil {
		log.Fatal(err)
	}
	defer my.Close()
	if err := my.Migrate(context.Background()); err != nil {
		log.Fatal(err)
	}
	mem, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	store := tieredstore.New(mem, my)
	defer store.Close()

	cache := stampede.New(nil, store, time.Minute)
	mux := http.NewServeMux()
	mux.Handle("/reports/", cache.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("an expensive report"))
	})))
	log.Fatal(http.ListenAndServe(":8080", mux))
}
