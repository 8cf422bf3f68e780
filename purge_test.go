package stampede_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// TestPurge: Purge removes one URL's entry (also when asked with another method), PurgeTag every entry
// whose response carried the tag (Cache-Tag or Surrogate-Key, spaces or commas), through the in-process
// tag index of a store that keeps none; a request that is never cached is ErrNotCached.
func TestPurge(t *testing.T) {
	t.Parallel()
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
		if tags := r.URL.Query().Get("tags"); tags != "" {
			w.Header().Set(r.URL.Query().Get("h"), tags)
		}
		fmt.Fprintf(w, "run %d", n)
	}}
	c := stampede.New(nil, newMem(t), time.Minute,
		stampede.WithKeyFunc(func(r *http.Request) (string, error) {
			if r.Header.Get("X-Fail") != "" {
				return "", errors.New("no key")
			}
			return "", nil
		}))
	h := c.Handler(o)
	fetch := func(url string) string {
		rec := serveDirect(h, httptest.NewRequest(http.MethodGet, url, nil))
		c.Wait()
		return rec.Header().Get("X-Cache")
	}
	ctx := context.Background()
	urls := []string{"/a", "/b?h=Cache-Tag&tags=news,sport", "/c?h=Surrogate-Key&tags=sport%20news", "/d?h=Cache-Tag&tags=other"}
	for _, u := range urls {
		require.Equal(t, "MISS", fetch(u), u)
		require.Equal(t, "HIT", fetch(u), u)
	}

	require.NoError(t, c.Purge(ctx, httptest.NewRequest("PURGE", "/a", nil)))
	assert.Equal(t, "MISS", fetch("/a"), "purged by URL")

	require.NoError(t, c.PurgeTag(ctx, "news"))
	assert.Equal(t, "MISS", fetch(urls[1]), "tagged news")
	assert.Equal(t, "MISS", fetch(urls[2]), "tagged news")
	assert.Equal(t, "HIT", fetch(urls[3]), "not tagged news")

	req := httptest.NewRequest(http.MethodGet, "/a", nil)
	req.Header.Set("X-Fail", "1")
	assert.ErrorIs(t, c.Purge(ctx, req), stampede.ErrNotCached)
	assert.NoError(t, stampede.New(nil, nil, 0).PurgeTag(ctx, "x"), "nothing stored, nothing to purge")
}

// TestFleetCoalescingOption: a negative lease panics at build time; a store without leases ignores it.
func TestFleetCoalescingOption(t *testing.T) {
	t.Parallel()
	assert.PanicsWithValue(t, "stampede: WithFleetCoalescing expects lease >= 0, got -1s", func() {
		stampede.New(nil, nil, 0, stampede.WithFleetCoalescing(-time.Second))
	})
	c := stampede.New(nil, newMem(t), time.Minute, stampede.WithFleetCoalescing(time.Second))
	rec := serveDirect(c.Handler(&origin{serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {}}),
		httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, "MISS", rec.Header().Get("X-Cache"))
	c.Wait()
}

// TestTagIndexFullNeverLosesATag: when the in-process tag index is full, a tagged response is not
// stored (so PurgeTag never misses an entry it should purge); pairs whose entry expired make room again.
func TestTagIndexFullNeverLosesATag(t *testing.T) {
	t.Parallel()
	idx := stampede.NewTagIndex(4)
	now := time.Unix(1000, 0)
	assert.True(t, stampede.TagIndexAdd(idx, []string{"a", "b"}, []string{"k1", "k2"}, now.Add(time.Minute), now))
	assert.False(t, stampede.TagIndexAdd(idx, []string{"c"}, []string{"k3"}, now.Add(time.Hour), now), "full")
	assert.True(t, stampede.TagIndexAdd(idx, []string{"a"}, []string{"k1"}, now.Add(time.Hour), now), "a pair already there fits")
	assert.True(t, stampede.TagIndexAdd(idx, []string{"c"}, []string{"k3"}, now.Add(time.Hour), now.Add(2*time.Minute)),
		"pairs that expired make room")
	assert.ElementsMatch(t, []string{"k1"}, stampede.TagIndexTake(idx, "a"), "a's k1 was extended to an hour")
	assert.ElementsMatch(t, []string{"k3"}, stampede.TagIndexTake(idx, "c"))
}

