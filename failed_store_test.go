package stampede_test

// Tests of the one-store-timeout rule (docs/behaviour.md §7.1) on every path of the function API and
// the fleet step, of Stampede.Invalidate reaching Do's flights, and of the tag index not trusting a
// HoldingStore that denies what was just written. They came from a review of the rule's first version.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// failingValues is a plain ValueStore whose Gets all fail; the first runs during() first.
type failingValues struct {
	gets   atomic.Int32
	during func()
}

func (s *failingValues) Get(context.Context, string) (string, bool, error) {
	if s.gets.Add(1) == 1 && s.during != nil {
		s.during()
	}
	return "", false, errStoreDown
}
func (s *failingValues) SetEx(context.Context, string, string, time.Duration) error { return nil }
func (s *failingValues) Delete(context.Context, string) error                       { return nil }

// TestDoFailedReadIsLast: Stampede.Do over a plain ValueStore (hitPlain) reads again after its
// failed read when an invalidation happened during it (docs/behaviour.md §7.1 says it must not).
func TestDoFailedReadIsLast(t *testing.T) {
	store := &failingValues{}
	s := stampede.NewStampede[string](nil, store, stampede.WithCircuitBreaker(1000, time.Second))
	fn := func() (string, *time.Duration, error) { return "v", nil, nil }
	// During the first call's read, a second call for the key runs to its end (its own one failed read).
	store.during = func() { _, _ = s.Do(context.Background(), "k", fn) }
	v, err := s.Do(context.Background(), "k", fn)
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	assert.EqualValues(t, 2, store.gets.Load(), "store reads of two Do calls, one read each")
}

// TestStampedeInvalidateReachesDo: Stampede.Invalidate hashes the key with maphash (engine.ref)
// while Do's flights are acquired with the store key's id (Stampede.ref): the invalidation looks in
// the wrong shard, so a Do run in flight is still joined after Invalidate returned (§11).
func TestStampedeInvalidateReachesDo(t *testing.T) {
	s := stampede.NewStampede[string](nil, nil) // coalesce only: the flights alone
	started, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	go func() {
		_, _ = s.Do(context.Background(), "k", func() (string, *time.Duration, error) {
			runs.Add(1)
			close(started)
			<-release
			return "old", nil, nil
		})
	}()
	<-started
	require.NoError(t, s.Invalidate(context.Background(), "k"))
	done := make(chan string, 1)
	go func() {
		v, _ := s.Do(context.Background(), "k", func() (string, *time.Duration, error) { runs.Add(1); return "new", nil, nil })
		done <- v
	}()
	select {
	case v := <-done: // it did not wait for the run that the invalidation reached
		assert.Equal(t, "new", v)
	case <-time.After(time.Minute):
		t.Error("a Do call after Invalidate returned waits on the run that started before it")
	}
	close(release)
}

// fencedFailing is the memory store with fenced writes whose Gets all fail; it counts tickets.
type fencedFailing struct {
	*memstore.Store
	gets, tickets atomic.Int32
}

func (s *fencedFailing) Get(context.Context, string) ([]byte, bool, error) {
	s.gets.Add(1)
	return nil, false, errStoreDown
}
func (s *fencedFailing) Ticket(context.Context, string, time.Duration) (string, error) {
	s.tickets.Add(1)
	return "t", nil
}
func (s *fencedFailing) SetFenced(ctx context.Context, _, _, wk string, v []byte, ttl time.Duration, _ []string) (bool, error) {
	return true, s.Store.SetEx(ctx, wk, v, ttl)
}
func (s *fencedFailing) Invalidate(ctx context.Context, key string) error {
	return s.Store.Delete(ctx, key)
}

// TestGetManyFailedReadTakesNoTicket: after GetMany's (batched) read failed, its loads still take
// a ticket per key (runBatch, or leadStore through leadMany): further store calls before the load.
func TestGetManyFailedReadTakesNoTicket(t *testing.T) {
	for _, batch := range []bool{false, true} {
		store := &fencedFailing{Store: newMem(t)}
		opts := []stampede.LoaderOption{stampede.WithStore(store), stampede.WithCircuitBreaker(1000, time.Second)}
		if batch {
			opts = append(opts, stampede.WithBatchLoad(func(_ context.Context, ks []string) (map[string]string, error) {
				m := map[string]string{}
				for _, k := range ks {
					m[k] = "v" + k
				}
				return m, nil
			}))
		}
		l := stampede.NewLoader("many", func(_ context.Context, k string) (string, error) { return "v" + k, nil }, opts...)
		got, err := l.GetMany(context.Background(), []string{"a", "b", "c"})
		require.NoError(t, err)
		assert.Len(t, got, 3)
		l.Close()
		assert.EqualValues(t, 0, store.tickets.Load(), "tickets after a failed read (batch load %v)", batch)
	}
}

