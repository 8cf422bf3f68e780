package stampede_test

// This file checks that the bookkeeping a client can grow is bounded (docs/behaviour.md §7.5,
// SECURITY.md): a flood of one-off URLs through the middleware grows the heap by at most a documented
// constant beyond the store's budget.

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

const (
	// floodStoreBudget is the memory store's budget in the flood.
	floodStoreBudget = 1 << 20
	// floodHeapBound is the documented bound on heap growth beyond the store's budget after a flood of
	// one-off URLs (SECURITY.md): the doorkeeper's sketch (1 MiB), hit-for-pass (at most 32,768 keys),
	// the key memo (8,192 slots), the in-process tag index (at most 100,000 tag-key pairs).
	floodHeapBound = 48 << 20
)

// discardRW is a ResponseWriter that keeps nothing but its header.
type discardRW struct{ h http.Header }

func (d *discardRW) Header() http.Header         { return d.h }
func (d *discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardRW) WriteHeader(int)             {}

// floodHeapGrowth sends n requests for distinct URLs through a cache with a 1 MiB memory store and
// returns how much the live heap grew (after GC) beyond what it was after a warm-up. Every fourth
// response is private (a hit-for-pass entry), the others are public and tagged (a tag index pair each,
// when stored), every eighth varies (a Vary index). minUses > 1 turns the doorkeeper on.
func floodHeapGrowth(tb testing.TB, n, minUses int) int64 {
	store, err := memstore.New(floodStoreBudget)
	if err != nil {
		tb.Fatal(err)
	}
	defer store.Close()
	opts := []stampede.Option{}
	if minUses > 1 {
		opts = append(opts, stampede.WithMinUses(minUses, time.Minute))
	}
	c := stampede.New(slog.New(slog.DiscardHandler), store, time.Minute, opts...)
	defer c.Close()
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Query().Get("i"))
		switch {
		case i%4 == 0:
			w.Header().Set("Cache-Control", "private")
		case i%8 == 1:
			w.Header().Set("Vary", "Accept")
		}
		w.Header().Set("Cache-Tag", "item-"+strconv.Itoa(i)+" all")
		_, _ = w.Write([]byte("one-off page"))
	}))
	req := &http.Request{Method: http.MethodGet, Host: "flood.example", Header: http.Header{"Accept": {"text/html"}},
		URL: &url.URL{Path: "/items"}, Body: http.NoBody}
	serve := func(i int) {
		r := *req
		u := *req.URL
		u.RawQuery = "i=" + strconv.Itoa(i)
		r.URL = &u
		h.ServeHTTP(&discardRW{h: http.Header{}}, &r)
	}
	heap := func() int64 {
		c.Wait()
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	for i := range 10_000 {
		serve(-1 - i)
	}
	before := heap()
	for i := range n {
		serve(i)
	}
	after := heap()
	runtime.KeepAlive(h)
	return after - before
}

// TestFloodBookkeeping: 1,000,000 one-off URLs (a quarter of them unshareable, the rest tagged, some
// varying) grow the live heap by less than floodHeapBound, with and without the doorkeeper.
func TestFloodBookkeeping(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("a million requests: not under -short or -race")
	}
	for _, minUses := range []int{1, 2} {
		t.Run(fmt.Sprintf("min uses %d", minUses), func(t *testing.T) {
			grown := floodHeapGrowth(t, 1_000_000, minUses)
			t.Logf("heap grew by %.1f MiB (store budget %d MiB, bound %d MiB beyond it)",
				float64(grown)/(1<<20), floodStoreBudget>>20, floodHeapBound>>20)
			if grown > floodStoreBudget+floodHeapBound {
				t.Fatalf("heap grew by %d bytes, more than the store's budget plus %d", grown, floodHeapBound)
			}
		})
	}
}

// BenchmarkFloodHeap reports the heap growth of the flood TestFloodBookkeeping bounds, as heap-MiB (one
// flood of 1,000,000 URLs per op).
func BenchmarkFloodHeap(b *testing.B) {
	for _, minUses := range []int{1, 2} {
		b.Run(fmt.Sprintf("min-uses=%d", minUses), func(b *testing.B) {
			var grown int64
			for b.Loop() {
				grown = floodHeapGrowth(b, 1_000_000, minUses)
			}
			b.ReportMetric(float64(grown)/(1<<20), "heap-MiB")
		})
	}
}
