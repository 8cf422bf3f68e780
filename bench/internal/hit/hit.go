// Package hit holds the hit-path benchmarks: a stored response replayed by a middleware (stampede, or a
// peer: the floor, go-chi/stampede), beside the bare handler writing the same bytes, and a cached key read
// through a function API (Do), for the benchmark binary (testing.Benchmark) and for go test -bench.
package hit

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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
		BenchBehind(size, c.Handler, c.Wait, func(rec *httptest.ResponseRecorder) error {
			if got := rec.Header().Get("X-Cache"); got != "HIT" {
				return fmt.Errorf("X-Cache %q, want HIT", got)
			}
			return nil
		})(b)
	}
}

// BenchBehind measures a hit through the middleware mw in front of the bare handler: one request before
// the timer starts records the response (settle, when not nil, then waits for what the middleware does
// after answering, such as a background store write), and a second one must be served with the bare
// handler's body without running it, and pass check when it is not nil. The benchmark fails if the
// handler runs while it is timed: every measured request is a hit. mw may be reused between calls.
func BenchBehind(size int, mw func(http.Handler) http.Handler, settle func(), check func(*httptest.ResponseRecorder) error) func(b *testing.B) {
	return func(b *testing.B) {
		var runs atomic.Int64
		bare := Bare(size)
		h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			runs.Add(1)
			bare.ServeHTTP(w, r)
		}))
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/bench?id=42", nil))
		if settle != nil {
			settle()
		}
		primed := runs.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/bench?id=42", nil))
		if runs.Load() != primed || rec.Code != http.StatusOK || rec.Body.Len() != size ||
			rec.Header().Get("Content-Type") != "application/json" {
			b.Fatalf("after the response was recorded: handler ran %d more time(s), status %d, body %d bytes, Content-Type %q; want a hit: 0, 200, %d, application/json",
				runs.Load()-primed, rec.Code, rec.Body.Len(), rec.Header().Get("Content-Type"), size)
		}
		if check != nil {
			if err := check(rec); err != nil {
				b.Fatalf("after the response was recorded: %v", err)
			}
		}
		b.ResetTimer()
		runParallel(b, h)
		b.StopTimer()
		if n := runs.Load() - primed; n != 0 {
			b.Fatalf("the handler ran %d times during the benchmark: not every request was a hit", n)
		}
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
