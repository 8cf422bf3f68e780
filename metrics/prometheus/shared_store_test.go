// Tests of how the collector reports stores that several caches share, store call times and runs in
// flight: the totals a PromQL sum over the series gives.
package prometheus_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	stampedeprom "github.com/seed-a1426414/stampede/metrics/prometheus"
)

// sum is PromQL's sum(metric), or sum by (by) (metric) when by is not "": the total of the series'
// values per value of the label by.
func sum(got map[string][]*dto.Metric, metric, by string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range got[metric] {
		key := ""
		if by != "" {
			key = label(m, by)
		}
		out[key] += value(m)
	}
	return out
}

// TestCollectorSharedStore: the README's quick start (caches sharing one memory store) beside a loader
// on an entry-bounded values store. sum(stampede_memory_entries) and sum(stampede_memory_bytes) are the
// stores' own totals, each store counted once however many caches use it; the values store, which does
// not know its size, reports its entries and their bound but no byte count; the README's hit-rate query
// gives each cache's Snapshot.HitRate.
func TestCollectorSharedStore(t *testing.T) {
	store, err := memstore.New(64 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	products := stampede.New(nil, store, time.Minute, stampede.WithName("products"))
	dashboards := stampede.New(nil, store, 30*time.Second, stampede.WithName("dashboards"))
	reports := stampede.New(nil, store, time.Minute, stampede.WithName("reports"))
	values, err := memstore.NewValues[any](100)
	require.NoError(t, err)
	t.Cleanup(values.Close)
	users := stampede.NewLoader("users", func(_ context.Context, id int) (string, error) {
		return fmt.Sprint("user ", id), nil
	}, stampede.WithValues(values))
	t.Cleanup(users.Close)

	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.Path) })
	for i, c := range []*stampede.Cache{products, dashboards, reports} {
		h := c.Handler(origin)
		for j := range 3 + i {
			target := fmt.Sprintf("/%d", j%2+i)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
			c.Wait()
		}
	}
	for _, id := range []int{1, 2, 1, 3} {
		_, err := users.Get(context.Background(), id)
		require.NoError(t, err)
		users.Wait()
	}
	store.CleanUp()

	sources := []stampede.StatsSource{products, dashboards, reports, users}
	got := collect(t, stampedeprom.NewCollector(sources...))

	assert.Equal(t, map[string]float64{"": float64(store.Len() + values.Len())}, sum(got, "stampede_memory_entries", ""),
		"sum(stampede_memory_entries): each store once")
	assert.Equal(t, map[string]float64{"": float64(store.Bytes())}, sum(got, "stampede_memory_bytes", ""),
		"sum(stampede_memory_bytes): the memory store's bytes, once; none for the values store")
	assert.Equal(t, map[string]float64{"users": 100}, sum(got, "stampede_memory_max_entries", "store"))
	assert.Equal(t, map[string]float64{"products": float64(store.Len()), "users": float64(values.Len())},
		sum(got, "stampede_memory_entries", "store"), "the store label is its first source's name")
	// Four URLs: the caches share the default key prefix, so one's entry for /1 is another's hit.
	assert.Equal(t, 4, store.Len())
	stores := map[string]string{}
	for _, m := range got["stampede_cache_store_info"] {
		stores[label(m, "cache")] = label(m, "store")
	}
	assert.Equal(t, map[string]string{"products": "products", "dashboards": "products", "reports": "products", "users": "users"}, stores)

	// The README's hit rate: sum by (cache) (hits + stale hits) / sum by (cache) (requests).
	hits, stale, requests := sum(got, "stampede_hits_total", "cache"), sum(got, "stampede_stale_hits_total", "cache"),
		sum(got, "stampede_requests_total", "cache")
	for _, src := range sources {
		s := src.Snapshot()
		assert.InDelta(t, s.HitRate, (hits[s.Name]+stale[s.Name])/requests[s.Name], 1e-12, s.Name)
	}
	assert.Equal(t, 3.0+4+5+4, sum(got, "stampede_requests_total", "")[""], "sum(stampede_requests_total)")
}

// TestCollectorStoreTimes: a source that times its store calls has stampede_store_duration_seconds by
// operation; one that does not has none.
func TestCollectorStoreTimes(t *testing.T) {
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	timed := stampede.New(nil, store, time.Minute, stampede.WithName("timed"), stampede.WithStoreTimings(true))
	untimed := stampede.New(nil, store, time.Minute, stampede.WithName("untimed"), stampede.WithKeyPrefix("u"))
	for _, c := range []*stampede.Cache{timed, untimed} {
		h := c.Handler(http.NotFoundHandler())
		for range 2 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			c.Wait()
		}
	}
	got := collect(t, stampedeprom.NewCollector(timed, untimed))
	counts := map[string]uint64{}
	for _, m := range got["stampede_store_duration_seconds"] {
		require.Equal(t, "timed", label(m, "cache"))
		counts[label(m, "op")] = m.GetHistogram().GetSampleCount()
	}
	// A 404 is stored (RFC 9111 §4.2.2: heuristically cacheable): one write, then a hit.
	assert.Equal(t, map[string]uint64{"get": 2, "set": 1, "delete": 0, "lease": 0, "ticket": 0, "tag": 0}, counts)
}

// TestCollectorInFlight: stampede_in_flight counts a run while it runs.
func TestCollectorInFlight(t *testing.T) {
	c := stampede.New(nil, nil, 0, stampede.WithName("slow"))
	entered, gate := make(chan struct{}), make(chan struct{})
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-gate
	}))
	done := send(context.Background(), h, http.MethodGet, "/")
	<-entered
	got := collect(t, stampedeprom.NewCollector(c))
	require.Len(t, got["stampede_in_flight"], 1)
	assert.Equal(t, 1.0, value(got["stampede_in_flight"][0]))
	close(gate)
	<-done
	got = collect(t, stampedeprom.NewCollector(c))
	assert.Equal(t, 0.0, value(got["stampede_in_flight"][0]))
}
