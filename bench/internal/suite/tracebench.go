package suite

import (
	"cmp"
	"fmt"
	"log"
	"net/http"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"

	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/bench/internal/floor"
	"github.com/seed-a1426414/stampede/bench/internal/peers"
	"github.com/seed-a1426414/stampede/bench/internal/progress"
	"github.com/seed-a1426414/stampede/bench/internal/redisproc"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
)

// The trace configurations, in the order they run and are reported.
const (
	cfgNone = "no middleware"
	// cfgFloor is the floor: singleflight and a sync.Map, the least a coalescing cache can cost.
	cfgFloor = "floor (singleflight + sync.Map)"
	// cfgGoChi is go-chi/stampede on the stand-in for goware/cachestore-mem (package peers).
	cfgGoChi  = "go-chi/stampede (stand-in map store)"
	cfgMemory = "memory store"
	// cfgRedis is the client a user starts with, redis.NewClient(&redis.Options{Addr: addr}), and the
	// library's defaults.
	cfgRedis = "Redis store, go-redis defaults"
	// cfgRedisSlow uses the client settings redisstore's package doc recommends (100 ms timeouts,
	// context deadlines on the sockets), with 1 s timeouts: on a CPU-bound process, runnable goroutines
	// wait longer than 100 ms for a core, and a timed-out GET or SET is a miss (docs/behaviour.md §7.1).
	cfgRedisSlow = "Redis store, recommended client, 1 s timeouts"
)

// traceRow is one configuration at one concurrency.
type traceRow struct {
	config    string
	res       trace.Result
	storeGets int64 // Get calls the middleware made (counting wrapper); -1 without a store
	redisGets int64 // cmdstat_get + cmdstat_mget calls delta from INFO commandstats; -1 without Redis
	trips     int64 // times the middleware's circuit breaker opened on store errors; -1 without a store
	// rounds is how many rounds ran; the row is the one with the median wall time.
	rounds int
	// maxDuplicates is the most duplicate runs of any round, so a target is judged on every round.
	maxDuplicates int64
}

func traceConfigs(o options) []string {
	cfgs := []string{cfgNone, cfgFloor}
	if peers.GoChiLinked() {
		cfgs = append(cfgs, cfgGoChi)
	}
	cfgs = append(cfgs, cfgMemory)
	if o.redis != "" {
		cfgs = append(cfgs, cfgRedis, cfgRedisSlow)
	}
	return cfgs
}

func runTraces(o options) []traceRow {
	keys := trace.Keys(o.requests, o.seed)
	cfgs := traceConfigs(o)
	log.Printf("trace: %d requests, %d distinct keys, origin %v, workers %v, configurations %q, %d round(s)",
		len(keys), trace.Distinct(keys), o.sleep, o.workers, cfgs, o.traceRounds)
	bar := progress.Start("trace", int64(len(keys)*len(cfgs)*len(o.workers)*o.traceRounds), o.quiet)
	// Rounds go over every configuration in turn, so a noisy neighbour hits them alike; the report keeps,
	// for each configuration, the round with the median wall time, whole.
	rounds := map[string][]traceRow{}
	for round := range o.traceRounds {
		for _, workers := range o.workers {
			for _, cfg := range cfgs {
				bar.Describe(fmt.Sprintf("trace: round %d/%d, %s, %d workers", round+1, o.traceRounds, cfg, workers))
				row := runTrace(o, keys, cfg, workers, &bar.Done)
				id := fmt.Sprintf("%d/%s", workers, cfg)
				rounds[id] = append(rounds[id], row)
				runtime.GC() // start each configuration from a clean heap
			}
		}
	}
	bar.Stop()
	var rows []traceRow
	for _, workers := range o.workers {
		for _, cfg := range cfgs {
			rs := rounds[fmt.Sprintf("%d/%s", workers, cfg)]
			for _, r := range rs {
				log.Printf("trace: %-26s %6d workers: wall %v (bound %v, %.2f×; ideal %v), CPU %v, runs %d of %d distinct, dups %d, store GETs %d, Redis GET+MGET %d, breaker trips %d, p50 %v, p99 %v, wrong %d",
					r.config, r.res.Workers, r.res.Wall.Round(time.Millisecond), r.res.LowerBound().Round(time.Millisecond),
					r.res.Ratio(), r.res.Ideal.Round(time.Millisecond), r.res.CPU.Round(time.Millisecond), r.res.Runs,
					r.res.Distinct, r.res.Duplicates, r.storeGets, r.redisGets, r.trips, r.res.P50, r.res.P99, r.res.Wrong)
			}
			slices.SortFunc(rs, func(a, b traceRow) int { return cmp.Compare(a.res.Wall, b.res.Wall) })
			med := rs[(len(rs)-1)/2]
			med.rounds = len(rs)
			for _, r := range rs {
				med.maxDuplicates = max(med.maxDuplicates, r.res.Duplicates)
			}
			rows = append(rows, med)
		}
	}
	return rows
}

