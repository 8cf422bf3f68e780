package bench

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/viccon/sturdyc"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/bench/internal/floor"
)

// The function API beside its peers (issue 19 item 4): stampede's Loader (int64 keys, its own
// in-process tier) and Do (string keys, memstore.Values), otter v2's Get and BulkGet with a loader,
// sturdyc's GetOrFetch and GetOrFetchBatch (string keys: it has no other kind), and the floor
// (floor.Typed: a sync.Map and x/sync/singleflight). Every benchmark runs on one goroutine, so that
// scripts/callgrind.sh can count its instructions; ns/op ratios are quoted from one run.

// funcKeySpace bounds the keys any of these benchmarks asks for; string-keyed contenders get their
// keys from a table built once, so no benchmark times a strconv.
const funcKeySpace = 1 << 18

var funcKeyStrings = sync.OnceValue(func() []string {
	s := make([]string, funcKeySpace)
	for i := range s {
		s[i] = "item:" + strconv.Itoa(i)
	}
	return s
})

// funcValue is every value loaded.
var funcValue = []byte("a value of some thirty-two bytes")

// contender is one function cache under test, built for at most size entries.
type contender struct {
	get func(ctx context.Context, k int64) ([]byte, error)
	// getMany is nil for a contender without a batch call (Do).
	getMany func(ctx context.Context, ks []int64) (map[int64][]byte, error)
	close   func()
}

// loadCounter counts loads: one per key a single-key load is asked for, one per key of a batch.
type loadCounter struct {
	n     atomic.Int64
	delay time.Duration
}

func (c *loadCounter) one(_ context.Context, _ int64) ([]byte, error) {
	c.n.Add(1)
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	return funcValue, nil
}

func (c *loadCounter) many(_ context.Context, ks []int64) (map[int64][]byte, error) {
	c.n.Add(int64(len(ks)))
	if c.delay > 0 {
		time.Sleep(c.delay)
	}
	m := make(map[int64][]byte, len(ks))
	for _, k := range ks {
		m[k] = funcValue
	}
	return m, nil
}

var contenders = []struct {
	name string
	make func(tb testing.TB, size int, lc *loadCounter) contender
}{
	{"stampede-loader", func(tb testing.TB, size int, lc *loadCounter) contender {
		l := stampede.NewLoader("bench", lc.one, stampede.WithTTL(time.Hour), stampede.WithLocalEntries(size),
			stampede.WithBatchLoad(lc.many))
		return contender{get: l.Get, getMany: l.GetMany, close: l.Close}
	}},
	{"stampede-do", func(tb testing.TB, size int, lc *loadCounter) contender {
		vs, err := memstore.NewValues[[]byte](size)
		if err != nil {
			tb.Fatal(err)
		}
		s := stampede.NewStampede(nil, vs, stampede.WithTTL(time.Hour))
		strs := funcKeyStrings()
		return contender{
			get: func(ctx context.Context, k int64) ([]byte, error) {
				return s.Do(ctx, strs[k], func() ([]byte, *time.Duration, error) {
					v, err := lc.one(ctx, k)
					return v, nil, err
				})
			},
			close: func() { s.Wait(); vs.Close() },
		}
	}},
	{"otter", func(tb testing.TB, size int, lc *loadCounter) contender {
		c := otter.Must(&otter.Options[int64, []byte]{MaximumSize: size, ExpiryCalculator: otter.ExpiryWriting[int64, []byte](time.Hour)})
		one, many := otter.LoaderFunc[int64, []byte](lc.one), otter.BulkLoaderFunc[int64, []byte](lc.many)
		return contender{
			get:     func(ctx context.Context, k int64) ([]byte, error) { return c.Get(ctx, k, one) },
			getMany: func(ctx context.Context, ks []int64) (map[int64][]byte, error) { return c.BulkGet(ctx, ks, many) },
			close:   func() { c.StopAllGoroutines() },
		}
	}},
	{"sturdyc", func(tb testing.TB, size int, lc *loadCounter) contender {
		c := sturdyc.New[[]byte](size, 8, time.Hour, 10)
		strs := funcKeyStrings()
		ids := func(ks []int64) []string {
			s := make([]string, len(ks))
			for i, k := range ks {
				s[i] = strconv.FormatInt(k, 10)
			}
			return s
		}
		keyFn := c.BatchKeyFn("item")
		return contender{
			get: func(ctx context.Context, k int64) ([]byte, error) {
				return c.GetOrFetch(ctx, strs[k], func(ctx context.Context) ([]byte, error) { return lc.one(ctx, k) })
			},
			getMany: func(ctx context.Context, ks []int64) (map[int64][]byte, error) {
				got, err := c.GetOrFetchBatch(ctx, ids(ks), keyFn, func(ctx context.Context, missing []string) (map[string][]byte, error) {
					lc.n.Add(int64(len(missing)))
					m := make(map[string][]byte, len(missing))
					for _, id := range missing {
						m[id] = funcValue
					}
					return m, nil
				})
				out := make(map[int64][]byte, len(got))
				for id, v := range got {
					k, _ := strconv.ParseInt(id, 10, 64)
					out[k] = v
				}
				return out, err
			},
			close: func() {},
		}
	}},
	{"floor", func(tb testing.TB, size int, lc *loadCounter) contender {
		var f floor.Typed[[]byte]
		return contender{
			get:     func(ctx context.Context, k int64) ([]byte, error) { return f.Get(ctx, k, lc.one) },
			getMany: func(ctx context.Context, ks []int64) (map[int64][]byte, error) { return f.GetMany(ctx, ks, lc.many) },
			close:   func() {},
		}
	}},
}

