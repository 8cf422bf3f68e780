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
	"sync/atomic"
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

// cacheHistory records and checks one history.
func cacheHistory(t *testing.T, kind cacheKind, seed uint64, prefix string) bool {
	const clients, opsPerClient = 4, 12
	src := newSource()
	src.init(urls)
	var rec recorder
	rng := &lockedRand{rng: rand.New(rand.NewPCG(seed, 1)), trace: &trace{clock: &rec.clock}}
	h := &history{}
	current = h
	caches := kind.build(t, rng, prefix)
	defer h.close()
	if h.ann != nil {
		rec.gate = new(sync.RWMutex)
	}
	for _, c := range caches {
		h.closing(c.Close)
	}
	handlers := make([]http.Handler, len(caches))
	for i, c := range caches {
		handlers[i] = c.Handler(origin(src, rng))
	}
	var wg sync.WaitGroup
	var failed atomic.Bool
	fail := func(format string, args ...any) {
		t.Errorf("seed %d: "+format, append([]any{seed}, args...)...)
		failed.Store(true)
	}
	for cl := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(cl)+2))
			ctx := context.Background()
			for range opsPerClient {
				u := urls[r.IntN(len(urls))]
				i := r.IntN(len(caches))
				c, hd := caches[i], handlers[i]
				switch n := r.IntN(100); {
				case n < 55:
					variant := 0
					if u == "/b" {
						variant = r.IntN(variants)
					}
					rec.do(cl, op{Kind: "get", Key: u, Variant: variant}, func() any {
						req := httptest.NewRequest(http.MethodGet, u, nil)
						req.Header.Set("X-V", strconv.Itoa(variant))
						w := httptest.NewRecorder()
						hd.ServeHTTP(w, req)
						v, err := strconv.Atoi(w.Body.String())
						if w.Code != http.StatusOK || err != nil {
							fail("GET %s: %d %q", u, w.Code, w.Body.String())
						}
						return v
					})
				case n < 70:
					rec.do(cl, op{Kind: "change", Key: u}, func() any { return src.change(u) })
				case n < 82:
					rec.do(cl, op{Kind: "invalidate", Key: u, Via: "Purge"}, func() any {
						if err := c.Purge(ctx, httptest.NewRequest(http.MethodGet, u, nil)); err != nil {
							fail("Purge(%s): %v", u, err)
						}
						h.settle(t)
						return nil
					})
				case n < 92:
					rec.do(cl, op{Kind: "invalidate", Key: u, Via: "POST"}, func() any {
						w := httptest.NewRecorder()
						hd.ServeHTTP(w, httptest.NewRequest(http.MethodPost, u, nil))
						h.settle(t)
						return nil
					})
				default:
					// PurgeTag("all") invalidates both URLs: one operation per URL, over the same interval.
					unlock := rec.lock(op{Kind: "invalidate"})
					call := rec.clock.Add(1)
					if err := c.PurgeTag(ctx, "all"); err != nil {
						fail("PurgeTag: %v", err)
					}
					h.settle(t)
					ret := rec.clock.Add(1)
					unlock()
					rec.add(cl, call, ret, urls)
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
