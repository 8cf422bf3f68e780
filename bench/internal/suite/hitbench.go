package suite

import (
	"context"
	"fmt"
	"log"
	"slices"
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

// The hit-path variants, in report order.
const (
	hitBare  = "bare handler"
	hitFloor = "floor (singleflight + sync.Map)"
	hitGoChi = "go-chi/stampede (stand-in map store)"
	hitMem   = "memory store hit"
	hitRedis = "Redis store hit"
)

// hitRow is the medians of one variant at one body size over the rounds.
type hitRow struct {
	variant     string
	size        int
	nsPerOp     float64
	bytesPerOp  float64
	allocsPerOp float64
	rounds      []float64 // ns/op of each round, for the log
	// ratio is the median over the rounds of this variant's ns/op over the bare handler's in the same
	// round, and ratioMin, ratioMax their range: measured minutes apart, medians of each would drift
	// apart on a shared machine, while a round's pair ran seconds apart.
	ratio, ratioMin, ratioMax float64
}

func hitVariants(o options) []string {
	variants := []string{hitBare, hitFloor}
	if peers.GoChiLinked() {
		variants = append(variants, hitGoChi)
	}
	variants = append(variants, hitMem)
	if o.redis != "" {
		variants = append(variants, hitRedis)
	}
	return variants
}

func runHits(o options) []hitRow {
	variants := hitVariants(o)
	var redisStores map[int]*redisstore.Store
	if o.redis != "" {
		client := redisproc.NewClient(o.redis, o.redisPool, time.Second)
		defer client.Close()
		redisStores = map[int]*redisstore.Store{}
		for _, size := range hit.Sizes {
			// Each size its own prefix: the request path is the same for all of them.
			redisStores[size] = redisstore.New(client, redisstore.WithTimeout(time.Second),
				redisstore.WithKeyPrefix(fmt.Sprintf("stampede-bench-hit:%d:%d:", time.Now().UnixNano(), size)))
		}
	}
	var cases []benchCase
	for _, size := range hit.Sizes {
		for _, v := range variants {
			cases = append(cases, benchCase{variant: v, size: size, bench: func() (func(*testing.B), func()) {
				// Each round and size gets a middleware and store of its own: the request path is the
				// same for every size.
				switch v {
				case hitBare:
					return hit.BenchBare(size), nil
				case hitFloor:
					return hit.BenchBehind(size, floor.New().Handler, nil, nil), nil
				case hitGoChi:
					mw, _ := peers.GoChiMiddleware(time.Hour)
					return hit.BenchBehind(size, mw, nil, nil), nil
				case hitMem:
					s, err := memstore.New(64 << 20)
					if err != nil {
						log.Fatal(err)
					}
					return hit.BenchStored(size, s), s.Close
				case hitRedis:
					return hit.BenchStored(size, redisStores[size]), nil
				}
				panic("unknown hit variant " + v)
			}})
		}
	}
	samples := runRounds("hit", o.hitRounds, cases)

	var rows []hitRow
	for _, size := range hit.Sizes {
		bare := samples[caseID(hitBare, size)]
		for _, v := range variants {
			rows = append(rows, summarize(v, size, samples[caseID(v, size)], bare))
		}
	}
	for _, r := range rows {
		log.Printf("hit: %-38s %6d B: %8.0f ns/op (rounds %.0f), × bare %.2f (%.2f–%.2f), %6.0f B/op, %3.0f allocs/op",
			r.variant, r.size, r.nsPerOp, r.rounds, r.ratio, r.ratioMin, r.ratioMax, r.bytesPerOp, r.allocsPerOp)
	}
	return rows
}

// The function-API variants: Do on a warm key. stampede's Do runs on the same stand-in map store as
// go-chi's (the like-for-like comparison) and on memstore.Values with a coarse clock (what a user
// would pick in memory, and the comparison with the floor).
const (
	doFloor        = "floor (singleflight + otter v2)"
	doGoChi        = "go-chi/stampede Do (stand-in map store)"
	doStampede     = "stampede Do (memstore.Values)"
	doStampedeMaps = "stampede Do (stand-in map store)"
)

func doVariants() []string {
	variants := []string{doFloor, doStampede, doStampedeMaps}
	if peers.GoChiLinked() {
		variants = append(variants, doGoChi)
	}
	return variants
}

// runDo measures Do on a cached key for each function cache, in interleaved rounds like the hit path;
// ratios are to the floor.
func runDo(o options) []hitRow {
	variants := doVariants()
	var cases []benchCase
	for _, v := range variants {
		cases = append(cases, benchCase{variant: v, size: len(hit.DoValue), bench: func() (func(*testing.B), func()) {
			load, runs := hit.Loader()
			var do hit.DoFunc
			switch v {
			case doFloor:
				f := floor.NewFunc[[]byte](1000, time.Hour)
				do = func(ctx context.Context, key string) ([]byte, error) { return f.Do(ctx, key, load) }
			case doGoChi:
				do = peers.GoChiDo(time.Hour, load)
			case doStampede:
				var stop func()
				do, stop = hit.StampedeDo(time.Hour, load)
				return hit.BenchDo(do, runs), stop
			case doStampedeMaps:
				do = hit.StampedeDoOn(cachestore.OpenStore[[]byte](peers.NewMapStore()), time.Hour, load)
			default:
				panic("unknown Do variant " + v)
			}
			return hit.BenchDo(do, runs), nil
		}})
	}
	samples := runRounds("do", o.hitRounds, cases)
	var rows []hitRow
	base := samples[caseID(doFloor, len(hit.DoValue))]
	for _, v := range variants {
		r := summarize(v, len(hit.DoValue), samples[caseID(v, len(hit.DoValue))], base)
		log.Printf("do: %-40s %8.0f ns/op (rounds %.0f), × floor %.2f (%.2f–%.2f), %6.0f B/op, %3.0f allocs/op",
			r.variant, r.nsPerOp, r.rounds, r.ratio, r.ratioMin, r.ratioMax, r.bytesPerOp, r.allocsPerOp)
		rows = append(rows, r)
	}
	return rows
}

// benchCase is one variant at one size; bench makes the benchmark function of one round, and the
// function to call after it (nil: nothing).
type benchCase struct {
	variant string
	size    int
	bench   func() (func(*testing.B), func())
}

type sample struct{ ns, bytes, allocs []float64 }

func caseID(v string, size int) string { return fmt.Sprintf("%s/%d", v, size) }

// runRounds runs every case once per round, in order: rounds interleave the cases, so a noisy
// neighbour slows them alike rather than one of them.
func runRounds(part string, rounds int, cases []benchCase) map[string]*sample {
	samples := map[string]*sample{}
	for round := range rounds {
		for _, c := range cases {
			log.Printf("%s: round %d/%d, %s, %d B", part, round+1, rounds, c.variant, c.size)
			fn, done := c.bench()
			r := testing.Benchmark(fn)
			if done != nil {
				done()
			}
			if r.N == 0 {
				log.Fatalf("%s: %s %d B failed", part, c.variant, c.size)
			}
			s := samples[caseID(c.variant, c.size)]
			if s == nil {
				s = &sample{}
				samples[caseID(c.variant, c.size)] = s
			}
			s.ns = append(s.ns, float64(r.T.Nanoseconds())/float64(r.N))
			s.bytes = append(s.bytes, float64(r.AllocedBytesPerOp()))
			s.allocs = append(s.allocs, float64(r.AllocsPerOp()))
		}
	}
	return samples
}

// summarize gives a case's medians and its ratio to base, the median of the per-round ratios.
func summarize(variant string, size int, s, base *sample) hitRow {
	ratios := make([]float64, len(s.ns))
	for i := range s.ns {
		ratios[i] = s.ns[i] / base.ns[i]
	}
	return hitRow{variant: variant, size: size, nsPerOp: median(s.ns), bytesPerOp: median(s.bytes),
		allocsPerOp: median(s.allocs), rounds: s.ns, ratio: median(ratios), ratioMin: slices.Min(ratios),
		ratioMax: slices.Max(ratios)}
}
