// Package hit holds the hit-path benchmarks: a stored response replayed by the middleware, beside the
// bare handler writing the same bytes, for the benchmark binary (testing.Benchmark) and for go test -bench.
package hit

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// Sizes are the body sizes benchmarked.
var Sizes = []int{0, 1 << 10, 64 << 10}

// Bare returns the baseline handler: it writes Content-Type and a body of size bytes.
func Bare(size int) http.Handler {
	body := bytes.Repeat([]byte("x"), size)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// BenchBare measures the bare handler.
func BenchBare(size int) func(b *testing.B) {
	return func(b *testing.B) { runParallel(b, Bare(size)) }
}

// BenchStored measures a stored hit: the bare handler behind stampede with store, its response stored
// by one request before the timer starts. Every measured request is a hit. A store shared between
// sizes must keep them apart (a key prefix per size): the request path is the same.
func BenchStored(size int, store stampede.Store) func(b *testing.B) {
	return func(b *testing.B) {
		c := stampede.New(nil, store, time.Hour)
		h := c.Handler(Bare(size))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/bench?id=42", nil))
		c.Wait()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/bench?id=42", nil))
		if got := rec.Header().Get("X-Cache"); got != "HIT" || rec.Body.Len() != size {
			b.Fatalf("after the response was stored: X-Cache %q, body %d bytes; want HIT, %d", got, rec.Body.Len(), size)
		}
		b.ResetTimer()
		runParallel(b, h)
	}
}

func runParallel(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodGet, "/bench?id=42", nil)
		for pb.Next() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}
