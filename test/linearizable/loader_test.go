package linearizable

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// loaderKind builds the loaders of one history (two for a fleet: replicas sharing a store), over a
// store that delays every call with rng. load is the load function; prefix keeps histories apart in a
// shared Redis.
type loaderKind struct {
	name  string
	build func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int]
}

// history is what one history's stores need closed when it ends (a Redis store's subscription, its
// client): a test runs thousands. ann is set for a fleet, whose replicas learn of each other's
// invalidations by announcements (see announcer).
type history struct {
	closers []func()
	ann     *announcer
}

// settle returns once every replica received what was announced before it was called: an
// invalidation made through one replica reaches the others' flights when its announcement arrives
// (docs/behaviour.md §11), so a fleet's history counts an invalidation as done only then. It does
// nothing for a single process.
func (h *history) settle(t *testing.T) {
	if h.ann != nil {
		h.ann.settle(t)
	}
}

func (h *history) closing(f func()) { h.closers = append(h.closers, f) }

func (h *history) close() {
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
}

// current is the history being built; the kinds register what they open with it.
var current *history

// loaderOptions are what every loader of the checker has: a compute timeout no load reaches, a TTL no
// history outlives, and a store timeout no delayed call reaches (a timeout is a miss, which the model
// allows, but it would hide what the check is for).
func loaderOptions(prefix string) []stampede.LoaderOption {
	return []stampede.LoaderOption{
		stampede.WithTTL(time.Hour), stampede.WithComputeTimeout(time.Minute), stampede.WithStoreTimeout(time.Minute),
		stampede.WithKeyPrefix(prefix),
	}
}

// redisServer starts one Redis for a whole test, and returns a client factory; a client is closed
// when its history ends.
func redisServer(t *testing.T) func() redis.UniversalClient {
	srv := redistest.Start(t)
	return func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 32, ContextTimeoutEnabled: true})
		current.closing(func() { _ = c.Close() })
		return c
	}
}

func redisStore(t *testing.T, client redis.UniversalClient) *redisstore.Store {
	s := redisstore.New(client, redisstore.WithTimeout(time.Minute))
	current.closing(func() { _ = s.Close() })
	return s
}

func loaderKinds(t *testing.T) []loaderKind {
	var newClient func() redis.UniversalClient
	redisClient := func() redis.UniversalClient {
		if newClient == nil {
			newClient = redisServer(t)
		}
		return newClient()
	}
	mem := func(t *testing.T) *memstore.Store {
		s, err := memstore.New(64 << 20)
		if err != nil {
			t.Fatal(err)
		}
		current.closing(s.Close)
		return s
	}
	one := func(l *stampede.Loader[string, int]) []*stampede.Loader[string, int] {
		return []*stampede.Loader[string, int]{l}
	}
	if os.Getenv("LINEARIZABLE_PLANTED") != "" { // see TestCheckerFindsLostInvalidations
		return []loaderKind{{"planted", func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			store := slow(forgetful{mem(t)}, rng)
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(store))...))
		}}}
	}
	return []loaderKind{
		{"in-process", func(t *testing.T, load stampede.LoadFunc[string, int], _ *lockedRand, prefix string) []*stampede.Loader[string, int] {
			return one(stampede.NewLoader("lin", load, loaderOptions(prefix)...))
		}},
		{"values", func(t *testing.T, load stampede.LoadFunc[string, int], _ *lockedRand, prefix string) []*stampede.Loader[string, int] {
			values, err := memstore.NewValues[any](1000)
			if err != nil {
				t.Fatal(err)
			}
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithValues(values))...))
		}},
		{"memory", func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(slow(mem(t), rng)))...))
		}},
		{"redis", func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			store := slow(redisStore(t, redisClient()), rng)
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(store))...))
		}},
		{"tiered", func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			tiered := tieredstore.New(mem(t), redisStore(t, redisClient()))
			current.closing(tiered.Close)
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(slow(tiered, rng)))...))
		}},
		{"fleet", func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			var ls []*stampede.Loader[string, int]
			current.ann = newAnnouncer(redisClient())
			for range 2 {
				store := current.ann.slow(redisStore(t, redisClient()), rng)
				ls = append(ls, stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(store),
					stampede.WithFleetCoalescing(time.Minute))...))
			}
			return ls
		}},
	}
}

