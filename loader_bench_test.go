package stampede_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

var benchValue = bytes.Repeat([]byte("x"), 1<<10)

// BenchmarkLoaderHit reads one warm key through a Loader: with Go values in memory (no encoding; the
// hit allocates nothing), with the encoded memory store (a decode per hit), and Stampede.Do on a
// memstore.Values, beside a bare otter look-up of the same value: the table the hits end in.
func BenchmarkLoaderHit(b *testing.B) {
	ctx := context.Background()
	load := func(context.Context, string) ([]byte, error) { return benchValue, nil }
	b.Run("otter", func(b *testing.B) {
		c := otter.Must(&otter.Options[string, []byte]{MaximumSize: 1000})
		c.Set("item:42", benchValue)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if v, ok := c.GetIfPresent("item:42"); !ok || len(v) != len(benchValue) {
					b.Error("miss")
				}
			}
		})
	})
	b.Run("values", func(b *testing.B) {
		l := stampede.NewLoader("bench", load, stampede.WithValues(newValues(b)), stampede.WithTTL(time.Hour))
		defer l.Close()
		benchGet(b, func() ([]byte, error) { return l.Get(ctx, "item:42") })
	})
	b.Run("memstore", func(b *testing.B) {
		l := stampede.NewLoader("bench", load, stampede.WithStore(newMem(b)), stampede.WithTTL(time.Hour))
		defer l.Close()
		benchGet(b, func() ([]byte, error) { return l.Get(ctx, "item:42") })
	})
	b.Run("do", func(b *testing.B) {
		clock := otter.NewCoarseClock(time.Millisecond)
		defer clock.Stop()
		vs, err := memstore.NewValues[[]byte](1000, memstore.WithClock(clock))
		if err != nil {
			b.Fatal(err)
		}
		defer vs.Close()
		s := stampede.NewStampede(nil, vs, stampede.WithTTL(time.Hour))
		fn := func() ([]byte, *time.Duration, error) { return benchValue, nil, nil }
		benchGet(b, func() ([]byte, error) { return s.Do(ctx, "item:42", fn) })
	})
}

func benchGet(b *testing.B, get func() ([]byte, error)) {
	if _, err := get(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if v, err := get(); err != nil || len(v) != len(benchValue) {
				b.Error("wrong value")
			}
		}
	})
}

// BenchmarkLoaderGetMany reads 100 warm keys with one GetMany from Redis: one MGET per op on a single
// node (reported as mget/op), beside 100 Gets of the same keys.
func BenchmarkLoaderGetMany(b *testing.B) {
	srv := redistest.Start(b)
	store := closing(b, redisstore.New(redisClient(b, srv.Addr(), 8), redisstore.WithTimeout(2*time.Second)))
	l := stampede.NewLoader("bench-many", func(_ context.Context, k int) (string, error) { return fmt.Sprint("v", k), nil },
		stampede.WithStore(store), stampede.WithTTL(time.Hour))
	defer l.Close()
	ctx := context.Background()
	keys := keyRange(1, 100)
	if _, err := l.GetMany(ctx, keys); err != nil {
		b.Fatal(err)
	}
	l.Wait()
	b.Run("GetMany-100", func(b *testing.B) {
		before := srv.CommandCalls(b, "mget")
		b.ReportAllocs()
		for b.Loop() {
			if m, err := l.GetMany(ctx, keys); err != nil || len(m) != 100 {
				b.Fatalf("%d values, %v", len(m), err)
			}
		}
		b.ReportMetric(float64(srv.CommandCalls(b, "mget")-before)/float64(b.N), "mget/op")
	})
	b.Run("Get-x100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, k := range keys {
				if _, err := l.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
