package hit

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// DoKey is the key the function-API benchmarks read.
const DoKey = "item:42"

// DoValue is the value the function-API benchmarks' load returns: 1 KiB.
var DoValue = bytes.Repeat([]byte("x"), 1<<10)

// DoFunc is a function cache's Do bound to its load: the value of key, from the cache or from one run
// of load.
type DoFunc func(ctx context.Context, key string) ([]byte, error)

// Loader returns the load function the Do variants are built with and the count of its runs.
func Loader() (func() ([]byte, error), *atomic.Int64) {
	var runs atomic.Int64
	return func() ([]byte, error) {
		runs.Add(1)
		return DoValue, nil
	}, &runs
}

// BenchDo measures do on a warm key: one call before the timer starts loads DoKey, and the benchmark
// fails if load (whose runs are counted by runs) runs again or a call returns another value.
func BenchDo(do DoFunc, runs *atomic.Int64) func(b *testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		if v, err := do(ctx, DoKey); err != nil || len(v) != len(DoValue) {
			b.Fatalf("first Do: %d bytes, %v", len(v), err)
		}
		warm := runs.Load()
		b.ReportAllocs()
		b.ResetTimer()
		var wrong atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v, err := do(ctx, DoKey); err != nil || len(v) != len(DoValue) {
					wrong.Add(1)
				}
			}
		})
		b.StopTimer()
		if n := runs.Load() - warm; n != 0 || wrong.Load() != 0 {
			b.Fatalf("on a warm key: load ran %d more time(s), %d calls failed", n, wrong.Load())
		}
	}
}

// StampedeDo returns stampede's Do on a memstore.Values with a coarse clock (1 ms: an entry may expire
// up to that much late), bound to load, and the function that stops the store's goroutines.
func StampedeDo(ttl time.Duration, load func() ([]byte, error)) (DoFunc, func()) {
	clock := otter.NewCoarseClock(time.Millisecond)
	values, err := memstore.NewValues[[]byte](1000, memstore.WithClock(clock))
	if err != nil {
		panic(err)
	}
	return StampedeDoOn(values, ttl, load), func() {
		values.Close()
		clock.Stop()
	}
}

// StampedeDoOn returns stampede's Do on store, bound to load:
// NewStampede[[]byte](logger, store, WithTTL(ttl)).Do(ctx, key, load).
func StampedeDoOn(store stampede.ValueStore[[]byte], ttl time.Duration, load func() ([]byte, error)) DoFunc {
	s := stampede.NewStampede(slog.New(slog.DiscardHandler), store, stampede.WithTTL(ttl))
	fn := func() ([]byte, *time.Duration, error) {
		v, err := load()
		return v, nil, err
	}
	return func(ctx context.Context, key string) ([]byte, error) { return s.Do(ctx, key, fn) }
}
