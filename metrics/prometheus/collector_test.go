package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	stampedeprom "github.com/seed-a1426414/stampede/metrics/prometheus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// traffic builds two caches, one on the memory store and one coalescing only, and sends each a known mix
// of requests: hits, misses, passes, a failure, an unshareable response.
func traffic(t *testing.T) (products, users *stampede.Cache, store *memstore.Store) {
	t.Helper()
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	products = stampede.New(nil, store, time.Minute, stampede.WithName("products"))
	users = stampede.New(nil, nil, 0, stampede.WithName("users"))
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			time.Sleep(40 * time.Millisecond) // in the bubble's fake time: the run takes exactly that
			w.WriteHeader(http.StatusInternalServerError)
		case "/private":
			w.Header().Set("Cache-Control", "private")
		}
		_, _ = io.WriteString(w, "body")
	})
	for _, c := range []*stampede.Cache{products, users} {
		h := c.Handler(origin)
		for _, target := range []string{"/a", "/a", "/a", "/fail", "/private", "/private"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
			c.Wait()
		}
		// A POST to another path: it passes through, and its invalidation (RFC 9111 §4.4) leaves /a stored.
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/b", strings.NewReader("")))
	}
	store.CleanUp() // settle the byte count, so the snapshot and the scrape agree
	return products, users, store
}

// TestCollectorLint: the metrics follow Prometheus' naming and typing conventions.
func TestCollectorLint(t *testing.T) {
	products, users, _ := traffic(t)
	problems, err := testutil.CollectAndLint(stampedeprom.NewCollector(products, users))
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestCollectorExact: the exact exposition for the known traffic.
func TestCollectorExact(t *testing.T) {
	products, users, _ := traffic(t)
	want := `
# HELP stampede_requests_total Requests that reached the middleware.
# TYPE stampede_requests_total counter
stampede_requests_total{cache="products"} 7
stampede_requests_total{cache="users"} 7
# HELP stampede_hits_total Requests served a fresh response from the store (X-Cache: HIT).
# TYPE stampede_hits_total counter
stampede_hits_total{cache="products"} 2
stampede_hits_total{cache="users"} 0
# HELP stampede_misses_total Requests that ran the handler for the others (X-Cache: MISS).
# TYPE stampede_misses_total counter
stampede_misses_total{cache="products"} 3
stampede_misses_total{cache="users"} 5
# HELP stampede_handler_failures_total Handler runs that answered 5xx, panicked or called runtime.Goexit.
# TYPE stampede_handler_failures_total counter
stampede_handler_failures_total{cache="products"} 1
stampede_handler_failures_total{cache="users"} 1
# HELP stampede_unshareable_total Handler runs whose response could not be shared, by reason.
# TYPE stampede_unshareable_total counter
stampede_unshareable_total{cache="products",reason="authorization"} 0
stampede_unshareable_total{cache="products",reason="event-stream"} 0
stampede_unshareable_total{cache="products",reason="hijacked"} 0
stampede_unshareable_total{cache="products",reason="incomplete"} 0
stampede_unshareable_total{cache="products",reason="no-store"} 0
stampede_unshareable_total{cache="products",reason="partial"} 0
stampede_unshareable_total{cache="products",reason="private"} 1
stampede_unshareable_total{cache="products",reason="set-cookie"} 0
stampede_unshareable_total{cache="products",reason="status"} 0
stampede_unshareable_total{cache="products",reason="too-large"} 0
stampede_unshareable_total{cache="products",reason="trailers"} 0
stampede_unshareable_total{cache="products",reason="vary-star"} 0
stampede_unshareable_total{cache="users",reason="authorization"} 0
stampede_unshareable_total{cache="users",reason="event-stream"} 0
stampede_unshareable_total{cache="users",reason="hijacked"} 0
stampede_unshareable_total{cache="users",reason="incomplete"} 0
stampede_unshareable_total{cache="users",reason="no-store"} 0
stampede_unshareable_total{cache="users",reason="partial"} 0
stampede_unshareable_total{cache="users",reason="private"} 1
stampede_unshareable_total{cache="users",reason="set-cookie"} 0
stampede_unshareable_total{cache="users",reason="status"} 0
stampede_unshareable_total{cache="users",reason="too-large"} 0
stampede_unshareable_total{cache="users",reason="trailers"} 0
stampede_unshareable_total{cache="users",reason="vary-star"} 0
# HELP stampede_store_errors_total Store calls that failed or timed out, by operation.
# TYPE stampede_store_errors_total counter
stampede_store_errors_total{cache="products",op="get"} 0
stampede_store_errors_total{cache="products",op="set"} 0
stampede_store_errors_total{cache="users",op="get"} 0
stampede_store_errors_total{cache="users",op="set"} 0
# HELP stampede_memory_entries Entries held by the in-process store.
# TYPE stampede_memory_entries gauge
stampede_memory_entries{store="products"} 1
`
	c := stampedeprom.NewCollector(products, users)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"stampede_requests_total", "stampede_hits_total", "stampede_misses_total", "stampede_handler_failures_total",
		"stampede_unshareable_total", "stampede_store_errors_total", "stampede_memory_entries"))
	// /a missed once then hit twice, /fail and /private missed, /private then passed (hit-for-pass), POST passed.
	assert.Equal(t, 1.0, passes(t, c, "products", "hit-for-pass"))
	assert.Equal(t, 1.0, passes(t, c, "products", "method"))
	assert.Equal(t, 1.0, passes(t, c, "users", "hit-for-pass"))
}

