package mysqlstore_test

import (
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/mysqlstore"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// The store contracts (store.go in the root package) that mysqlstore means to offer: a signature that
// drifts fails the build here instead of silently turning a feature off.
var (
	_ stampede.Store                = (*mysqlstore.Store)(nil)
	_ stampede.BatchStore           = (*mysqlstore.Store)(nil)
	_ stampede.LeaseStore           = (*mysqlstore.Store)(nil)
	_ stampede.FencedStore          = (*mysqlstore.Store)(nil)
	_ stampede.TagStore             = (*mysqlstore.Store)(nil)
	_ stampede.InvalidationStore    = (*mysqlstore.Store)(nil)
	_ stampede.TagInvalidationStore = (*mysqlstore.Store)(nil)
	_ stampede.SelfBoundedStore     = (*mysqlstore.Store)(nil)
	_ stampede.SizedStore           = (*mysqlstore.Store)(nil)
	_ stampede.EvictionCounter      = (*mysqlstore.Store)(nil)
)

// callTimeout is the store timeout of the tests that are not about timeouts: generous, so that a
// loaded machine does not turn a call into a timeout.
const callTimeout = 30 * time.Second

// harness makes the stores of the shared suites: a Store on fresh tables of the machine's MariaDB,
// and as the other replica a second Store on a handle of its own over the same tables.
var harness = storetest.Harness{
	New: func(t *testing.T) stampede.Store {
		return newStore(t, openDB(t, serverDSN()), mysqlstore.WithTimeout(callTimeout))
	},
	Peer: func(t *testing.T, s stampede.Store) stampede.Store {
		p, err := mysqlstore.New(openDB(t, serverDSN()), mysqlstore.WithTablePrefix(s.(*mysqlstore.Store).Prefix()),
			mysqlstore.WithTimeout(callTimeout))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	},
}

// TestContract runs the shared store suite.
func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, harness)
}
