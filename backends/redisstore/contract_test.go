package redisstore_test

import (
	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
)

// The optional store contracts the middleware detects (store.go in the root package) that redisstore
// means to offer: a signature that drifts fails the build here instead of silently turning fleet
// coalescing, shared tags or batched reads off.
var (
	_ stampede.Store                = (*redisstore.Store)(nil)
	_ stampede.BatchStore           = (*redisstore.Store)(nil)
	_ stampede.LeaseStore           = (*redisstore.Store)(nil)
	_ stampede.TagStore             = (*redisstore.Store)(nil)
	_ stampede.InvalidationStore    = (*redisstore.Store)(nil)
	_ stampede.SelfBoundedStore     = (*redisstore.Store)(nil)
	_ stampede.FencedStore          = (*redisstore.Store)(nil)
	_ stampede.TagInvalidationStore = (*redisstore.Store)(nil)
)
