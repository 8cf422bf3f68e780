package linearizable

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
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
	// do, set instead of build, builds go-chi's function API instead (NewStampede): its histories are
	// of Do (a get) and Invalidate only, the calls it has.
	do func(t *testing.T) *stampede.Stampede[int]
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

// ready returns once every replica of a fleet is subscribed to the store's announcements (it does
// nothing for a single process). Rule 3 of docs/behaviour.md §11 holds between replicas that hear each
// other: a replica whose subscription is not confirmed yet hears nothing, and its own announcements made
// meanwhile never come back to it, so for a while (storecall's echoTTL) it takes another replica's
// announcement of the same key for its own echo and skips it (a history that began with an invalidation
// before the subscriptions were confirmed failed so, under -race). §11.3 states that bound.
func (h *history) ready(t *testing.T) {
	if h.ann != nil {
		h.ann.mu.Lock()
		subs := h.ann.subs
		h.ann.mu.Unlock()
		if subs == 0 {
			t.Fatal("no replica of the fleet subscribed to the store's announcements")
		}
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
		return []loaderKind{{name: "planted", build: func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			store := slow(forgetful{mem(t)}, rng)
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(store))...))
		}}}
	}
	return []loaderKind{
		{name: "in-process", build: func(t *testing.T, load stampede.LoadFunc[string, int], _ *lockedRand, prefix string) []*stampede.Loader[string, int] {
			return one(stampede.NewLoader("lin", load, loaderOptions(prefix)...))
		}},
		{name: "values", build: func(t *testing.T, load stampede.LoadFunc[string, int], _ *lockedRand, prefix string) []*stampede.Loader[string, int] {
			values, err := memstore.NewValues[any](1000)
			if err != nil {
				t.Fatal(err)
			}
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithValues(values))...))
		}},
		{name: "memory", build: func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(slow(mem(t), rng)))...))
		}},
		{name: "redis", build: func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			store := slow(redisStore(t, redisClient()), rng)
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(store))...))
		}},
		{name: "tiered", build: func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
			tiered := tieredstore.New(mem(t), redisStore(t, redisClient()))
			current.closing(tiered.Close)
			return one(stampede.NewLoader("lin", load, append(loaderOptions(prefix), stampede.WithStore(slow(tiered, rng)))...))
		}},
		{name: "do-coalesce", do: func(*testing.T) *stampede.Stampede[int] {
			return stampede.NewStampede[int](nil, nil, stampede.WithTTL(time.Minute))
		}},
		{name: "do-values", do: func(t *testing.T) *stampede.Stampede[int] {
			values, err := memstore.NewValues[int](1000)
			if err != nil {
				t.Fatal(err)
			}
			return stampede.NewStampede[int](nil, values, stampede.WithTTL(time.Minute))
		}},
		{name: "fleet", build: func(t *testing.T, load stampede.LoadFunc[string, int], rng *lockedRand, prefix string) []*stampede.Loader[string, int] {
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
// process, which must fail): a checker that passed it would prove nothing. The failing history the child
// kept must read back, be rejected by the model, and replay (see replay) over the memory store, which
// loses nothing, linearizably.
func TestCheckerFindsLostInvalidations(t *testing.T) {
	if os.Getenv("LINEARIZABLE_PLANTED") != "" {
		return // the child process runs the planted kind only
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLoaderLinearizable$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LINEARIZABLE_PLANTED=1", "LINEARIZABLE_HISTORIES=500", "LINEARIZABLE_KEEP="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the checker passed 500 histories of a store that loses its deletions:\n%s", out)
	}
	if !strings.Contains(string(out), "history not linearizable") {
		t.Fatalf("the child failed, but not on a history:\n%s", out)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "linearizable-loader-planted-*.json"))
	if err != nil || len(paths) != 1 {
		t.Fatalf("the child kept %v (%v), want one history:\n%s", paths, err, out)
	}
	if !strings.Contains(string(out), paths[0]) {
		t.Errorf("the child's report does not name %s:\n%s", paths[0], out)
	}
	h, err := readKept(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Minimised) == 0 || len(h.Minimised) > len(h.History) {
		t.Errorf("kept %d operations minimised to %d", len(h.History), len(h.Minimised))
	}
	for _, ops := range [][]keptOp{h.History, h.Minimised} {
		if porcupine.CheckOperations(model, fromKept(ops)) {
			t.Errorf("the model accepts the kept history:\n%s", describe(fromKept(ops)))
		}
	}
	all := allKinds(t)
	for i := range 5 {
		if !replay(t, all, h, "memory", uint64(i), fmt.Sprintf("lin-replay-planted-%d", i)) {
			return
		}
	}
}

// setValues numbers the values Set stores, from setBase on: apart from every source version.
var setValues atomic.Int64

const setBase = 1_000_000

