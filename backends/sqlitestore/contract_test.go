package sqlitestore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/sqlitestore"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// The store contracts (store.go in the root package) that sqlitestore means to offer: a signature that
// drifts fails the build here instead of silently turning a feature off.
var (
	_ stampede.Store                = (*sqlitestore.Store)(nil)
	_ stampede.BatchStore           = (*sqlitestore.Store)(nil)
	_ stampede.LeaseStore           = (*sqlitestore.Store)(nil)
	_ stampede.FencedStore          = (*sqlitestore.Store)(nil)
	_ stampede.TagStore             = (*sqlitestore.Store)(nil)
	_ stampede.InvalidationStore    = (*sqlitestore.Store)(nil)
	_ stampede.TagInvalidationStore = (*sqlitestore.Store)(nil)
	_ stampede.SelfBoundedStore     = (*sqlitestore.Store)(nil)
	_ stampede.SizedStore           = (*sqlitestore.Store)(nil)
	_ stampede.EvictionCounter      = (*sqlitestore.Store)(nil)
)

// open opens a Store on path, closed when the test ends.
func open(t testing.TB, path string, opts ...sqlitestore.Option) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// callTimeout is the store timeout of the tests that are not about timeouts: generous, since the race
// detector makes the transpiled SQLite many times slower, and a loaded machine slower still.
const callTimeout = 30 * time.Second

// harness makes the stores of the shared suites: a Store on a file in a temporary directory, and as
// the other replica a second Store on the same file (another process would have one).
var harness = storetest.Harness{
	New: func(t *testing.T) stampede.Store {
		return open(t, filepath.Join(t.TempDir(), "cache.db"), sqlitestore.WithTimeout(callTimeout))
	},
	Peer: func(t *testing.T, s stampede.Store) stampede.Store {
		return open(t, s.(*sqlitestore.Store).Path(), sqlitestore.WithTimeout(callTimeout))
	},
}

// TestContract runs the shared store suite.
func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, harness)
}
