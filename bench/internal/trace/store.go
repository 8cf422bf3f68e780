package trace

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede"
)

// CountingStore counts the calls made to the store it wraps. It is a measurement, not a feature: the
// trace reports how many store GETs the middleware made per request.
type CountingStore struct {
	stampede.Store
	gets, sets atomic.Int64
}

// Count wraps s.
func Count(s stampede.Store) *CountingStore { return &CountingStore{Store: s} }

// Get counts and forwards.
func (c *CountingStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key)
}

// SetEx counts and forwards.
func (c *CountingStore) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.sets.Add(1)
	return c.Store.SetEx(ctx, key, value, ttl)
}

// CallTimeout forwards the wrapped store's bound on its own calls, so that wrapping a store does not
// change how the middleware treats it (a memory-store hit adds no deadline). A store without the method
// reports no bound, so the middleware adds its own deadline as it would without the wrapper.
func (c *CountingStore) CallTimeout() time.Duration {
	if b, ok := c.Store.(stampede.SelfBoundedStore); ok {
		return b.CallTimeout()
	}
	return math.MaxInt64
}

// AuxOf and AttachAux forward the wrapped store's annotations (stampede.AnnotatedStore), so that a
// hit on a wrapped memory store is served as without the wrapper: neither checksummed nor validated
// again. Over a store without annotations, AuxOf finds none and AttachAux keeps nothing.
func (c *CountingStore) AuxOf(key string, value []byte) any {
	if a, ok := c.Store.(stampede.AnnotatedStore); ok {
		return a.AuxOf(key, value)
	}
	return nil
}

// AttachAux forwards; see AuxOf.
func (c *CountingStore) AttachAux(key string, value []byte, aux any) {
	if a, ok := c.Store.(stampede.AnnotatedStore); ok {
		a.AttachAux(key, value, aux)
	}
}

// Gets returns the number of Get calls so far.
func (c *CountingStore) Gets() int64 { return c.gets.Load() }

// Sets returns the number of SetEx calls so far.
func (c *CountingStore) Sets() int64 { return c.sets.Load() }
