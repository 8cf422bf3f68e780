package linearizable

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// cacheKind builds the caches of one history (two for a fleet: replicas sharing a store).
type cacheKind struct {
	name  string
	build func(t *testing.T, rng *lockedRand, prefix string) []*stampede.Cache
}

func cacheKinds(t *testing.T) []cacheKind {
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
	opts := func(prefix string) []stampede.Option {
		return []stampede.Option{stampede.WithKeyPrefix(prefix), stampede.WithComputeTimeout(time.Minute),
			stampede.WithStoreTimeout(time.Minute)}
	}
	one := func(c *stampede.Cache) []*stampede.Cache { return []*stampede.Cache{c} }
	return []cacheKind{
		{"memory", func(t *testing.T, rng *lockedRand, prefix string) []*stampede.Cache {
			return one(stampede.New(nil, slow(mem(t), rng), time.Hour, opts(prefix)...))
		}},
		{"redis", func(t *testing.T, rng *lockedRand, prefix string) []*stampede.Cache {
			return one(stampede.New(nil, slow(redisStore(t, redisClient()), rng), time.Hour, opts(prefix)...))
		}},
		{"tiered", func(t *testing.T, rng *lockedRand, prefix string) []*stampede.Cache {
			tiered := tieredstore.New(mem(t), redisStore(t, redisClient()))
			current.closing(tiered.Close)
			return one(stampede.New(nil, slow(tiered, rng), time.Hour, opts(prefix)...))
		}},
		{"fleet", func(t *testing.T, rng *lockedRand, prefix string) []*stampede.Cache {
			var cs []*stampede.Cache
			current.ann = newAnnouncer(redisClient())
			for range 2 {
				store := current.ann.slow(redisStore(t, redisClient()), rng)
				cs = append(cs, stampede.New(nil, store, time.Hour, append(opts(prefix), stampede.WithFleetCoalescing(time.Minute))...))
			}
			return cs
		}},
	}
}

// TestCacheLinearizable checks random concurrent histories of GETs (of a URL that varies and one that
// does not), Purge, PurgeTag and POST, while the origin's versions change, for each kind of store.
func TestCacheLinearizable(t *testing.T) {
	cfg := testSettings(t, 100)
	for _, kind := range cacheKinds(t) {
		t.Run(kind.name, func(t *testing.T) {
			seed := cfg.seed
			t.Logf("seed %d, %d histories (LINEARIZABLE_SEED, LINEARIZABLE_HISTORIES)", seed, cfg.histories)
			for h := range cfg.histories {
				if !cacheHistory(t, kind, seed+uint64(h), fmt.Sprintf("lin-http-%s-%d-%d", kind.name, seed, h)) {
					return
				}
			}
		})
	}
}

// The URLs of a history: /a does not vary, /b varies on X-V (two variants). Every response carries the
// tag of its URL and the tag "all".
var urls = []string{"/a", "/b"}

// origin serves the source's version of a URL, with a random delay before and after it reads it, and
// answers an unsafe request with 204.
func origin(src *source, rng *lockedRand) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		rng.jitter()
		v := src.read(r.URL.Path)
		rng.jitter()
		h := w.Header()
		h.Set("Cache-Control", "max-age=3600")
		h.Set("Cache-Tag", "t"+strings.TrimPrefix(r.URL.Path, "/")+" all")
		if r.URL.Path == "/b" {
			h.Set("Vary", "X-V")
		}
		_, _ = fmt.Fprint(w, v)
	})
}