// loaderHistory records and checks one random history.
func loaderHistory(t *testing.T, kind loaderKind, seed uint64, prefix string) bool {
	const clients, opsPerClient = 4, 12
	keys := []string{"a", "b"}
	run := newLoaderRun(t, kind, seed, prefix, keys)
	defer run.h.close()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(c)+2))
			for range opsPerClient {
				in := op{Key: keys[r.IntN(len(keys))], Replica: r.IntN(max(len(run.loaders), 1))}
				switch n := r.IntN(100); {
				case n < 50 || n >= 77 && run.do != nil: // Do has no Set or Refresh
					in.Kind = "get"
				case n < 62:
					in.Kind = "change"
				case n < 77:
					in.Kind, in.Via = "invalidate", "Invalidate"
				case n < 89:
					in.Kind, in.Value = "set", setBase+int(setValues.Add(1))
				default:
					in.Kind = "refresh"
				}
				run.perform(c, in)
			}
		})
	}
	wg.Wait()
	return run.check("loader")
}

// loaderRun is one history of the function API being run: its loaders, its source and its record.
type loaderRun struct {
	run
	loaders []*stampede.Loader[string, int]
	do      *stampede.Stampede[int] // instead of loaders, for a kind of the go-chi function API
	load    stampede.LoadFunc[string, int]
}

// newLoaderRun builds kind's loaders for a history over keys, each at version 1.
func newLoaderRun(t *testing.T, kind loaderKind, seed uint64, prefix string, keys []string) *loaderRun {
	r := &loaderRun{run: newRun(t, kind.name, seed)}
	r.src.init(keys)
	r.rng = &lockedRand{rng: rand.New(rand.NewPCG(seed, 1)), trace: &trace{clock: &r.rec.clock}}
	load := func(_ context.Context, k string) (int, error) {
		r.rng.jitter()
		v := r.src.read(k)
		r.rng.jitter()
		return v, nil
	}
	current = r.h
	r.load = load
	if kind.do != nil {
		r.do = kind.do(t)
		r.h.closing(r.do.Wait)
		return r
	}
	r.loaders = kind.build(t, load, r.rng, prefix)
	if r.h.ann != nil {
		r.rec.gate = new(sync.RWMutex)
	}
	for _, l := range r.loaders {
		r.h.closing(l.Close)
	}
	r.h.ready(t)
	return r
}

// perform runs in as client's operation, through the loader in.Replica (modulo the loaders there are),
// and records it.
func (r *loaderRun) perform(client int, in op) {
	ctx := context.Background()
	k := in.Key
	fail := func(format string, args ...any) {
		r.t.Errorf("seed %d: "+format, append([]any{r.seed}, args...)...)
		r.failed.Store(true)
	}
	if r.do != nil {
		r.performDo(ctx, client, in, fail)
		return
	}
	l := r.loaders[in.Replica%len(r.loaders)]
	r.rec.do(client, in, func() any {
		switch in.Kind {
		case "get":
			v, err := l.Get(ctx, k)
			if err != nil {
				fail("Get(%s): %v", k, err)
			}
			return v
		case "change":
			return r.src.change(k)
		case "invalidate":
			if err := l.Invalidate(ctx, k); err != nil {
				fail("Invalidate(%s): %v", k, err)
			}
			r.h.settle(r.t)
			return nil
		case "set":
			if err := l.Set(ctx, k, in.Value); err != nil {
				fail("Set(%s): %v", k, err)
			}
			r.h.settle(r.t)
			return nil
		case "refresh":
			v, err := l.Refresh(ctx, k)
			if err != nil {
				fail("Refresh(%s): %v", k, err)
			}
			r.h.settle(r.t)
			return v
		}
		panic("linearizable: unknown operation " + in.Kind)
	})
}

// performDo runs in through the go-chi function API: a get is Do with the history's load.
func (r *loaderRun) performDo(ctx context.Context, client int, in op, fail func(string, ...any)) {
	k := in.Key
	r.rec.do(client, in, func() any {
		switch in.Kind {
		case "get":
			v, err := r.do.Do(ctx, k, func() (int, *time.Duration, error) {
				v, err := r.load(ctx, k)
				return v, nil, err
			})
			if err != nil {
				fail("Do(%s): %v", k, err)
			}
			return v
		case "change":
			return r.src.change(k)
		case "invalidate":
			if err := r.do.Invalidate(ctx, k); err != nil {
				fail("Invalidate(%s): %v", k, err)
			}
			return nil
		}
		panic("linearizable: no " + in.Kind + " in the go-chi function API")
	})
}

// check checks the history recorded (unless an operation failed, which was reported already).
func (r *loaderRun) check(test string) bool {
	if r.failed.Load() {
		return false
	}
	return check(r.t, test, r.kind, r.seed, r.rec.ops, r.rng.trace)
}
