package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	cachestore "github.com/goware/cachestore2"

	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/bench/internal/floor"
	"github.com/seed-a1426414/stampede/bench/internal/hit"
	"github.com/seed-a1426414/stampede/bench/internal/peers"
	"github.com/seed-a1426414/stampede/bench/internal/redisproc"
)

// redisAddr is the Redis the hit benchmarks use; "" when none could be had.
var redisAddr string

func TestMain(m *testing.M) {
	var srv *redisproc.Server
	redisAddr = os.Getenv("STAMPEDE_BENCH_REDIS")
	if redisAddr == "" {
		var err error
		if srv, err = redisproc.Start(); err != nil {
			fmt.Fprintf(os.Stderr, "no Redis for the Redis benchmarks: %v\n", err)
		} else {
			redisAddr = srv.Addr
		}
	}
	code := m.Run()
	if srv != nil {
		srv.Stop()
	}
	os.Exit(code)
}

// BenchmarkHit replays a stored response from each store and from the floor beside the bare handler
// writing the same bytes, in one run, so the ratios are what to quote. go-chi/stampede is measured by
// cmd/bench -gochi DIR only: the bench module does not import it.
func BenchmarkHit(b *testing.B) {
	for _, size := range hit.Sizes {
		b.Run(fmt.Sprintf("bare/%dB", size), hit.BenchBare(size))
		b.Run(fmt.Sprintf("floor/%dB", size), func(b *testing.B) {
			hit.BenchBehind(size, floor.New().Handler, nil, nil)(b)
		})
		b.Run(fmt.Sprintf("memstore/%dB", size), func(b *testing.B) {
			s, err := memstore.New(64 << 20)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			hit.BenchStored(size, s)(b)
		})
		b.Run(fmt.Sprintf("redisstore/%dB", size), func(b *testing.B) {
			if redisAddr == "" {
				b.Skip("no Redis: set STAMPEDE_BENCH_REDIS or install redis-server")
			}
			c := redisproc.NewClient(redisAddr, 0, time.Second)
			defer c.Close()
			hit.BenchStored(size, redisstore.New(c, redisstore.WithTimeout(time.Second), redisstore.WithKeyPrefix(fmt.Sprintf("bench-hit-%d:", size))))(b)
		})
	}
}

// BenchmarkDo reads a cached key through a function cache's Do: the floor (singleflight + otter),
// stampede's Do on memstore.Values and on the stand-in map store go-chi's Do is measured on (go-chi's
// own Do is measured by cmd/bench -gochi DIR), in one run.
func BenchmarkDo(b *testing.B) {
	b.Run("floor", func(b *testing.B) {
		load, runs := hit.Loader()
		f := floor.NewFunc[[]byte](1000, time.Hour)
		hit.BenchDo(func(ctx context.Context, key string) ([]byte, error) { return f.Do(ctx, key, load) }, runs)(b)
	})
	b.Run("stampede-values", func(b *testing.B) {
		load, runs := hit.Loader()
		do, stop := hit.StampedeDo(time.Hour, load)
		defer stop()
		hit.BenchDo(do, runs)(b)
	})
	b.Run("stampede-mapstore", func(b *testing.B) {
		load, runs := hit.Loader()
		hit.BenchDo(hit.StampedeDoOn(cachestore.OpenStore[[]byte](peers.NewMapStore()), time.Hour, load), runs)(b)
	})
}
