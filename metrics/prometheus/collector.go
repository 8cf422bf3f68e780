// Package prometheus exports the statistics of stampede caches to Prometheus.
//
// A [Collector] reports the [stampede.Snapshot] of each cache, loader ([stampede.Loader]) or
// [stampede.Stampede] it was given, every time it is scraped, with a "cache" label holding its name
// ([stampede.WithName], or the name given to stampede.NewLoader):
//
//	products := stampede.New(logger, store, time.Minute, stampede.WithName("products"))
//	prometheus.MustRegister(stampedeprom.NewCollector(products))
//
// Every source has each series below whatever its kind, so that none appears or disappears as traffic
// changes: the figures a kind never counts stay at 0. The exceptions: the store-time histogram, which a
// source has when it times its store calls (stampede.WithStoreTimings), and the memory series, which a
// store has when it reports its size (backends/memstore), always, and never otherwise. Each series
// carries the Snapshot field it is named for:
//
//   - stampede_cache_info{kind}: always 1; kind is Kind ("http", "loader", "function")
//   - stampede_requests_total, stampede_hits_total, stampede_stale_hits_total, stampede_misses_total,
//     stampede_refreshes_total, stampede_coalesced_total, stampede_abandoned_total, stampede_failed_total
//   - stampede_passes_total{reason}: PassReasons; their sum is Passes
//   - stampede_unshareable_total{reason}: Unshareable
//   - stampede_handler_failures_total, stampede_handler_panics_total: Failures, Panics
//   - stampede_handler_duration_seconds: the histogram HandlerTimes; its _count is Runs, its _sum
//     HandlerTime
//   - stampede_store_errors_total{op="get"|"set"}: StoreGetErrors, StoreSetErrors
//   - stampede_breaker_open (1 or 0), stampede_breaker_trips_total: BreakerOpen, BreakerTrips
//   - stampede_fleet_served_total, stampede_fleet_fenced_total: FleetServed, FleetFenced
//   - stampede_batch_loads_total, stampede_cached_errors_total, stampede_decode_errors_total:
//     BatchLoads, CachedErrors, DecodeErrors
//   - stampede_store_duration_seconds{op}: the histograms StoreTimes
//   - stampede_in_flight: InFlight
//   - stampede_cache_store_info{store}: always 1; the store label of the memory series of the source's
//     store (Memory.Store)
//   - with a store label instead of cache, once per store however many sources share it, named after the
//     first source given to NewCollector that uses it: stampede_memory_entries (Memory.Entries),
//     stampede_memory_bytes (Memory.Bytes, for a store bounded by bytes), stampede_memory_max_entries
//     (Memory.MaxEntries, for a store bounded by its number of entries, as memstore.Values is, whose
//     byte count is unknown), stampede_memory_evictions_total (Memory.Evictions). A sum over them counts
//     each store once.
//
// The rates of a Snapshot are left to PromQL: HitRate is (hits + stale_hits) / requests, MissRate
// misses / requests, LoadFailureRate handler_failures / handler_duration_seconds_count, CollapseRatio
// coalesced / (coalesced + misses), AvgHandlerTime handler_duration_seconds_sum / _count; over time,
// with rate(), e.g. rate(stampede_hits_total[5m]) / rate(stampede_requests_total[5m]).
//
// The root stampede package does not depend on Prometheus; only programs that import this package do.
package prometheus

import (
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a1426414/stampede"
)

const namespace = "stampede"

// Collector is a prometheus.Collector for one or more caches and loaders. Collecting takes one Snapshot
// per source, which reads atomic counters and takes no lock on the request path.
type Collector struct {
	caches []stampede.StatsSource

	requests, hits, staleHits, misses, coalesced, abandoned *prometheus.Desc
	refreshes, failed, fleetServed, fleetFenced             *prometheus.Desc
	passes, unshareable                                     *prometheus.Desc
	failures, panics, duration                              *prometheus.Desc
	storeErrors, breakerOpen, breakerTrips                  *prometheus.Desc
	memoryEntries, memoryBytes, memoryEvictions             *prometheus.Desc
	memoryMaxEntries, storeInfo                             *prometheus.Desc
	info, batchLoads, cachedErrors, decodeErrors            *prometheus.Desc
	inFlight, storeDuration                                 *prometheus.Desc
}