func passes(t *testing.T, c prometheus.Collector, cache, reason string) float64 {
	t.Helper()
	for _, m := range collect(t, c)["stampede_passes_total"] {
		if label(m, "cache") == cache && label(m, "reason") == reason {
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no stampede_passes_total{cache=%q,reason=%q}", cache, reason)
	return 0
}

// collect gathers c through a pedantic registry, which also checks Collect against Describe.
func collect(t *testing.T, c prometheus.Collector) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string][]*dto.Metric{}
	for _, f := range families {
		out[f.GetName()] = f.GetMetric()
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestCollectorEqualsSnapshot: every figure of every cache's Snapshot is scraped with the same value.
func TestCollectorEqualsSnapshot(t *testing.T) {
	products, users, _ := traffic(t)
	got := collect(t, stampedeprom.NewCollector(products, users))
	for _, cache := range []*stampede.Cache{products, users} {
		checkScrape(t, got, cache.Snapshot(), nil)
	}
}

func filter(ms []*dto.Metric, cache string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range ms {
		if label(m, "cache") == cache {
			out = append(out, m)
		}
	}
	return out
}

// TestCollectorDuplicateNames: two caches with one name would collide on the cache label.
func TestCollectorDuplicateNames(t *testing.T) {
	a := stampede.New(nil, nil, 0)
	b := stampede.New(nil, nil, 0)
	assert.PanicsWithValue(t,
		`stampede/prometheus: two caches are named "stampede"; name them apart with stampede.WithName`,
		func() { stampedeprom.NewCollector(a, b) })
	assert.PanicsWithValue(t, "stampede/prometheus: NewCollector expects non-nil caches",
		func() { stampedeprom.NewCollector(nil) })
	assert.NotPanics(t, func() { stampedeprom.NewCollector(a, stampede.New(nil, nil, 0, stampede.WithName("b"))) })
}

// Register a collector for two named caches; serve the registry with promhttp.HandlerFor at /metrics.
func ExampleNewCollector() {
	products := stampede.New(nil, nil, 0, stampede.WithName("products"))
	users := stampede.New(nil, nil, 0, stampede.WithName("users"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(stampedeprom.NewCollector(products, users))

	products.Handler(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() == "stampede_requests_total" {
			for _, m := range f.GetMetric() {
				fmt.Println(m.GetLabel()[0].GetValue(), m.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// products 1
	// users 0
}

// TestRootHasNoPrometheus: importing stampede alone does not bring in Prometheus.
func TestRootHasNoPrometheus(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/seed-a1426414/stampede").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "github.com/seed-a1426414/stampede\n")
	assert.NotContains(t, string(out), "prometheus")
}

// TestCollectorLoaders: loaders are collected beside caches, with their kind and their own counters.
func TestCollectorLoaders(t *testing.T) {
	products, _, _ := traffic(t)
	values, err := memstore.NewValues[any](100)
	require.NoError(t, err)
	defer values.Close()
	users := stampede.NewLoader("users-by-id", func(_ context.Context, id int) (string, error) {
		if id == 0 {
			return "", stampede.ErrNotFound
		}
		return fmt.Sprint("user ", id), nil
	}, stampede.WithValues(values), stampede.WithErrorTTL(func(error) time.Duration { return time.Minute }))
	defer users.Close()
	ctx := context.Background()
	for _, id := range []int{1, 1, 0, 0} {
		_, _ = users.Get(ctx, id)
		users.Wait()
	}
	want := `
# HELP stampede_cache_info Always 1; the kind label says what the source is: http (middleware), loader or function.
# TYPE stampede_cache_info gauge
stampede_cache_info{cache="products",kind="http"} 1
stampede_cache_info{cache="users-by-id",kind="loader"} 1
# HELP stampede_requests_total Requests that reached the middleware.
# TYPE stampede_requests_total counter
stampede_requests_total{cache="products"} 7
stampede_requests_total{cache="users-by-id"} 4
# HELP stampede_cached_errors_total Hits on a kept load failure (negative caching).
# TYPE stampede_cached_errors_total counter
stampede_cached_errors_total{cache="products"} 0
stampede_cached_errors_total{cache="users-by-id"} 1
`
	c := stampedeprom.NewCollector(products, users)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want),
		"stampede_cache_info", "stampede_requests_total", "stampede_cached_errors_total"))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// TestCollectorCoversSnapshot: every field of stampede.Snapshot and stampede.MemoryStats is scraped with
// the value of a Snapshot taken once the traffic is quiet (exportedFields), or is listed, with where a
// scrape has it, in derivedFields. A field added to either struct fails this test, by name, until the
// collector exports it or the list says why it need not. The traffic (busyTraffic) makes every exported
// field nonzero in at least one source, so that a series carrying the wrong field cannot pass because
// both are zero.
func TestCollectorCoversSnapshot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sources := busyTraffic(t)
		got := collect(t, stampedeprom.NewCollector(sources...))
		nonzero := map[string]bool{}
		for _, src := range sources {
			checkScrape(t, got, src.Snapshot(), nonzero)
		}
		for field := range exportedFields {
			assert.True(t, nonzero[field], "the traffic leaves %s at 0 in every source: make it count one", field)
		}
	})
}

// series names the series a field is exported as, among those of its cache.
type series struct {
	name   string
	labels []string // label name, value, ... that tell the series apart from the metric's others
	by     string   // for a map field: the label holding its keys, one series per key
}

// exportedFields maps each Snapshot field that a series carries as it is, and each MemoryStats field
// (as "Memory.<Field>"), to its series.
var exportedFields = map[string]series{
	"Requests":         {name: "stampede_requests_total"},
	"Hits":             {name: "stampede_hits_total"},
	"StaleHits":        {name: "stampede_stale_hits_total"},
	"Misses":           {name: "stampede_misses_total"},
	"Refreshes":        {name: "stampede_refreshes_total"},
	"Coalesced":        {name: "stampede_coalesced_total"},
	"Abandoned":        {name: "stampede_abandoned_total"},
	"Failed":           {name: "stampede_failed_total"},
	"PassReasons":      {name: "stampede_passes_total", by: "reason"},
	"Failures":         {name: "stampede_handler_failures_total"},
	"Panics":           {name: "stampede_handler_panics_total"},
	"Unshareable":      {name: "stampede_unshareable_total", by: "reason"},
	"StoreGetErrors":   {name: "stampede_store_errors_total", labels: []string{"op", "get"}},
	"StoreSetErrors":   {name: "stampede_store_errors_total", labels: []string{"op", "set"}},
	"BreakerOpen":      {name: "stampede_breaker_open"},
	"BreakerTrips":     {name: "stampede_breaker_trips_total"},
	"FleetServed":      {name: "stampede_fleet_served_total"},
	"FleetFenced":      {name: "stampede_fleet_fenced_total"},
	"BatchLoads":       {name: "stampede_batch_loads_total"},
	"CachedErrors":     {name: "stampede_cached_errors_total"},
	"DecodeErrors":     {name: "stampede_decode_errors_total"},
	"Memory.Entries":   {name: "stampede_memory_entries"},
	"Memory.Evictions": {name: "stampede_memory_evictions_total"},
}

// derivedFields are the Snapshot fields that no series carries as they are: each says where a scrape
// has it, and checks that the scrape does.
var derivedFields = map[string]struct {
	where string
	check func(t *testing.T, s stampede.Snapshot, sc scrape)
}{
	"Name": {"the cache label of every series", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.NotEmpty(t, sc.series("stampede_cache_info"), "%s: no series", s.Name)
	}},
	"Kind": {"the kind label of stampede_cache_info", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		info := sc.series("stampede_cache_info")
		require.Len(t, info, 1, s.Name)
		assert.Equal(t, s.Kind, label(info[0], "kind"), s.Name)
		assert.Equal(t, 1.0, info[0].GetGauge().GetValue(), s.Name)
	}},
	"Passes": {"the sum of stampede_passes_total over its reasons", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		var sum float64
		for _, m := range sc.series("stampede_passes_total") {
			sum += value(m)
		}
		assert.Equal(t, float64(s.Passes), sum, s.Name)
	}},
	"Runs": {"stampede_handler_duration_seconds_count", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Equal(t, s.Runs, sc.histogram(t).GetSampleCount(), s.Name)
	}},
	"HandlerTime": {"stampede_handler_duration_seconds_sum", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Equal(t, s.HandlerTime.Seconds(), sc.histogram(t).GetSampleSum(), s.Name)
	}},
	"AvgHandlerTime": {"PromQL: stampede_handler_duration_seconds_sum / _count", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		h := sc.histogram(t)
		avg := ratio(h.GetSampleSum(), float64(h.GetSampleCount()))
		assert.InDelta(t, s.AvgHandlerTime.Seconds(), avg, 1e-9, "%s: the mean is truncated to a nanosecond", s.Name)
	}},
	"HandlerTimes": {"the histogram stampede_handler_duration_seconds", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		h := sc.histogram(t)
		require.Len(t, h.GetBucket(), len(s.HandlerTimes.Bounds), s.Name)
		var cumulative uint64
		for i, b := range h.GetBucket() {
			cumulative += s.HandlerTimes.Counts[i]
			assert.Equal(t, s.HandlerTimes.Bounds[i], b.GetUpperBound(), s.Name)
			assert.Equal(t, cumulative, b.GetCumulativeCount(), s.Name)
		}
		assert.Equal(t, s.HandlerTimes.Count, h.GetSampleCount(), s.Name)
		assert.Equal(t, s.HandlerTimes.Sum, h.GetSampleSum(), s.Name)
	}},
	"HitRate": {"PromQL: (stampede_hits_total + stampede_stale_hits_total) / stampede_requests_total", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Equal(t, s.HitRate, ratio(sc.value(t, "stampede_hits_total")+sc.value(t, "stampede_stale_hits_total"), sc.value(t, "stampede_requests_total")), s.Name)
	}},
	"MissRate": {"PromQL: stampede_misses_total / stampede_requests_total", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Equal(t, s.MissRate, ratio(sc.value(t, "stampede_misses_total"), sc.value(t, "stampede_requests_total")), s.Name)
	}},
	"LoadFailureRate": {"PromQL: stampede_handler_failures_total / stampede_handler_duration_seconds_count", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Equal(t, s.LoadFailureRate, ratio(sc.value(t, "stampede_handler_failures_total"), float64(sc.histogram(t).GetSampleCount())), s.Name)
	}},
	"CollapseRatio": {"PromQL: stampede_coalesced_total / (stampede_coalesced_total + stampede_misses_total)", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		coalesced := sc.value(t, "stampede_coalesced_total")
		assert.Equal(t, s.CollapseRatio, ratio(coalesced, coalesced+sc.value(t, "stampede_misses_total")), s.Name)
	}},
	"Memory": {"its fields, as Memory.<Field>, on series with a store label; no memory series when it is nil", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		// checkScrape walks the fields; here only that a nil Memory has no series at all.
		if s.Memory == nil {
			assert.Empty(t, sc.store, "%s: a store label without a memory store", s.Name)
		} else {
			assert.NotEmpty(t, sc.store, "%s: no stampede_cache_store_info", s.Name)
		}
	}},
	"Memory.Store": {"the store label of stampede_cache_store_info and of the memory series (TestCollectorSharedStore)", func(*testing.T, stampede.Snapshot, scrape) {}},
	"Memory.Bytes": {"stampede_memory_bytes, for a store bounded by bytes (MaxEntries 0)", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		if s.Memory == nil {
			return
		}
		if s.Memory.MaxEntries > 0 {
			assert.Empty(t, sc.series("stampede_memory_bytes"), "%s: no byte count for a store bounded by entries", s.Name)
			return
		}
		assert.Equal(t, float64(s.Memory.Bytes), sc.value(t, "stampede_memory_bytes"), s.Name)
	}},
	"Memory.MaxEntries": {"stampede_memory_max_entries, for a store bounded by entries", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		if s.Memory == nil || s.Memory.MaxEntries == 0 {
			assert.Empty(t, sc.series("stampede_memory_max_entries"), s.Name)
			return
		}
		assert.Equal(t, float64(s.Memory.MaxEntries), sc.value(t, "stampede_memory_max_entries"), s.Name)
	}},
	"InFlight": {"stampede_in_flight (0 once the traffic is quiet: TestCollectorInFlight sees it above)", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Equal(t, float64(s.InFlight), sc.value(t, "stampede_in_flight"), s.Name)
	}},
	"StoreTimes": {"the histogram stampede_store_duration_seconds{op}, when the source times its store calls", func(t *testing.T, s stampede.Snapshot, sc scrape) {
		assert.Len(t, sc.series("stampede_store_duration_seconds"), len(s.StoreTimes), s.Name)
		for op, h := range s.StoreTimes {
			ms := sc.series("stampede_store_duration_seconds", "op", op)
			require.Len(t, ms, 1, "%s %s", s.Name, op)
			assert.Equal(t, h.Count, ms[0].GetHistogram().GetSampleCount(), "%s %s", s.Name, op)
			assert.Equal(t, h.Sum, ms[0].GetHistogram().GetSampleSum(), "%s %s", s.Name, op)
		}
	}},
}

