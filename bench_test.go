package stampede_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
		b.Run(fmt.Sprintf("memstore-hit-no-xcache/%dB", size), func(b *testing.B) {
			c := stampede.New(nil, newMem(b), time.Hour, stampede.WithoutXCache())
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

// BenchmarkCoalesce10k measures what coalescing adds for 10,000 waiters on one key. Each op releases
// 10,000 goroutines at once and times until all have their response. "coalesced": they all wait on one
// run of a handler that returns at once, so the time is waking and replaying to all of them.
// "bare-10k": the same 10,000 goroutines run the bare handler themselves: the cost of producing 10,000
// responses at all on this machine. The difference is what coalescing adds.
func BenchmarkCoalesce10k(b *testing.B) {
	const waiters = 10_000
	body := bytes.Repeat([]byte("x"), 1<<10)
	burst := func(b *testing.B, build func(gate chan struct{}) http.Handler, gateInside bool) {
		for b.Loop() {
			b.StopTimer()
			gate := make(chan struct{})
			h := build(gate)
			var ready, done sync.WaitGroup
			ready.Add(waiters)
			done.Add(waiters)
			for range waiters {
				go func() {
					req := httptest.NewRequest("GET", "/hot", nil)
					ready.Done()
					if !gateInside {
						<-gate
					}
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
	b.Run("bare-10k", func(b *testing.B) {
		burst(b, func(chan struct{}) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
		}, false)
	})
	b.Run("coalesced", func(b *testing.B) {
		burst(b, func(gate chan struct{}) http.Handler {
			return stampede.New(nil, nil, 0).Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				<-gate
				_, _ = w.Write(body)
			}))
		}, true)
	})
}

// downStore is a store that is down: every call fails at once.
type downStore struct{}

var errDown = errors.New("store down")

func (downStore) Get(context.Context, string) ([]byte, bool, error)          { return nil, false, errDown }
func (downStore) SetEx(context.Context, string, []byte, time.Duration) error { return errDown }
func (downStore) Delete(context.Context, string) error                       { return errDown }

// BenchmarkBreakerOpen compares a request while the circuit breaker skips a dead store with a request
// through the middleware with no store at all, in the same run: both run the handler every time.
func BenchmarkBreakerOpen(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	b.Run("no-store", func(b *testing.B) { runParallel(b, stampede.New(nil, nil, 0).Handler(h)) })
	b.Run("breaker-open", func(b *testing.B) {
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		c := stampede.New(quiet, downStore{}, time.Minute, stampede.WithCircuitBreaker(1, time.Hour),
			stampede.WithClock(steppingClock(time.Second))) // a failure lasts past the breaker's minimum span
		mw := c.Handler(h)
		mw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/bench?id=42", nil)) // opens it
		c.Wait()
		if !c.Snapshot().BreakerOpen {
			b.Fatal("breaker did not open")
		}
		runParallel(b, mw)
	})
}