// NewCollector returns a Collector for caches: *stampede.Cache, *stampede.Loader, *stampede.Stampede.
// Every source must have a name of its own (see [stampede.WithName]), because the name is the "cache"
// label; NewCollector panics on a nil source or a name given twice. The metric stampede_cache_info
// (always 1) carries each source's kind ("http", "loader", "function") in its "kind" label.
func NewCollector(caches ...stampede.StatsSource) *Collector {
	seen := make(map[string]bool, len(caches))
	for _, c := range caches {
		if isNil(c) {
			panic("stampede/prometheus: NewCollector expects non-nil caches")
		}
		name := c.Snapshot().Name
		if seen[name] {
			panic(fmt.Sprintf("stampede/prometheus: two caches are named %q; name them apart with stampede.WithName", name))
		}
		seen[name] = true
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, append([]string{"cache"}, labels...), nil)
	}
	storeDesc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, []string{"store"}, nil)
	}
	return &Collector{
		caches:           append([]stampede.StatsSource(nil), caches...),
		requests:         desc("requests_total", "Requests that reached the middleware."),
		hits:             desc("hits_total", "Requests served a fresh response from the store (X-Cache: HIT)."),
		staleHits:        desc("stale_hits_total", "Requests served an expired response from the store."),
		misses:           desc("misses_total", "Requests that ran the handler for the others (X-Cache: MISS)."),
		refreshes:        desc("refreshes_total", "Background runs that refreshed an entry nobody waited on (stale-while-revalidate, early refresh)."),
		coalesced:        desc("coalesced_total", "Requests served the response of another request's run (X-Cache: COALESCED)."),
		abandoned:        desc("abandoned_total", "Waiting requests whose client left before the run they waited on answered."),
		failed:           desc("failed_total", "Waiting requests that got no whole response from the run they waited on: it panicked, or its response broke off."),
		passes:           desc("passes_total", "Requests passed to the handler untouched (X-Cache: BYPASS), by reason.", "reason"),
		unshareable:      desc("unshareable_total", "Handler runs whose response could not be shared, by reason.", "reason"),
		failures:         desc("handler_failures_total", "Handler runs that answered 5xx, panicked or called runtime.Goexit."),
		panics:           desc("handler_panics_total", "Handler runs that panicked or called runtime.Goexit."),
		duration:         desc("handler_duration_seconds", "Time the handler runs led by the cache took."),
		storeErrors:      desc("store_errors_total", "Store calls that failed or timed out, by operation.", "op"),
		breakerOpen:      desc("breaker_open", "1 while the circuit breaker skips the store, else 0."),
		breakerTrips:     desc("breaker_trips_total", "Times the circuit breaker opened."),
		fleetServed:      desc("fleet_served_total", "Leaders that waited for another replica's run and replayed its stored response instead of running the handler (fleet coalescing)."),
		fleetFenced:      desc("fleet_fenced_total", "Responses not stored because their fleet lease had expired (another replica had taken over)."),
		memoryEntries:    storeDesc("memory_entries", "Entries held by the in-process store."),
		memoryBytes:      storeDesc("memory_bytes", "Bytes the in-process store's entries are charged against its budget (a store bounded by bytes)."),
		memoryMaxEntries: storeDesc("memory_max_entries", "The most entries the in-process store holds (a store bounded by its number of entries, which does not know their size)."),
		memoryEvictions:  storeDesc("memory_evictions_total", "Entries the in-process store evicted to stay within its budget."),
		storeInfo:        desc("cache_store_info", "Always 1; the store label names the in-process store the cache uses, whose stampede_memory_* series carry that label.", "store"),
		inFlight:         desc("in_flight", "Handler runs (or loads) started and not ended yet."),
		storeDuration:    desc("store_duration_seconds", "Time the store calls that reached the store took, by operation (only when the source times them: stampede.WithStoreTimings or stampede.WithObserver).", "op"),
		info:             desc("cache_info", "Always 1; the kind label says what the source is: http (middleware), loader or function.", "kind"),
		batchLoads:       desc("batch_loads_total", "Calls of a loader's batch load function."),
		cachedErrors:     desc("cached_errors_total", "Hits on a kept load failure (negative caching)."),
		decodeErrors:     desc("decode_errors_total", "Stored values that did not decode (each also a miss)."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.requests, c.hits, c.staleHits, c.misses, c.refreshes, c.coalesced, c.abandoned, c.failed,
		c.passes, c.unshareable, c.failures, c.panics, c.duration, c.storeErrors, c.breakerOpen, c.breakerTrips,
		c.fleetServed, c.fleetFenced,
		c.memoryEntries, c.memoryBytes, c.memoryEvictions, c.info, c.batchLoads, c.cachedErrors, c.decodeErrors,
		c.memoryMaxEntries, c.storeInfo, c.inFlight, c.storeDuration,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var stores stampede.StoreNames
	for _, cache := range c.caches {
		s := cache.Snapshot()
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{s.Name}, labels...)...)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Name)
		}
		kind := s.Kind
		if kind == "" {
			kind = "http"
		}
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, s.Name, kind)
		counter(c.requests, s.Requests)
		counter(c.hits, s.Hits)
		counter(c.staleHits, s.StaleHits)
		counter(c.misses, s.Misses)
		counter(c.refreshes, s.Refreshes)
		counter(c.coalesced, s.Coalesced)
		counter(c.abandoned, s.Abandoned)
		counter(c.failed, s.Failed)
		for _, reason := range slices.Sorted(maps.Keys(s.PassReasons)) {
			counter(c.passes, s.PassReasons[reason], reason)
		}
		for _, reason := range slices.Sorted(maps.Keys(s.Unshareable)) {
			counter(c.unshareable, s.Unshareable[reason], reason)
		}
		counter(c.failures, s.Failures)
		counter(c.panics, s.Panics)

		h := s.HandlerTimes
		ch <- prometheus.MustNewConstHistogram(c.duration, h.Count, h.Sum, cumulativeBuckets(h), s.Name)
		for _, op := range slices.Sorted(maps.Keys(s.StoreTimes)) {
			h := s.StoreTimes[op]
			ch <- prometheus.MustNewConstHistogram(c.storeDuration, h.Count, h.Sum, cumulativeBuckets(h), s.Name, op)
		}
		gauge(c.inFlight, float64(s.InFlight))

		counter(c.storeErrors, s.StoreGetErrors, "get")
		counter(c.storeErrors, s.StoreSetErrors, "set")
		open := 0.0
		if s.BreakerOpen {
			open = 1
		}
		gauge(c.breakerOpen, open)
		counter(c.breakerTrips, s.BreakerTrips)
		counter(c.fleetServed, s.FleetServed)
		counter(c.fleetFenced, s.FleetFenced)
		// Zero for a Cache, but exported for every kind, so that a query over all sources finds them all.
		counter(c.batchLoads, s.BatchLoads)
		counter(c.cachedErrors, s.CachedErrors)
		counter(c.decodeErrors, s.DecodeErrors)
		if m := s.Memory; m != nil {
			// A store is reported once, under the name of the first source that uses it, however many
			// caches share it: a sum over the memory series counts each store once.
			store, first := stores.Name(m, s.Name)
			ch <- prometheus.MustNewConstMetric(c.storeInfo, prometheus.GaugeValue, 1, s.Name, store)
			if first {
				ch <- prometheus.MustNewConstMetric(c.memoryEntries, prometheus.GaugeValue, float64(m.Entries), store)
				if m.MaxEntries > 0 {
					ch <- prometheus.MustNewConstMetric(c.memoryMaxEntries, prometheus.GaugeValue, float64(m.MaxEntries), store)
				} else {
					ch <- prometheus.MustNewConstMetric(c.memoryBytes, prometheus.GaugeValue, float64(m.Bytes), store)
				}
				ch <- prometheus.MustNewConstMetric(c.memoryEvictions, prometheus.CounterValue, float64(m.Evictions), store)
			}
		}
	}
}

// cumulativeBuckets returns h's buckets as Prometheus counts them: cumulative, by upper bound.
func cumulativeBuckets(h stampede.Histogram) map[float64]uint64 {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cumulative uint64
	for i, bound := range h.Bounds {
		cumulative += h.Counts[i]
		buckets[bound] = cumulative
	}
	return buckets
}

// isNil reports whether s is nil or holds a nil pointer.
func isNil(s stampede.StatsSource) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
