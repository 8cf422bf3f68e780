package suite

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path"
	"sync"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/bench/internal/floor"
	"github.com/seed-a1426414/stampede/bench/internal/peers"
)

// wrkPeerRoutes are the peer server's routes in the order wrk runs them (then in reverse): the bare
// route first.
func wrkPeerRoutes() []string {
	routes := []string{wrkBare, wrkFloor}
	if peers.GoChiLinked() {
		routes = append(routes, wrkGoChi)
	}
	return append(routes, wrkStampede)
}

// serveWrkPeers is the child process of the peer wrk runs: on a free loopback port, which it prints, it
// serves /bare/{id}, which writes a Content-Type and "slow report for {id}\n" as _example/simple's /bare
// does, and the same handler behind each peer at /floor/{id}, /gochi/{id} (when go-chi/stampede is
// compiled in) and /stampede/{id} (memory store), all with an hour's TTL, and /runs/{route}/{id}, the
// handler runs of a route's path, until its standard input closes. One http.ServeMux routes them all,
// so routing costs every route the same.
func serveWrkPeers() {
	var mu sync.Mutex
	runs := map[string]int64{} // handler runs per path
	report := func(w http.ResponseWriter, id string) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = fmt.Fprintf(w, "slow report for %s\n", id)
	}
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		runs[r.URL.Path]++
		mu.Unlock()
		report(w, path.Base(r.URL.Path))
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /bare/{id}", func(w http.ResponseWriter, r *http.Request) { report(w, r.PathValue("id")) })
	mux.Handle("GET /floor/{id}", floor.New().Handler(origin))
	if mw, _ := peers.GoChiMiddleware(time.Hour); mw != nil {
		mux.Handle("GET /gochi/{id}", mw(origin))
	}
	store, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("GET /stampede/{id}", stampede.New(nil, store, time.Hour).Handler(origin))
	mux.HandleFunc("GET /runs/{route}/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n := runs["/"+r.PathValue("route")+"/"+r.PathValue("id")]
		mu.Unlock()
		fmt.Fprintln(w, n)
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
}