// checkScrape checks that got, a scrape, has every field of s (see exportedFields and derivedFields), and
// notes in nonzero (when not nil) the exported fields s has above zero.
func checkScrape(t *testing.T, got map[string][]*dto.Metric, s stampede.Snapshot, nonzero map[string]bool) {
	t.Helper()
	sc := scrape{got: got, cache: s.Name}
	if info := sc.series("stampede_cache_store_info"); len(info) == 1 {
		sc.store = label(info[0], "store")
	}
	walk := func(typ reflect.Type, v reflect.Value, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := prefix + f.Name
			if d, ok := derivedFields[name]; ok {
				d.check(t, s, sc)
				continue
			}
			e, ok := exportedFields[name]
			if !ok {
				t.Errorf("%s.%s is neither exported by the collector (exportedFields) nor derived from what it exports (derivedFields)", typ.Name(), f.Name)
				continue
			}
			if !v.IsValid() {
				continue // a nil Memory: derivedFields["Memory"] checks there are no such series
			}
			fv := v.Field(i)
			if e.by == "" {
				n := number(t, name, fv)
				ms := sc.series(e.name, e.labels...)
				if len(ms) != 1 {
					t.Errorf("%s %s: %d series %s{cache=%q,%v} collected, want 1", s.Name, name, len(ms), e.name, s.Name, e.labels)
					continue
				}
				assert.Equal(t, n, value(ms[0]), "%s %s (%s)", s.Name, name, e.name)
				if nonzero != nil && n != 0 {
					nonzero[name] = true
				}
				continue
			}
			require.Equal(t, reflect.Map, fv.Kind(), name)
			assert.Len(t, sc.series(e.name), fv.Len(), "%s %s: one series per key", s.Name, name)
			for it := fv.MapRange(); it.Next(); {
				key := it.Key().String()
				n := number(t, name, it.Value())
				assert.Equal(t, n, sc.value(t, e.name, e.by, key), "%s %s[%q] (%s)", s.Name, name, key, e.name)
				if nonzero != nil && n != 0 {
					nonzero[name] = true
				}
			}
		}
	}
	walk(reflect.TypeOf(s), reflect.ValueOf(s), "")
	var memory reflect.Value
	if s.Memory != nil {
		memory = reflect.ValueOf(*s.Memory)
	}
	walk(reflect.TypeOf(stampede.MemoryStats{}), memory, "Memory.")
}

