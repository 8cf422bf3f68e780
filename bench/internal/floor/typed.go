package floor

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"golang.org/x/sync/singleflight"
)

// Typed is the floor of a typed function cache, the counterpart of stampede's Loader: a sync.Map of
// values keyed by the caller's int64 key in front of a singleflight group of loads. Nothing expires and
// nothing is bounded; a load that fails is not cached. It bounds what a shared in-memory table with one
// load per key in flight can cost, as [Cache] does for the middleware.
type Typed[V any] struct {
	values sync.Map // int64 -> V
	group  singleflight.Group
}

// Get returns k's value, or runs load once for all the callers that miss k at the same time and keeps
// what it returns.
func (t *Typed[V]) Get(ctx context.Context, k int64, load func(context.Context, int64) (V, error)) (V, error) {
	if v, ok := t.values.Load(k); ok {
		return v.(V), nil
	}
	v, err, _ := t.group.Do(strconv.FormatInt(k, 10), func() (any, error) {
		if v, ok := t.values.Load(k); ok { // kept by a load that just finished
			return v, nil
		}
		v, err := load(ctx, k)
		if err != nil {
			return nil, err
		}
		t.values.Store(k, v)
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

// GetMany returns the values of ks: those it holds, and the others from one call of load, which it
// keeps. Concurrent calls missing the same keys may load them twice: the floor does not coalesce
// batches.
func (t *Typed[V]) GetMany(ctx context.Context, ks []int64, load func(context.Context, []int64) (map[int64]V, error)) (map[int64]V, error) {
	out := make(map[int64]V, len(ks))
	var missing []int64
	for _, k := range ks {
		if v, ok := t.values.Load(k); ok {
			out[k] = v.(V)
		} else {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	loaded, err := load(ctx, missing)
	for k, v := range loaded {
		t.values.Store(k, v)
		out[k] = v
	}
	return out, err
}
