package linearizable

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	f   fullStore
	ann *announcer // nil outside a fleet
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
	tk, err := s.f.Ticket(ctx, key, ttl)
	s.trace.add("ticket "+tk, key, nil)
	return tk, err
}

func (s slowFenced) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, tags []string) (bool, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	ok, err := s.f.SetFenced(ctx, key, ticket, writeKey, value, ttl, tags)
	s.trace.add(fmt.Sprintf("setfenced(stored=%v, err=%v, tags=%v)", ok, err, tags), writeKey, value)
	return ok, err
}

func (s slowFenced) Invalidate(ctx context.Context, key string) error {
	s.rng.jitter()
	defer s.rng.jitter()
	err := s.f.Invalidate(ctx, key)
	s.trace.add(fmt.Sprintf("invalidate(err=%v)", err), key, nil)
	return err
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

func (s slowFenced) Invalidations(fn func(key string)) func() {
	if s.ann != nil {
		fn = s.ann.wrap(fn)
	}
	return s.f.Invalidations(fn)
}

func (s slowFenced) TagInvalidations(fn func(tag string)) func() { return s.f.TagInvalidations(fn) }

func (s slowFenced) TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error {
	s.rng.jitter()
	defer s.rng.jitter()
	return s.f.TagKeys(ctx, key, tags, ttl)
}

func (s slowFenced) PurgeTag(ctx context.Context, tag string) (int, error) {
	s.rng.jitter()
	defer s.rng.jitter()
	n, err := s.f.PurgeTag(ctx, tag)
	s.trace.add(fmt.Sprintf("purgetag(n=%d, err=%v)", n, err), tag, nil)
	return n, err
}

// announcer lets a fleet's history wait until every replica's subscription delivered what was announced
// before (see history.settle): it publishes a marker on the invalidation channel, which Redis delivers
// to each subscriber after every message published before it, and waits until each replica's store saw
// the marker. A subscription may not be confirmed yet when the marker is first published, so it is
// published again until every subscription saw it.
type announcer struct {
	client redis.UniversalClient
	n      atomic.Int64
	mu     sync.Mutex
	subs   int                     // subscriptions made through the stores of this announcer
	marks  map[string]map[int]bool // marker → the subscriptions that saw it
}

func newAnnouncer(client redis.UniversalClient) *announcer {
	return &announcer{client: client, marks: map[string]map[int]bool{}}
}

// slow is the package's slow for a replica of the fleet: its subscriptions report markers.
func (a *announcer) slow(s stampede.Store, rng *lockedRand) stampede.Store {
	f := slow(s, rng).(slowFenced)
	f.ann = a
	return f
}

const markPrefix = "lin-settle:"

// wrap returns fn reporting markers instead of passing them on.
func (a *announcer) wrap(fn func(string)) func(string) {
	a.mu.Lock()
	id := a.subs
	a.subs++
	a.mu.Unlock()
	return func(key string) {
		if !strings.HasPrefix(key, markPrefix) {
			fn(key)
			return
		}
		a.mu.Lock()
		if seen := a.marks[key]; seen != nil {
			seen[id] = true
		}
		a.mu.Unlock()
	}
}

func (a *announcer) settle(t *testing.T) {
	mark := markPrefix + strconv.FormatInt(a.n.Add(1), 10)
	a.mu.Lock()
	a.marks[mark] = map[int]bool{}
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.marks, mark)
		a.mu.Unlock()
	}()
	deadline := time.Now().Add(time.Minute)
	for wait := 100 * time.Microsecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if err := a.client.Publish(context.Background(), "stampede-invalidate", mark).Err(); err != nil {
			t.Errorf("publish %s: %v", mark, err)
			return
		}
		// Polling: the marker's delivery has no event this goroutine could wait on besides the map.
		for end := time.Now().Add(wait); time.Now().Before(end); {
			a.mu.Lock()
			done := len(a.marks[mark]) == a.subs
			a.mu.Unlock()
			if done {
				return
			}
			time.Sleep(wait / 10)
		}
		if time.Now().After(deadline) {
			t.Errorf("the replicas did not all receive %s within a minute", mark)
			return
		}
	}
}
