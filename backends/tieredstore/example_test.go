package tieredstore_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// Two replicas, each with a memory tier of its own (L1) in front of one shared store (L2). L2 is a
// memstore here so that the example needs no server; in production it is backends/redisstore, which
// also announces deletions, so that a purge on one replica clears every replica's L1. Replica 1's first
// request finds replica 0's response in L2 and copies it into its own L1, which answers the second.
func Example() {
	l2, err := memstore.New(64 << 20) // stands in for redisstore.New(client)
	if err != nil {
		panic(err)
	}
	defer l2.Close()

	var runs atomic.Int64
	report := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		fmt.Fprint(w, "report")
	})
	type replica struct {
		l1    *memstore.Store
		cache *stampede.Cache
	}
	var replicas []replica
	for range 2 {
		l1, err := memstore.New(8 << 20)
		if err != nil {
			panic(err)
		}
		defer l1.Close()
		store := tieredstore.New(l1, l2, tieredstore.WithL1TTL(5*time.Second))
		defer store.Close()
		replicas = append(replicas, replica{l1, stampede.New(nil, store, time.Minute)})
	}

	for _, i := range []int{0, 1, 1} {
		rep := replicas[i]
		before := rep.l1.Len()
		rec := httptest.NewRecorder()
		rep.cache.Handler(report).ServeHTTP(rec, httptest.NewRequest("GET", "/report", nil))
		rep.cache.Wait() // let the store write finish, so the next request is a hit
		fmt.Printf("replica %d: %s %s (entries in its L1: %d, then %d)\n",
			i, rec.Header().Get("X-Cache"), rec.Body.String(), before, rep.l1.Len())
	}
	fmt.Println("handler runs:", runs.Load(), "entries in L2:", l2.Len())
	// Output:
	// replica 0: MISS report (entries in its L1: 0, then 1)
	// replica 1: HIT report (entries in its L1: 0, then 1)
	// replica 1: HIT report (entries in its L1: 1, then 1)
	// handler runs: 1 entries in L2: 1
}