// number is the value a series has for the field name, whose value is v.
func number(t *testing.T, name string, v reflect.Value) float64 {
	t.Helper()
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			return 1
		}
		return 0
	case reflect.Int, reflect.Int64:
		return float64(v.Int())
	case reflect.Uint64:
		return float64(v.Uint())
	}
	t.Fatalf("%s is a %s: teach number how the collector exports it", name, v.Type())
	return 0
}

func ratio(n, d float64) float64 {
	if d == 0 {
		return 0
	}
	return n / d
}

// scrape is one Gather, read for one cache.
type scrape struct {
	got   map[string][]*dto.Metric
	cache string
	store string // the store label of the cache's memory series (stampede_cache_store_info); "" when none
}

// series returns the metric's series of the cache that have the given label values (name, value, ...):
// for a memory series, those of the cache's store.
func (sc scrape) series(name string, labels ...string) []*dto.Metric {
	var out []*dto.Metric
	ms := filter(sc.got[name], sc.cache)
	if strings.HasPrefix(name, "stampede_memory_") {
		ms = nil
		for _, m := range sc.got[name] {
			if sc.store != "" && label(m, "store") == sc.store {
				ms = append(ms, m)
			}
		}
	}
next:
	for _, m := range ms {
		for i := 0; i+1 < len(labels); i += 2 {
			if label(m, labels[i]) != labels[i+1] {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// value returns the value of the one series of the metric with the given label values.
func (sc scrape) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	ms := sc.series(name, labels...)
	if len(ms) != 1 {
		t.Fatalf("%s{cache=%q,%v}: %d series collected, want 1", name, sc.cache, labels, len(ms))
	}
	return value(ms[0])
}

func (sc scrape) histogram(t *testing.T) *dto.Histogram {
	t.Helper()
	ms := sc.series("stampede_handler_duration_seconds")
	require.Len(t, ms, 1, sc.cache)
	return ms[0].GetHistogram()
}

func value(m *dto.Metric) float64 {
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// busyTraffic, inside a synctest bubble, builds sources between which every exported figure of a
// Snapshot is above zero somewhere, and returns them once their traffic is quiet:
//   - pages, an http cache on the memory store: hits, misses, passes, an unshareable response, a 5xx, waiters
//     served (coalesced), one whose client left (abandoned), waiters of a run that panicked (failed), a
//     stale hit and its background refresh;
//   - broken, an http cache on a store that always fails: store errors, the breaker open;
//   - fleet-a and fleet-b, two replicas sharing a store with leases: b serves a's stored response
//     (fleet served), a's write after its lease expired is refused (fleet fenced);
//   - users, a loader: a batch load, a kept error served (cached errors), a value that does not decode;
//   - fn, a function cache on memory values with room for one: an eviction.
//
// synctest.Wait tells when the requests sent are all waiting on a run, without hooks or sleeps.
func busyTraffic(t *testing.T) []stampede.StatsSource {
	quiet := slog.New(slog.DiscardHandler) // the breaker, the fenced write and the bad value log
	ctx := context.Background()

	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	var ahead atomic.Int64 // how far the clock of pages is ahead of time.Now, so that entries go stale
	gates := map[string]chan struct{}{"/slow": make(chan struct{}), "/panic": make(chan struct{})}
	pages := stampede.New(quiet, store, time.Minute, stampede.WithName("pages"),
		stampede.WithStaleWhileRevalidate(time.Minute),
		stampede.WithClock(func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }))
	h := pages.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate := gates[r.URL.Path]; gate != nil {
			<-gate
		}
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/fail":
			w.WriteHeader(http.StatusInternalServerError)
		case "/private":
			w.Header().Set("Cache-Control", "private")
		}
		_, _ = io.WriteString(w, "body")
	}))
	for _, target := range []string{"/a", "/a", "/a", "/fail", "/private", "/private"} {
		<-send(ctx, h, http.MethodGet, target)
		pages.Wait()
	}
	<-send(ctx, h, http.MethodPost, "/b")

	leader := send(ctx, h, http.MethodGet, "/slow")
	synctest.Wait() // the leader's run is held at its gate
	waiters := []<-chan result{send(ctx, h, http.MethodGet, "/slow"), send(ctx, h, http.MethodGet, "/slow")}
	leaving, leave := context.WithCancel(ctx)
	left := send(leaving, h, http.MethodGet, "/slow")
	synctest.Wait() // the three wait on the leader's run
	leave()
	<-left
	close(gates["/slow"])
	assert.Equal(t, "MISS", (<-leader).xcache)
	for _, w := range waiters {
		assert.Equal(t, "COALESCED", (<-w).xcache)
	}

	leader = send(ctx, h, http.MethodGet, "/panic")
	synctest.Wait()
	waiters = []<-chan result{send(ctx, h, http.MethodGet, "/panic"), send(ctx, h, http.MethodGet, "/panic")}
	synctest.Wait()
	close(gates["/panic"])
	assert.Equal(t, "boom", (<-leader).panicked)
	for _, w := range waiters {
		assert.Equal(t, http.StatusInternalServerError, (<-w).status, "a waiter of a run that panicked")
	}
	pages.Wait()

	ahead.Store(int64(61 * time.Second))
	assert.Contains(t, (<-send(ctx, h, http.MethodGet, "/a")).cacheStatus, "stale-while-revalidate")
	pages.Wait()
	store.CleanUp()

	broken := stampede.New(quiet, brokenStore{}, time.Minute, stampede.WithName("broken"),
		stampede.WithCircuitBreaker(2, time.Hour))
	<-send(ctx, broken.Handler(http.NotFoundHandler()), http.MethodGet, "/a") // a failed read
	broken.Wait()
	time.Sleep(150 * time.Millisecond)                                        // the breaker opens on failures spread over 100 ms at least (synctest: no real wait)
	<-send(ctx, broken.Handler(http.NotFoundHandler()), http.MethodGet, "/a") // a second failed read: open
	broken.Wait()

	shared, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(shared.Close)
	fleet := &leaseStore{Store: shared, leases: map[string]*lease{}}
	gate := make(chan struct{})
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/held":
			<-gate
		case "/fenced":
			fleet.expire() // the run outlives its lease
		}
		_, _ = io.WriteString(w, "body")
	})
	replicaA := stampede.New(quiet, fleet, time.Minute, stampede.WithName("fleet-a"), stampede.WithFleetCoalescing(time.Minute))
	replicaB := stampede.New(quiet, fleet, time.Minute, stampede.WithName("fleet-b"), stampede.WithFleetCoalescing(time.Minute))
	ha, hb := replicaA.Handler(origin), replicaB.Handler(origin)
	a := send(ctx, ha, http.MethodGet, "/held")
	synctest.Wait() // a holds the lease, its run held at the gate
	b := send(ctx, hb, http.MethodGet, "/held")
	synctest.Wait() // b waits for a's lease
	close(gate)
	<-a
	assert.Contains(t, (<-b).cacheStatus, "fleet-coalesced")
	<-send(ctx, ha, http.MethodGet, "/fenced")
	replicaA.Wait()
	replicaB.Wait()
	shared.CleanUp()

	raw, err := memstore.New(1 << 20)
	require.NoError(t, err)
	t.Cleanup(raw.Close)
	users := stampede.NewLoader("users", func(_ context.Context, id int) (string, error) {
		if id == 0 {
			return "", stampede.ErrNotFound
		}
		return fmt.Sprint("user ", id), nil
	}, stampede.WithStore(&garbledStore{Store: raw}), stampede.WithLogger(quiet),
		stampede.WithErrorTTL(func(error) time.Duration { return time.Minute }),
		stampede.WithBatchLoad(func(_ context.Context, ids []int) (map[int]string, error) {
			out := make(map[int]string, len(ids))
			for _, id := range ids {
				out[id] = fmt.Sprint("user ", id)
			}
			return out, nil
		}))
	t.Cleanup(users.Close)
	for _, id := range []int{1, 1, 0, 0} { // a value that does not decode, a hit, a kept error, its hit
		_, _ = users.Get(ctx, id)
		users.Wait()
	}
	_, err = users.GetMany(ctx, []int{2, 3})
	require.NoError(t, err)
	users.Wait()
	raw.CleanUp()

	values, err := memstore.NewValues[string](1)
	require.NoError(t, err)
	t.Cleanup(values.Close)
	fn := stampede.NewStampede[string](quiet, values, stampede.WithName("fn"))
	for _, key := range []string{"k1", "k2", "k2"} {
		_, err := fn.Do(ctx, key, func() (string, *time.Duration, error) { return "value", nil, nil })
		require.NoError(t, err)
		fn.Wait()
	}
	values.CleanUp()

	synctest.Wait() // nothing left running
	return []stampede.StatsSource{pages, broken, replicaA, replicaB, users, fn}
}