// quietSetUp turns the collector off for a benchmark's set-up; the function it returns collects the
// set-up's garbage at once and turns the collector back on, before the timed loop. So no collection
// starts in the middle of the set-up (where, with 65,536 loads on goroutines, it landed differently
// in two runs and left millions of instructions between them that scripts/callgrind.sh cannot
// cancel), and the loop still pays for the collections its own allocations cause.
func quietSetUp() (end func()) {
	old := debug.SetGCPercent(-1)
	return func() {
		runtime.GC()
		debug.SetGCPercent(old)
	}
}

// BenchmarkFuncHit reads keys that are all cached, cycling through 1,024 or 65,536 of them (each
// contender holds twice as many), one call per op: the hit path of the function API.
func BenchmarkFuncHit(b *testing.B) {
	for _, c := range contenders {
		for _, n := range []int{1 << 10, 1 << 16} {
			b.Run(fmt.Sprintf("%s/keys=%d", c.name, n), func(b *testing.B) {
				var lc loadCounter
				endSetUp := quietSetUp()
				ct := c.make(b, 2*n, &lc)
				defer ct.close()
				ctx := context.Background()
				for k := range int64(n) {
					if _, err := ct.get(ctx, k); err != nil {
						b.Fatal(err)
					}
				}
				loads := lc.n.Load()
				mask := int64(n - 1)
				endSetUp()
				b.ReportAllocs()
				b.ResetTimer()
				var i int64
				for b.Loop() {
					if v, err := ct.get(ctx, i&mask); err != nil || len(v) != len(funcValue) {
						b.Fatalf("%q, %v", v, err)
					}
					i++
				}
				if lc.n.Load() != loads {
					b.Fatalf("%d loads on hits", lc.n.Load()-loads)
				}
			})
		}
	}
}

// BenchmarkFuncGetMany asks for 100 keys per op, 80 of them cached (the same 80 every op) and 20 never
// asked for before (loaded with one batch load where the contender has one); each contender holds
// 4,096 entries, so the fresh keys of earlier ops are evicted in time.
func BenchmarkFuncGetMany(b *testing.B) {
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			var lc loadCounter
			endSetUp := quietSetUp()
			ct := c.make(b, 4096, &lc)
			defer ct.close()
			if ct.getMany == nil {
				endSetUp()
				b.Skip("no batch call")
			}
			ctx := context.Background()
			keys := make([]int64, 100)
			for i := range 80 {
				keys[i] = int64(i)
			}
			if _, err := ct.getMany(ctx, keys[:80]); err != nil {
				b.Fatal(err)
			}
			next := int64(80)
			endSetUp()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i := 80; i < 100; i++ {
					keys[i] = next
					if next++; next == funcKeySpace {
						next = 80
					}
				}
				if m, err := ct.getMany(ctx, keys); err != nil || len(m) != 100 {
					b.Fatalf("%d values, %v", len(m), err)
				}
			}
		})
	}
}

// BenchmarkFuncMissStorm is, per op, one storm on an empty cache: 10,000 goroutines released at once,
// each asking for 4 of 10,125 keys (40,000 calls), every load sleeping 20µs. It reports the process CPU
// time per storm (cpu-ms/op: the loads sleep, so nearly all of it is the cache's and the scheduler's)
// and the loads beyond one per key (dup-loads/op).
func BenchmarkFuncMissStorm(b *testing.B) {
	const goroutines, keys, calls = 10_000, 10_125, 4
	for _, c := range contenders {
		b.Run(c.name, func(b *testing.B) {
			var cpu time.Duration
			var dups int64
			for b.Loop() {
				lc := loadCounter{delay: 20 * time.Microsecond}
				ct := c.make(b, 2*keys, &lc)
				start := make(chan struct{})
				var wg sync.WaitGroup
				var failed atomic.Int64
				for g := range goroutines {
					wg.Go(func() {
						<-start
						ctx := context.Background()
						for j := range calls {
							if _, err := ct.get(ctx, int64((g+j*2531)%keys)); err != nil {
								failed.Add(1)
							}
						}
					})
				}
				before := processCPU()
				close(start)
				wg.Wait()
				cpu += processCPU() - before
				ct.close()
				if failed.Load() > 0 {
					b.Fatalf("%d calls failed", failed.Load())
				}
				dups += lc.n.Load() - keys
			}
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(dups)/float64(b.N), "dup-loads/op")
		})
	}
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
