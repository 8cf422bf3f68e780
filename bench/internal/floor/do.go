package floor

import (
	"context"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/singleflight"
)

// Func is the floor of a function cache, the counterpart of go-chi/stampede's Do: an otter v2 cache of
// values in front of a singleflight group of loads. Values expire after the TTL, as Do's do (otter's
// expiry bookkeeping is then a cost both pay); a load that fails is not cached.
type Func[V any] struct {
	cache *otter.Cache[string, V]
	group singleflight.Group
}

// NewFunc returns a function cache of at most size entries, each kept for ttl.
func NewFunc[V any](size int, ttl time.Duration) *Func[V] {
	return &Func[V]{cache: otter.Must(&otter.Options[string, V]{MaximumSize: size, ExpiryCalculator: otter.ExpiryWriting[string, V](ttl)})}
}

// Do returns key's cached value, or runs load once for all the callers that miss key at the same time
// and caches what it returns.
func (f *Func[V]) Do(_ context.Context, key string, load func() (V, error)) (V, error) {
	if v, ok := f.cache.GetIfPresent(key); ok {
		return v, nil
	}
	v, err, _ := f.group.Do(key, func() (any, error) {
		if v, ok := f.cache.GetIfPresent(key); ok { // stored by a load that just finished
			return v, nil
		}
		v, err := load()
		if err != nil {
			return nil, err
		}
		f.cache.Set(key, v)
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	val, ok := v.(V)
	if !ok {
		var zero V
		return zero, fmt.Errorf("floor: singleflight returned %T", v)
	}
	return val, nil
}
