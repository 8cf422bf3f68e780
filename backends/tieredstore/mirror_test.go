package tieredstore

import "github.com/seed-a1426414/stampede"

// tieredstore detects what its tiers offer through interfaces of its own (it does not import the root
// package); each must stay the same method set as the root package's exported contract, in both
// directions, or a tier's feature would silently stop passing through.
var (
	_ stampede.LeaseStore        = fleet(nil)
	_ fleet                      = stampede.LeaseStore(nil)
	_ stampede.TagStore          = tags(nil)
	_ tags                       = stampede.TagStore(nil)
	_ stampede.BatchStore        = batchGetter(nil)
	_ batchGetter                = stampede.BatchStore(nil)
	_ stampede.InvalidationStore = interface{ Invalidations(func(string)) func() }(nil)
	_ stampede.AnnotatedStore    = auxTier(nil)
	_ auxTier                    = stampede.AnnotatedStore(nil)
)
