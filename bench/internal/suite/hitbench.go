package suite

import (
	"fmt"
	"log"
	"slices"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/bench/internal/hit"
	"github.com/seed-a1426414/stampede/bench/internal/redisproc"
)

// The hit-path variants, in report order.
const (
	hitBare  = "bare handler"
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

func runHits(o options) []hitRow {
	variants := []string{hitBare, hitMem}
	if o.redis != "" {
		variants = append(variants, hitRedis)
	}
	type sample struct{ ns, bytes, allocs []float64 }
	samples := map[string]*sample{}
	id := func(v string, size int) string { return fmt.Sprintf("%s/%d", v, size) }

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

	// Rounds interleave the variants, so a noisy neighbour slows them alike rather than one of them.
	for round := range o.hitRounds {
		for _, size := range hit.Sizes {
			for _, v := range variants {
				log.Printf("hit: round %d/%d, %s, %d B", round+1, o.hitRounds, v, size)
				var fn func(*testing.B)
				switch v {
				case hitBare:
					fn = hit.BenchBare(size)
				case hitMem:
					// A fresh memory store per size for the same reason as the Redis prefixes.
					s, err := memstore.New(64 << 20)
					if err != nil {
						log.Fatal(err)
					}
					defer s.Close()
					fn = hit.BenchStored(size, s)
				case hitRedis:
					fn = hit.BenchStored(size, redisStores[size])
				}
				r := testing.Benchmark(fn)
				if r.N == 0 {
					log.Fatalf("hit: %s %d B failed", v, size)
				}
				s := samples[id(v, size)]
				if s == nil {
					s = &sample{}
					samples[id(v, size)] = s
				}
				s.ns = append(s.ns, float64(r.T.Nanoseconds())/float64(r.N))
				s.bytes = append(s.bytes, float64(r.AllocedBytesPerOp()))
				s.allocs = append(s.allocs, float64(r.AllocsPerOp()))
			}
		}
	}

	var rows []hitRow
	for _, size := range hit.Sizes {
		bare := samples[id(hitBare, size)]
		for _, v := range variants {
			s := samples[id(v, size)]
			ratios := make([]float64, len(s.ns))
			for i := range s.ns {
				ratios[i] = s.ns[i] / bare.ns[i]
			}
			rows = append(rows, hitRow{variant: v, size: size, nsPerOp: median(s.ns),
				bytesPerOp: median(s.bytes), allocsPerOp: median(s.allocs), rounds: s.ns,
				ratio: median(ratios), ratioMin: slices.Min(ratios), ratioMax: slices.Max(ratios)})
			log.Printf("hit: %-16s %6d B: %8.0f ns/op (rounds %.0f), × bare %.2f (rounds %.2f), %6.0f B/op, %3.0f allocs/op",
				v, size, median(s.ns), s.ns, median(ratios), ratios, median(s.bytes), median(s.allocs))
		}
	}
	return rows
}
