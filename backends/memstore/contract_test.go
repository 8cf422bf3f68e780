package memstore_test

import (
	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// The optional store contracts the middleware detects (store.go in the root package) that memstore
// means to offer: a signature that drifts fails the build here instead of silently turning a feature off.
var (
	_ stampede.Store            = (*memstore.Store)(nil)
	_ stampede.AnnotatedStore   = (*memstore.Store)(nil)
	_ stampede.SelfBoundedStore = (*memstore.Store)(nil)
	_ stampede.SizedStore       = (*memstore.Store)(nil)
	_ stampede.EvictionCounter  = (*memstore.Store)(nil)

	_ stampede.ValueStore[int]  = (*memstore.Values[int])(nil)
	_ stampede.SelfBoundedStore = (*memstore.Values[int])(nil)
	_ stampede.SizedStore       = (*memstore.Values[int])(nil)
	_ stampede.EvictionCounter  = (*memstore.Values[int])(nil)
)