func runTrace(o options, keys []string, cfg string, workers int, done *atomic.Int64) traceRow {
	row := traceRow{config: cfg, storeGets: -1, redisGets: -1, trips: -1}
	tc := trace.Config{Keys: keys, Workers: workers, Sleep: o.sleep, Progress: done}
	var counted *trace.CountingStore
	var closeStore func()
	var opts []stampede.Option
	switch cfg {
	case cfgFloor:
		tc.Middleware = floor.New().Handler
	case cfgGoChi:
		// go-chi/stampede writes its store before answering: there is nothing to wait for.
		tc.Middleware, _ = peers.GoChiMiddleware(time.Hour)
	case cfgMemory:
		s, err := memstore.New(256 << 20)
		if err != nil {
			log.Fatal(err)
		}
		counted, closeStore = trace.Count(s), s.Close
	case cfgRedis, cfgRedisSlow:
		// A prefix of its own per run: every run starts cold, and a Redis that is not ours is not flushed.
		prefix := fmt.Sprintf("stampede-bench:%d:%d:", time.Now().UnixNano(), workers)
		var client *redis.Client
		var store *redisstore.Store
		if cfg == cfgRedis {
			client = redis.NewClient(&redis.Options{Addr: o.redis, PoolSize: o.redisPool})
			store = redisstore.New(client, redisstore.WithKeyPrefix(prefix))
		} else {
			timeout := time.Second
			opts = append(opts, stampede.WithStoreTimeout(timeout))
			client = redisproc.NewClient(o.redis, o.redisPool, timeout)
			store = redisstore.New(client, redisstore.WithKeyPrefix(prefix), redisstore.WithTimeout(timeout))
		}
		counted = trace.Count(store)
		closeStore = func() { _ = store.Close(); _ = client.Close() }
	}
	var before int64
	var logs trace.LogCounter
	if counted != nil {
		c := stampede.New(logs.Logger(), counted, time.Hour, opts...)
		tc.Middleware = func(h http.Handler) http.Handler { return c.Handler(h) }
		tc.Wait = c.Wait
		if counted != nil && o.redis != "" && cfg != cfgMemory {
			before = mustCalls(o.redis)
		}
	}
	row.res = trace.Run(tc)
	if counted != nil {
		row.storeGets = counted.Gets()
		row.trips = logs.Trips()
	}
	if cfg == cfgRedis || cfg == cfgRedisSlow {
		row.redisGets = mustCalls(o.redis) - before
	}
	if closeStore != nil {
		closeStore()
	}
	return row
}

// mustCalls returns the read commands (GET and MGET: the store batches concurrent reads into MGETs)
// the Redis at addr has run.
func mustCalls(addr string) int64 {
	var total int64
	for _, cmd := range []string{"get", "mget"} {
		n, err := redisproc.Calls(addr, cmd)
		if err != nil {
			log.Fatalf("INFO commandstats: %v", err)
		}
		total += n
	}
	return total
}