// result is what send's request got.
type result struct {
	status              int
	xcache, cacheStatus string
	panicked            any
}

// send serves one request with h on a goroutine of its own, and delivers its result.
func send(ctx context.Context, h http.Handler, method, target string) <-chan result {
	out := make(chan result, 1)
	go func() {
		rec := httptest.NewRecorder()
		defer func() {
			out <- result{rec.Code, rec.Header().Get("X-Cache"), rec.Header().Get("Cache-Status"), recover()}
		}()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, method, target, nil))
	}()
	return out
}

// brokenStore fails every call, as a store that is down does.
type brokenStore struct{}

var errStoreDown = errors.New("store down")

func (brokenStore) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errStoreDown
}
func (brokenStore) SetEx(context.Context, string, []byte, time.Duration) error { return errStoreDown }
func (brokenStore) Delete(context.Context, string) error                       { return errStoreDown }

// garbledStore is a memory store whose first read finds bytes that are no entry, as when another program
// writes to a shared store.
type garbledStore struct {
	*memstore.Store
	read atomic.Bool
}

func (g *garbledStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if !g.read.Swap(true) {
		return []byte("not an entry"), true, nil
	}
	return g.Store.Get(ctx, key)
}

// leaseStore is a memory store with the leases of fleet coalescing (stampede.WithFleetCoalescing), as
// backends/redisstore has them, so that two caches on it act as two replicas.
type leaseStore struct {
	*memstore.Store
	mu     sync.Mutex
	leases map[string]*lease // by key; guarded by mu
	tokens int               // tokens handed out; guarded by mu
}

