package tieredstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// The optional store contracts the middleware detects (store.go in the root package) that tieredstore
// means to offer or pass on from its tiers: a signature that drifts fails the build here instead of
// silently turning a feature off.
var (
	_ stampede.Store                = (*tieredstore.Store)(nil)
	_ stampede.BatchStore           = (*tieredstore.Store)(nil)
	_ stampede.LeaseStore           = (*tieredstore.Store)(nil)
	_ stampede.TagStore             = (*tieredstore.Store)(nil)
	_ stampede.AnnotatedStore       = (*tieredstore.Store)(nil)
	_ stampede.SelfBoundedStore     = (*tieredstore.Store)(nil)
	_ stampede.FencedStore          = (*tieredstore.Store)(nil)
	_ stampede.TagInvalidationStore = (*tieredstore.Store)(nil)

	// The tiers it is built from.
	_ tieredstore.Tier = (*memstore.Store)(nil)
	_ tieredstore.Tier = (*redisstore.Store)(nil)
)

// TestNewRejectsNilTiers: a nil tier, a typed nil included, fails when the store is built, with a
// message starting "stampede: ", not on the first request.
func TestNewRejectsNilTiers(t *testing.T) {
	mem, err := memstore.New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	var typedNil *memstore.Store
	for name, tiers := range map[string][2]tieredstore.Tier{
		"nil l1": {nil, mem}, "nil l2": {mem, nil}, "typed nil l1": {typedNil, mem}, "typed nil l2": {mem, typedNil},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "stampede: ") {
					t.Fatalf("panic = %q, want a message starting with %q", msg, "stampede: ")
				}
			}()
			tieredstore.New(tiers[0], tiers[1])
		})
	}
}

// TestContractOverRedis runs the store contract suite (internal/storetest) on memory in front of a real
// redis-server, with a second two-tier Store over the same Redis as another replica: fenced writes,
// tags and announcements pass through, and no L1 copy outlives an invalidation.
func TestContractOverRedis(t *testing.T) {
	srv := redistest.Start(t)
	tiered := func(t *testing.T) stampede.Store {
		l1, err := memstore.New(8 << 20)
		if err != nil {
			t.Fatal(err)
		}
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second})
		l2 := redisstore.New(c, redisstore.WithKeyPrefix("tiered-contract:"), redisstore.WithTimeout(5*time.Second))
		s := tieredstore.New(l1, l2)
		t.Cleanup(func() { s.Close(); l1.Close(); _ = l2.Close(); _ = c.Close() })
		return s
	}
	storetest.Run(t, storetest.Harness{
		New:  tiered,
		Peer: func(t *testing.T, _ stampede.Store) stampede.Store { return tiered(t) },
	})
}