// cacheHistory records and checks one random history.
func cacheHistory(t *testing.T, kind cacheKind, seed uint64, prefix string) bool {
	const clients, opsPerClient = 4, 12
	run := newCacheRun(t, kind, seed, prefix)
	defer run.h.close()
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(cl)+2))
			for range opsPerClient {
				in := op{Key: urls[r.IntN(len(urls))], Replica: r.IntN(len(run.caches))}
				switch n := r.IntN(100); {
				case n < 55:
					in.Kind = "get"
					if in.Key == "/b" {
						in.Variant = r.IntN(variants)
					}
				case n < 70:
					in.Kind = "change"
				case n < 82:
					in.Kind, in.Via = "invalidate", "Purge"
				case n < 92:
					in.Kind, in.Via = "invalidate", "POST"
				default:
					in.Kind, in.Via = "invalidate", "PurgeTag"
				}
				run.perform(cl, in)
			}
		})
	}
	wg.Wait()
	return run.check("http")
}

// cacheRun is one history of the middleware being run: its caches and their handlers, the origin's
// source and the record.
type cacheRun struct {
	run
	caches   []*stampede.Cache
	handlers []http.Handler
}

// newCacheRun builds kind's caches for a history of the URLs, each at version 1.
func newCacheRun(t *testing.T, kind cacheKind, seed uint64, prefix string) *cacheRun {
	r := &cacheRun{run: newRun(t, kind.name, seed)}
	r.src.init(urls)
	r.rng = &lockedRand{rng: rand.New(rand.NewPCG(seed, 1)), trace: &trace{clock: &r.rec.clock}}
	current = r.h
	r.caches = kind.build(t, r.rng, prefix)
	if r.h.ann != nil {
		r.rec.gate = new(sync.RWMutex)
	}
	for _, c := range r.caches {
		r.h.closing(c.Close)
		r.handlers = append(r.handlers, c.Handler(origin(r.src, r.rng)))
	}
	r.h.ready(t)
	return r
}

// perform runs in as client's operation, through the cache in.Replica (modulo the caches there are),
// and records it. An invalidation via PurgeTag purges the tag "all", which every URL carries: it is
// recorded as one invalidation per URL over the same interval.
func (r *cacheRun) perform(cl int, in op) {
	ctx := context.Background()
	i := in.Replica % len(r.caches)
	c, hd, u := r.caches[i], r.handlers[i], in.Key
	fail := func(format string, args ...any) {
		r.t.Errorf("seed %d: "+format, append([]any{r.seed}, args...)...)
		r.failed.Store(true)
	}
	if in.Kind == "invalidate" && in.Via == "PurgeTag" {
		unlock := r.rec.lock(in)
		call := r.rec.clock.Add(1)
		if err := c.PurgeTag(ctx, "all"); err != nil {
			fail("PurgeTag: %v", err)
		}
		r.h.settle(r.t)
		ret := r.rec.clock.Add(1)
		unlock()
		r.rec.add(cl, in.Replica, call, ret, urls)
		return
	}
	r.rec.do(cl, in, func() any {
		switch in.Kind {
		case "get":
			req := httptest.NewRequest(http.MethodGet, u, nil)
			req.Header.Set("X-V", strconv.Itoa(in.Variant))
			w := httptest.NewRecorder()
			hd.ServeHTTP(w, req)
			v, err := strconv.Atoi(w.Body.String())
			if w.Code != http.StatusOK || err != nil {
				fail("GET %s: %d %q", u, w.Code, w.Body.String())
			}
			return v
		case "change":
			return r.src.change(u)
		case "invalidate":
			switch in.Via {
			case "Purge":
				if err := c.Purge(ctx, httptest.NewRequest(http.MethodGet, u, nil)); err != nil {
					fail("Purge(%s): %v", u, err)
				}
			case "POST":
				hd.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, u, nil))
			default:
				panic("linearizable: unknown invalidation " + in.Via)
			}
			r.h.settle(r.t)
			return nil
		}
		panic("linearizable: unknown operation " + in.Kind)
	})
}

// check checks the history recorded (unless an operation failed, which was reported already).
func (r *cacheRun) check(test string) bool {
	if r.failed.Load() {
		return false
	}
	return check(r.t, test, r.kind, r.seed, r.rec.ops, r.rng.trace)
}