// prefixedMem namespaces its keys, and embeds the memory store: Holds is promoted unchanged, so it
// answers about keys the wrapper never writes (false for every key the Cache asks about).
type prefixedMem struct{ *memstore.Store }

func (s prefixedMem) Get(ctx context.Context, k string) ([]byte, bool, error) {
	return s.Store.Get(ctx, "ns:"+k)
}
func (s prefixedMem) SetEx(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	return s.Store.SetEx(ctx, "ns:"+k, v, ttl)
}
func (s prefixedMem) Delete(ctx context.Context, k string) error { return s.Store.Delete(ctx, "ns:"+k) }

// TestPromotedHoldsNeverLosesAPurge: a wrapper that embeds *memstore.Store but changes its keys is a
// HoldingStore by method promotion, and its Holds denies every entry the Cache wrote: the full tag
// index must not prune on its word, or PurgeTag would miss stored entries.
func TestPromotedHoldsNeverLosesAPurge(t *testing.T) {
	c := stampede.New(nil, prefixedMem{newMem(t)}, time.Hour)
	stampede.SetTagIndexMax(c, 2)
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Tag", "t")
		_, _ = w.Write([]byte("page"))
	}))
	for _, p := range []string{"/a", "/b", "/c"} {
		serveDirect(h, httptest.NewRequest("GET", p, nil))
		c.Wait()
	}
	require.NoError(t, c.PurgeTag(context.Background(), "t"))
	for _, p := range []string{"/a", "/b", "/c"} {
		assert.NotEqual(t, "HIT", serveDirect(h, httptest.NewRequest("GET", p, nil)).Header().Get("X-Cache"),
			"%s served after PurgeTag of its tag", p)
		c.Wait()
	}
}

// leasingFailing is fencedFailing with leases: the lease is always another replica's, which releases
// it at once having stored the value; the Gets fail (a store timing out). It counts every call.
type leasingFailing struct {
	fencedFailing
	leases atomic.Int32
}

// Get misses the first time (the call's look-up), then fails (the fleet read).
func (s *leasingFailing) Get(context.Context, string) ([]byte, bool, error) {
	if s.gets.Add(1) == 1 {
		return nil, false, nil
	}
	return nil, false, errStoreDown
}

func (s *leasingFailing) TryLease(context.Context, string, time.Duration) (string, bool, error) {
	s.leases.Add(1)
	return "", false, nil
}
func (s *leasingFailing) Release(context.Context, string, string, string) error { return nil }
func (s *leasingFailing) WaitRelease(context.Context, string) (string, error)   { return "stored", nil }

// TestFleetReadFailedIsLast: a Loader call whose look-up succeeds (a miss) but whose fleet
// read (fleetServe, after the holder's release) fails still asks for a second lease and a ticket.
func TestFleetReadFailedIsLast(t *testing.T) {
	store := &leasingFailing{fencedFailing: fencedFailing{Store: newMem(t)}}
	l := stampede.NewLoader("fleet", func(_ context.Context, k string) (string, error) { return "v" + k, nil },
		stampede.WithStore(store), stampede.WithFleetCoalescing(time.Second), stampede.WithCircuitBreaker(1000, time.Second))
	t.Cleanup(l.Close)
	_, err := l.Get(context.Background(), "k")
	require.NoError(t, err)
	t.Logf("gets %d, leases %d, tickets %d", store.gets.Load(), store.leases.Load(), store.tickets.Load())
	// Calls: Get (miss), TryLease (another holds it), WaitRelease, Get (fails): nothing more.
	assert.EqualValues(t, 1, store.leases.Load(), "leases asked for")
	assert.EqualValues(t, 0, store.tickets.Load(), "tickets asked for after the failed fleet read")
}