// lease is one key's lease while it is held.
type lease struct {
	token   string
	outcome string        // what the holder announced; set before done is closed
	done    chan struct{} // closed when the lease is released or expires
}

func (s *leaseStore) TryLease(_ context.Context, key string, _ time.Duration) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.leases[key] != nil {
		return "", false, nil
	}
	s.tokens++
	l := &lease{token: fmt.Sprint(s.tokens), done: make(chan struct{})}
	s.leases[key] = l
	return l.token, true, nil
}

func (s *leaseStore) SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (bool, error) {
	s.mu.Lock()
	l := s.leases[key]
	s.mu.Unlock()
	if l == nil || l.token != token {
		return false, nil
	}
	return true, s.SetEx(ctx, key, value, ttl)
}

// Ticket returns a ticket that fences nothing but the lease tokens' writes: the leases are what this
// store is for.
func (s *leaseStore) Ticket(context.Context, string, time.Duration) (string, error) {
	return "ticket", nil
}

// SetFenced writes while a lease token holds its lease, and always with a plain ticket.
func (s *leaseStore) SetFenced(ctx context.Context, key, ticket, writeKey string, value []byte, ttl time.Duration, _ []string) (bool, error) {
	if ticket != "ticket" {
		s.mu.Lock()
		l := s.leases[key]
		s.mu.Unlock()
		if l == nil || l.token != ticket {
			return false, nil
		}
	}
	return true, s.SetEx(ctx, writeKey, value, ttl)
}

// Invalidate deletes key and ends its lease.
func (s *leaseStore) Invalidate(ctx context.Context, key string) error {
	s.mu.Lock()
	if s.leases[key] != nil {
		s.end(key, "miss")
	}
	s.mu.Unlock()
	return s.Delete(ctx, key)
}

func (s *leaseStore) Release(_ context.Context, key, token, outcome string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leases[key]; l != nil && l.token == token {
		s.end(key, outcome)
	}
	return nil
}

func (s *leaseStore) WaitRelease(ctx context.Context, key string) (string, error) {
	s.mu.Lock()
	l := s.leases[key]
	s.mu.Unlock()
	if l == nil {
		return "", nil // gone
	}
	select {
	case <-l.done:
		return l.outcome, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// expire ends every lease, as time ends the lease of a holder that outlived it.
func (s *leaseStore) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key := range s.leases {
		s.end(key, "")
	}
}

// end ends key's lease with outcome; s.mu is held.
func (s *leaseStore) end(key, outcome string) {
	l := s.leases[key]
	delete(s.leases, key)
	l.outcome = outcome
	close(l.done)
}
