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

// TestContract runs the shared store suite against the machine's PostgreSQL, with a second Store on
// its own pool over the same tables as the other replica.
func TestContract(t *testing.T) {
	for _, unlogged := range []bool{false, true} {
		name := "logged"
		if unlogged {
			name = "unlogged"
		}
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, storetest.Harness{
				New: func(t *testing.T) stampede.Store {
					return newStore(t, newPool(t, serverURL()), pgstore.WithUnlogged(unlogged), pgstore.WithTimeout(callTimeout))
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
			})
		})
	}
}
