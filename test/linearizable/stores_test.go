package linearizable

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"

	"github.com/seed-a1426414/stampede"
)

// slowStore is a store with a delay (jitter) before and after each call, so that calls of different
// goroutines interleave in every order. It offers Get, SetEx and Delete, and BatchStore when the store
// it wraps does.
type slowStore struct {
	s     stampede.Store
	rng   *lockedRand
	trace *trace // nil: none
}

func (s slowStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	b, ok, err := s.s.Get(ctx, key)
	s.trace.add("get", key, b)
	return b, ok, err
}

func (s slowStore) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	s.rng.jitter()
	defer s.rng.jitter()
	err := s.s.SetEx(ctx, key, value, ttl)
	s.trace.add("set", key, value)
	return err
}

func (s slowStore) Delete(ctx context.Context, key string) error {
	s.rng.jitter()
	defer s.rng.jitter()
	err := s.s.Delete(ctx, key)
	s.trace.add("delete", key, nil)
	return err
}

// trace records the calls a store made, for a failing history's report.
type trace struct {
	clock *atomic.Int64
	mu    sync.Mutex
	lines []string
}

func (t *trace) add(op, key string, value []byte) {
	if t == nil {
		return
	}
	body := ""
	if v, err := entry.Parse(value); err == nil {
		body = strconv.Quote(string(v.Body))
	}
	t.mu.Lock()
	t.lines = append(t.lines, fmt.Sprintf("  %d %s %s %s", t.clock.Add(1), op, key, body))
	t.mu.Unlock()
}

// fullStore is the contracts a shared store offers for fencing, fleets, tags and announcements.
type fullStore interface {
	stampede.Store
	stampede.BatchStore
	stampede.FencedStore
	stampede.LeaseStore
	stampede.InvalidationStore
	stampede.TagStore
	stampede.TagInvalidationStore
}

// slowFenced is slowStore for a store that offers every contract (backends/redisstore,
// backends/tieredstore over it): each of them is delayed the same way.
type slowFenced struct {
	slowStore
	f fullStore
}

// slow wraps s in the delaying store that offers what s offers.
func slow(s stampede.Store, rng *lockedRand) stampede.Store {
	if f, ok := s.(fullStore); ok {
		return slowFenced{slowStore: slowStore{s: s, rng: rng, trace: rng.trace}, f: f}
	}
	return slowStore{s: s, rng: rng, trace: rng.trace}
}

func (s slowFenced) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.BatchGet(ctx, keys)
}

func (s slowFenced) Ticket(ctx context.Context, key string, ttl time.Duration) (string, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.Ticket(ctx, key, ttl)
}

func (s slowFenced) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.SetFenced(ctx, key, ticket, writeKey, value, ttl, tags)
}

func (s slowFenced) Invalidate(ctx context.Context, key string) error {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.Invalidate(ctx, key)
}

func (s slowFenced) TryLease(ctx context.Context, key string, lease time.Duration) (string, bool, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.TryLease(ctx, key, lease)
}

func (s slowFenced) Release(ctx context.Context, key, token, outcome string) error {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.Release(ctx, key, token, outcome)
}

func (s slowFenced) WaitRelease(ctx context.Context, key string) (string, error) {
	s.rng.jitter()
	return s.f.WaitRelease(ctx, key)
}

func (s slowFenced) Invalidations(fn func(key string)) func() { return s.f.Invalidations(fn) }

func (s slowFenced) TagInvalidations(fn func(tag string)) func() { return s.f.TagInvalidations(fn) }

func (s slowFenced) TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.TagKeys(ctx, key, tags, ttl)
}

func (s slowFenced) PurgeTag(ctx context.Context, tag string) (int, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.PurgeTag(ctx, tag)
}
