package stampede

import (
	"context"
	"time"
)

// Store persists encoded responses between requests. It is method-compatible with goware/cachestore2's
// Store[[]byte], so adapters written for that interface plug in unchanged.
//
// Values are opaque bytes in stampede's versioned entry format; a store must return them unchanged and
// must not modify a slice after handing it out (the middleware replays from it without copying).
// Get reports a missing key as (nil, false, nil). Every method must respect ctx: the middleware bounds
// each call with a deadline (see [WithStoreTimeout]), and an error or a timeout only ever counts as a
// miss (SPEC §7.1).
//
// A store that bounds its own calls may say so with a method CallTimeout() time.Duration (the memory
// store returns 0: it never blocks; the Redis store its per-operation timeout). When that bound is no
// longer than the store timeout, the middleware adds no deadline of its own, which saves a hit the
// allocations of a timer.
type Store interface {
	// Get returns the value stored under key and whether it was found.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// SetEx stores value under key for ttl, which is always above zero.
	SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}