// TestTagIndexPrunesEvicted: a full index over a store that says what it holds (HoldingStore) drops
// the pairs of entries the store no longer holds, but never a pair whose write has not succeeded (the
// store may not hold that entry yet), scans at most once per second, and does not prune on the word of a
// store that denied holding an entry just written (a wrapper that changes keys).
func TestTagIndexPrunesEvicted(t *testing.T) {
	t.Parallel()
	held := map[string]bool{}
	idx := stampede.NewHoldingTagIndex(2, func(k string) bool { return held[k] })
	now := time.Unix(1000, 0)
	hour := now.Add(time.Hour)
	seq, ok := stampede.TagIndexAddSeq(idx, []string{"a"}, []string{"k1"}, hour, now)
	require.True(t, ok)
	held["k1"] = true
	stampede.TagIndexSettle(idx, []string{"a"}, []string{"k1"}, seq) // k1 is written
	_, ok = stampede.TagIndexAddSeq(idx, []string{"a"}, []string{"k2"}, hour, now)
	require.True(t, ok) // k2's write is on its way: the store does not hold it yet
	_, ok = stampede.TagIndexAddSeq(idx, []string{"a"}, []string{"k3"}, hour, now)
	assert.False(t, ok, "full: the store holds k1, and k2's write is on its way")

	held["k1"] = false // evicted
	_, ok = stampede.TagIndexAddSeq(idx, []string{"a"}, []string{"k3"}, hour, now.Add(time.Second-1))
	assert.False(t, ok, "pruned less than a second ago: no scan")
	_, ok = stampede.TagIndexAddSeq(idx, []string{"a"}, []string{"k3"}, hour, now.Add(time.Second))
	assert.True(t, ok, "the evicted entry's pair makes room")
	assert.ElementsMatch(t, []string{"k2", "k3"}, stampede.TagIndexTake(idx, "a"), "k2's write has not ended: kept")

	liar := stampede.NewHoldingTagIndex(1, func(string) bool { return false })
	seq, ok = stampede.TagIndexAddSeq(liar, []string{"a"}, []string{"k1"}, hour, now)
	require.True(t, ok)
	stampede.TagIndexSettle(liar, []string{"a"}, []string{"k1"}, seq) // written, yet "not held"
	_, ok = stampede.TagIndexAddSeq(liar, []string{"a"}, []string{"k2"}, hour, now.Add(time.Minute))
	assert.False(t, ok, "a store that denied holding an entry just written is not trusted to prune")
	assert.ElementsMatch(t, []string{"k1"}, stampede.TagIndexTake(liar, "a"))
}

// TestTaggedResponsesOutliveEvictions: behind a memory store that evicts (room for a few entries), a
// tag index bounded to 16 pairs keeps storing tagged responses (200 URLs, two tags each) because the
// pairs of evicted entries are dropped; and PurgeTag still reaches every entry the store holds.
func TestTaggedResponsesOutliveEvictions(t *testing.T) {
	t.Parallel()
	store, err := memstore.New(16 << 10) // a few entries of 2 KiB
	require.NoError(t, err)
	t.Cleanup(store.Close)
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := stampede.New(nil, store, time.Hour, stampede.WithClock(clock))
	stampede.SetTagIndexMax(c, 16)
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Tag", "all, page"+r.URL.Path)
		_, _ = w.Write(bytes.Repeat([]byte("x"), 2<<10))
	}))
	for i := range 200 {
		serveDirect(h, httptest.NewRequest("GET", fmt.Sprintf("/p%d", i), nil))
		c.Wait()
		mu.Lock()
		now = now.Add(time.Second) // lets the full index scan again
		mu.Unlock()
	}
	assert.Zero(t, c.Snapshot().StoreSetErrors, "tagged responses refused for a full index")
	var held []string
	for i := range 200 {
		path := fmt.Sprintf("/p%d", i)
		if store.Holds(stampede.StoreKey(c, httptest.NewRequest("GET", path, nil))) {
			held = append(held, path)
		}
	}
	require.NotEmpty(t, held, "the store holds some of the last responses")
	require.NoError(t, c.PurgeTag(t.Context(), "all"))
	for _, path := range held {
		assert.Equal(t, "MISS", serveDirect(h, httptest.NewRequest("GET", path, nil)).Header().Get("X-Cache"),
			"%s was held when its tag was purged", path)
		c.Wait()
	}
}

// BenchmarkTaggedMiss: a tagged miss costs O(its tags), not O(the index): with 100,000 pairs in the
// in-process index (60,000 to start with, two more per miss) it stays within a few percent of an
// untagged miss. Run it with -benchtime=20000x, below the index bound.
func BenchmarkTaggedMiss(b *testing.B) {
	for _, tc := range []struct {
		name   string
		tagged bool
	}{{"untagged", false}, {"tagged/100k-pairs", true}} {
		b.Run(tc.name, func(b *testing.B) {
			store, _ := memstore.New(1 << 30)
			defer store.Close()
			c := stampede.New(nil, store, time.Minute)
			if tc.tagged {
				idx := stampede.CacheTagIndex(c)
				now := time.Now()
				for i := range 60_000 { // and up to 40,000 more as the benchmark stores its 20,000 responses
					stampede.TagIndexAdd(idx, []string{fmt.Sprint("t", i%1000)}, []string{fmt.Sprint("key", i)}, now.Add(time.Hour), now)
				}
			}
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.tagged {
					w.Header().Set("Cache-Tag", "news, sport")
				}
				_, _ = w.Write([]byte("x"))
			}))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprint("/m", i), nil))
			}
			b.StopTimer()
			c.Wait()
		})
	}
}

// TestPurgeTagTieredWithoutTagIndex: over backends/tieredstore whose second tier keeps no tag index (a
// memory store), the Cache keeps its own index, and PurgeTag purges what it tagged: tieredstore has the
// tag methods, but says with KeepsTags that it cannot keep them.
func TestPurgeTagTieredWithoutTagIndex(t *testing.T) {
	t.Parallel()
	store := tieredstore.New(newMem(t), newMem(t))
	t.Cleanup(store.Close)
	c := stampede.New(nil, store, time.Minute)
	var runs atomic.Int64
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Tag", "product-42")
		fmt.Fprintf(w, "run %d", runs.Add(1))
	}))
	serve := func() string {
		rec := serveDirect(h, httptest.NewRequest("GET", "/p/42", nil))
		c.Wait()
		return rec.Header().Get("X-Cache") + " " + rec.Body.String()
	}
	require.Equal(t, "MISS run 1", serve())
	require.Equal(t, "HIT run 1", serve())
	require.NoError(t, c.PurgeTag(t.Context(), "product-42"))
	assert.Equal(t, "MISS run 2", serve(), "the tagged entry is gone")
}
