package memstore_test

import (
	"testing"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// The optional store contracts the middleware detects (store.go in the root package) that memstore
// means to offer: a signature that drifts fails the build here instead of silently turning a feature off.
var (
	_ stampede.Store            = (*memstore.Store)(nil)
	_ stampede.AnnotatedStore   = (*memstore.Store)(nil)
	_ stampede.SelfBoundedStore = (*memstore.Store)(nil)
	_ stampede.SizedStore       = (*memstore.Store)(nil)
	_ stampede.EvictionCounter  = (*memstore.Store)(nil)
	_ stampede.HoldingStore     = (*memstore.Store)(nil)

	_ stampede.ValueStore[int]  = (*memstore.Values[int])(nil)
	_ stampede.SelfBoundedStore = (*memstore.Values[int])(nil)
	_ stampede.SizedStore       = (*memstore.Values[int])(nil)
	_ stampede.EvictionCounter  = (*memstore.Values[int])(nil)
)

// TestContract runs the shared store suite (the rules of a plain Store; memstore offers no optional
// contract it covers) and the front-ends on a memstore.
func TestContract(t *testing.T) {
	t.Parallel()
	h := storetest.Harness{New: func(t *testing.T) stampede.Store {
		s, err := memstore.New(64 << 20)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}}
	storetest.Run(t, h)
	storetest.RunEngine(t, h)
}
