package stampede_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// BenchmarkHit compares a stored hit with the bare handler writing the same body, in one run, so the
// ratio is what to quote. Both write Content-Type and the body to an httptest.ResponseRecorder.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{0, 1 << 10, 64 << 10} {
		body := bytes.Repeat([]byte("x"), size)
		bare := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
		b.Run(fmt.Sprintf("bare/%dB", size), func(b *testing.B) { runParallel(b, bare) })
		b.Run(fmt.Sprintf("memstore-hit/%dB", size), func(b *testing.B) {
			c := stampede.New(nil, newMem(b), time.Hour)
			h := c.Handler(bare)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/bench?id=42", nil))
			c.Wait()
			runParallel(b, h)
		})
	}
}

func runParallel(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/bench?id=42", nil)
		for pb.Next() {
			h.ServeHTTP(httptest.NewRecorder(), req)
		}
	})
}

// BenchmarkCoalesce10k measures what coalescing adds for 10,000 waiters on one key: each op is one
// cold key requested by 10,000 goroutines at once, with a handler that returns at once, so the time per
// op is the coalescing overhead (joining, waking and replaying to all of them).
func BenchmarkCoalesce10k(b *testing.B) {
	const waiters = 10_000
	body := bytes.Repeat([]byte("x"), 1<<10)
	for b.Loop() {
		b.StopTimer()
		gate := make(chan struct{})
		c := stampede.New(nil, nil, 0)
		h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			<-gate
			_, _ = w.Write(body)
		}))
		var ready, done sync.WaitGroup
		ready.Add(waiters)
		done.Add(waiters)
		for range waiters {
			go func() {
				req := httptest.NewRequest("GET", "/hot", nil)
				ready.Done()
				h.ServeHTTP(httptest.NewRecorder(), req)
				done.Done()
			}()
		}
		ready.Wait()
		b.StartTimer()
		close(gate)
		done.Wait()
	}
}
