package pgstore_test

import (
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/pgstore"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// The store contracts (store.go in the root package) that pgstore means to offer: a signature that
// drifts fails the build here instead of silently turning a feature off.
var (
	_ stampede.Store                = (*pgstore.Store)(nil)
	_ stampede.BatchStore           = (*pgstore.Store)(nil)
	_ stampede.LeaseStore           = (*pgstore.Store)(nil)
	_ stampede.FencedStore          = (*pgstore.Store)(nil)
	_ stampede.TagStore             = (*pgstore.Store)(nil)
	_ stampede.InvalidationStore    = (*pgstore.Store)(nil)
	_ stampede.TagInvalidationStore = (*pgstore.Store)(nil)
	_ stampede.SelfBoundedStore     = (*pgstore.Store)(nil)
	_ stampede.SizedStore           = (*pgstore.Store)(nil)
	_ stampede.EvictionCounter      = (*pgstore.Store)(nil)
)

// callTimeout is the store timeout of the tests that are not about timeouts: generous, so that a
// loaded machine does not turn a call into a timeout.
const callTimeout = 30 * time.Second

// harness makes the stores of the shared suites: a Store on fresh tables of the machine's
// PostgreSQL, and as the other replica a second Store on a pool of its own over the same tables.
var harness = storetest.Harness{
	New: func(t *testing.T) stampede.Store {
		return newStore(t, newPool(t, serverURL()), pgstore.WithTimeout(callTimeout))
	},
	Peer: func(t *testing.T, s stampede.Store) stampede.Store {
		p, err := pgstore.New(newPool(t, serverURL()), pgstore.WithTablePrefix(s.(*pgstore.Store).Prefix()),
			pgstore.WithTimeout(callTimeout))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	},
}

// TestContract runs the shared store suite, on logged and on UNLOGGED tables.
func TestContract(t *testing.T) {
	t.Parallel()
	t.Run("logged", func(t *testing.T) { storetest.Run(t, harness) })
	t.Run("unlogged", func(t *testing.T) {
		h := harness
		h.New = func(t *testing.T) stampede.Store {
			return newStore(t, newPool(t, serverURL()), pgstore.WithTimeout(callTimeout), pgstore.WithUnlogged(true))
		}
		storetest.Run(t, h)
	})
}