// TestLoaderLinearizable checks random concurrent histories of Get, Set, Invalidate and Refresh on a few
// keys, while the source changes, for each kind of store.
func TestLoaderLinearizable(t *testing.T) {
	cfg := testSettings(t, 150)
	for _, kind := range loaderKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			seed := cfg.seed
			t.Logf("seed %d, %d histories (LINEARIZABLE_SEED, LINEARIZABLE_HISTORIES)", seed, cfg.histories)
			for h := range cfg.histories {
				if !loaderHistory(t, kind, seed+uint64(h), fmt.Sprintf("lin-%s-%d-%d", kind.name, seed, h)) {
					return
				}
			}
		})
	}
}

// forgetful is a store whose deletions do nothing: the invalidations a checker must catch being lost.
type forgetful struct{ stampede.Store }

func (forgetful) Delete(context.Context, string) error { return nil }

// TestCheckerFindsLostInvalidations runs the checker on a store that loses every deletion (in a child
// process, which must fail): a checker that passed it would prove nothing.
func TestCheckerFindsLostInvalidations(t *testing.T) {
	if os.Getenv("LINEARIZABLE_PLANTED") != "" {
		return // the child process runs the planted kind only
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoaderLinearizable$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LINEARIZABLE_PLANTED=1", "LINEARIZABLE_HISTORIES=500")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the checker passed 500 histories of a store that loses its deletions:\n%s", out)
	}
	if !strings.Contains(string(out), "history not linearizable") {
		t.Fatalf("the child failed, but not on a history:\n%s", out)
	}
}

// setValues numbers the values Set stores apart from every source version.
var setValues atomic.Int64

// loaderHistory records and checks one history.
func loaderHistory(t *testing.T, kind loaderKind, seed uint64, prefix string) bool {
	const clients, opsPerClient = 4, 12
	keys := []string{"a", "b"}
	src := newSource()
	src.init(keys)
	var rec recorder
	rng := &lockedRand{rng: rand.New(rand.NewPCG(seed, 1)), trace: &trace{clock: &rec.clock}}
	load := func(_ context.Context, k string) (int, error) {
		rng.jitter()
		v := src.read(k)
		rng.jitter()
		return v, nil
	}
	h := &history{}
	current = h
	loaders := kind.build(t, load, rng, prefix)
	defer h.close()
	if h.ann != nil {
		rec.gate = new(sync.RWMutex)
	}
	for _, l := range loaders {
		h.closing(l.Close)
	}
	var wg sync.WaitGroup
	failed := atomic.Bool{}
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(c)+2))
			ctx := context.Background()
			for range opsPerClient {
				k := keys[r.IntN(len(keys))]
				l := loaders[r.IntN(len(loaders))]
				switch n := r.IntN(100); {
				case n < 50:
					rec.do(c, op{Kind: "get", Key: k}, func() any {
						v, err := l.Get(ctx, k)
						if err != nil {
							t.Errorf("seed %d: Get(%s): %v", seed, k, err)
							failed.Store(true)
						}
						return v
					})
				case n < 62:
					rec.do(c, op{Kind: "change", Key: k}, func() any { return src.change(k) })
				case n < 77:
					rec.do(c, op{Kind: "invalidate", Key: k, Via: "Invalidate"}, func() any {
						if err := l.Invalidate(ctx, k); err != nil {
							t.Errorf("seed %d: Invalidate(%s): %v", seed, k, err)
							failed.Store(true)
						}
						h.settle(t)
						return nil
					})
				case n < 89:
					v := 1_000_000 + int(setValues.Add(1))
					rec.do(c, op{Kind: "set", Key: k, Value: v}, func() any {
						if err := l.Set(ctx, k, v); err != nil {
							t.Errorf("seed %d: Set(%s): %v", seed, k, err)
							failed.Store(true)
						}
						h.settle(t)
						return nil
					})
				default:
					rec.do(c, op{Kind: "refresh", Key: k}, func() any {
						v, err := l.Refresh(ctx, k)
						if err != nil {
							t.Errorf("seed %d: Refresh(%s): %v", seed, k, err)
							failed.Store(true)
						}
						h.settle(t)
						return v
					})
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		return false
	}
	ok := check(t, kind.name, seed, rec.ops)
	if !ok {
		t.Logf("store calls:\n%s", strings.Join(rng.trace.lines, "\n"))
	}
	return ok
}
