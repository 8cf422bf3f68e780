package stampede

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/seed-a1426414/stampede/internal/storecall"
)

// cacheLine is the size the per-request counters are padded to, so that writing them does not
// invalidate the line holding the Cache fields every request reads (false sharing).
const cacheLine = 64

// reasons lists every reason* constant, in a fixed order: a pass or an unshareable result is counted in
// the slot of its reason. TestReasonsListed keeps it in step with the constants.
var reasons = [...]string{
	reasonMethod, reasonUpgrade, reasonNoStoreReq, reasonBodyLimit, reasonBodyError, reasonKeyError,
	reasonPass, reasonGoexit, reasonVary, reasonPrivate, reasonNoStore, reasonSetCookie, reasonVaryStar,
	reasonAuth, reasonEventStream, reasonHijacked, reasonTooLarge, reasonIncomplete, reasonPartial, reasonStatus,
	reasonContention, reasonRevalidate, reasonTimeout, reasonOnlyIfCached, reasonDeclined, reasonNested, reasonTrailers,
}

// responseReasons are the reasons a handler's response cannot be shared (docs/behaviour.md §4), the keys of
// [Snapshot].Unshareable.
var responseReasons = [...]string{
	reasonPrivate, reasonNoStore, reasonSetCookie, reasonVaryStar, reasonAuth, reasonEventStream,
	reasonHijacked, reasonTooLarge, reasonIncomplete, reasonPartial, reasonStatus, reasonTrailers,
}

// otherReason names the slot of a reason missing from reasons; it stays at zero while the list is
// complete.
const otherReason = "other"

// numReasons is the number of reason slots: one per listed reason, and one for any other.
const numReasons = len(reasons) + 1

// reasonIndex returns the slot of reason. It runs on pass paths only, never on a hit.
func reasonIndex(reason string) int {
	for i, r := range reasons {
		if r == reason {
			return i
		}
	}
	return len(reasons)
}

// handlerTimeBounds are the upper bounds of the handler-time histogram's buckets; a last bucket holds
// the runs longer than all of them. They span a memory-speed handler to the default compute timeout.
var handlerTimeBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	30 * time.Second,
}

// stats are one Cache's counters. Every field is atomic, so counting takes no lock, and there is no
// global registry: a Cache that is dropped takes its counters with it.
type stats struct {
	_ [cacheLine]byte
	// Written by every request: requests and its outcome share one line, so a hit dirties one line
	// rather than two.
	// requests and hits are written by every hit, so they are striped (see counter); the function API
	// does not write requests at all (its Requests is the sum of its outcomes).
	requests  counter
	hits      counter
	staleHits atomic.Uint64 // served a stale entry without waiting: see Snapshot.StaleHits
	misses    atomic.Uint64
	refreshes atomic.Uint64 // background runs: stale-while-revalidate and early refresh
	coalesced atomic.Uint64
	abandoned atomic.Uint64
	failed    atomic.Uint64 // waiters whose run panicked or broke off: answered 500 or cut off
	_         [cacheLine - 6*8]byte

	// Written once per run, per pass or per store failure: far rarer than requests.
	runs         [len(handlerTimeBounds) + 1]atomic.Uint64 // by duration; their sum is the run count
	handlerNanos atomic.Int64                              // total time of the runs counted in runs
	failures     atomic.Uint64                             // runs that answered 5xx, panicked or called Goexit
	panics       atomic.Uint64                             // runs that panicked or called Goexit
	passes       [numReasons]atomic.Uint64                 // by reasonIndex
	unshareable  [numReasons]atomic.Uint64                 // by reasonIndex
	getErrors    atomic.Uint64
	setErrors    atomic.Uint64
	fleetServed  atomic.Uint64 // leaders served another replica's stored response (WithFleetCoalescing)
	fleetFenced  atomic.Uint64 // fenced writes refused: the lease had expired
	running      atomic.Int64  // runs started and not ended: Snapshot.InFlight

	// storeTimed is set, before any call, when store calls are timed into storeTimes (WithStoreTimings).
	storeTimed bool
	storeTimes [len(storeOps)]storeTimes

	// The function API's own counters (Loader, Stampede); zero for a Cache.
	batchLoads   atomic.Uint64 // calls of a batch load function
	cachedErrors atomic.Uint64 // hits on a kept failure (WithErrorTTL)
	decodeErrors atomic.Uint64 // stored values that did not decode: counted as misses

	// logs rate-limits the repeatable warnings and errors. It lives here because a Cache and a Loader's
	// engine both hold a stats of their own, and it is counters too: the lines dropped per kind.
	logs logLimiter
}

// counterStripes is how many cache lines a striped counter spreads over: 1<<counterShift.
const (
	counterShift   = 3
	counterStripes = 1 << counterShift
)

// counter is a striped counter for the counts every request writes: each Add goes to one of
// counterStripes cache lines, picked by the address of the calling goroutine's stack (free, and stable
// for a goroutine, so a core running it keeps writing its own line), so that cores counting at once
// rarely write the same line, where one atomic.Uint64 would bounce between them on every hit. Load
// sums the stripes. Its methods are atomic.Uint64's that the counting code uses.
type counter struct {
	stripes [counterStripes]struct {
		n atomic.Uint64
		_ [cacheLine - 8]byte
	}
}

// Add adds delta to the counter. Unlike atomic.Uint64's, it returns nothing useful: 0.
func (c *counter) Add(delta uint64) uint64 {
	c.stripes[stripeOfStack()].n.Add(delta)
	return 0
}

// stripeOfStack picks a stripe from the address of a variable on the caller's stack: goroutine stacks
// are at least 8 KiB apart, so bits above 13 tell goroutines apart; a multiplicative hash spreads them
// over the stripes. The address is only read, never dereferenced, and a stack that moves merely moves
// its goroutine to another stripe.
func stripeOfStack() uintptr {
	var local byte
	p := uintptr(unsafe.Pointer(&local)) >> 13
	return (p * 0x9E3779B97F4A7C15) >> (64 - counterShift)
}

// Load returns the counter's value.
func (c *counter) Load() uint64 {
	var sum uint64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}

// pass counts a request that passed through for reason.
func (s *stats) pass(reason string) { s.passes[reasonIndex(reason)].Add(1) }

// ran counts a finished handler run that took d and answered status; finished is false when it
// panicked or called runtime.Goexit.
func (s *stats) ran(d time.Duration, status int, finished bool) {
	i := 0
	for i < len(handlerTimeBounds) && d > handlerTimeBounds[i] {
		i++
	}
	s.handlerNanos.Add(int64(d))
	if !finished {
		s.panics.Add(1)
	}
	if !finished || status >= 500 {
		s.failures.Add(1)
	}
	s.runs[i].Add(1) // last: see Snapshot
	s.running.Add(-1)
}

// logDecision logs at debug level how a request was served: outcome is its X-Cache value and reason
// why it passed. Only the digest of the key is logged, never the key material, which may carry user
// data. When debug is off it costs one Enabled check.
//
// An observed request (see [WithObserver]) records its outcome instead, and is logged once it ended,
// with its route and duration.
func (c *Cache) logDecision(ctx context.Context, storeKey, outcome, reason string) {
	if len(c.cfg.observers) == 0 && !c.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	if o := observationOf(ctx); o != nil {
		o.decide(storeKey, outcome, reason)
		return
	}
	if c.logger.Enabled(ctx, slog.LevelDebug) {
		c.logDecisionSlow(ctx, storeKey, outcome, reason)
	}
}

func (c *Cache) logDecisionSlow(ctx context.Context, storeKey, outcome, reason string) {
	attrs := make([]slog.Attr, 0, 4)
	attrs = append(attrs, slog.String("cache", c.cfg.name), slog.String("outcome", outcome))
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	if d := keyDigest(storeKey); d != "" {
		attrs = append(attrs, slog.String("key", d))
	}
	c.logger.LogAttrs(ctx, slog.LevelDebug, "stampede: request", attrs...)
}

// keyDigest returns the hex digest inside a store key "<prefix>:<version>:{<digest>}", or "" when there
// is no key yet (the request passed through before it was keyed).
func keyDigest(storeKey string) string {
	i := strings.IndexByte(storeKey, '{')
	j := strings.IndexByte(storeKey, '}')
	if i < 0 || j < i {
		return ""
	}
	return storeKey[i+1:j] + storeKey[j+1:] // a variant's "~<digest>" follows the hash tag
}

// StatsSource is anything that reports a [Snapshot]: a [*Cache], a [*Loader], a [*Stampede].
// [StatsHandler] and the Prometheus collector take any of them.
type StatsSource interface {
	Snapshot() Snapshot
}

// Snapshot is a copy of one Cache's counters at one moment, with rates derived from them. The
// counters only grow, from zero when the Cache was built; a scraper computes per-second rates from
// the difference between two snapshots.
//
// Every request is counted in Requests as it arrives and, once its outcome is decided, in exactly one
// of Hits, StaleHits, Misses, Coalesced, Abandoned, Failed or Passes, so that once nothing is in flight
// Requests is their sum (and Passes the sum of PassReasons). Counters are read one at a time, outcomes
// before Requests, so a snapshot taken under load may count a request in Requests whose outcome it does
// not count yet, never the other way round.
type Snapshot struct {
	// Name is the cache's name, set by [WithName]; the key prefix by default. A [Loader]'s is the name
	// given to [NewLoader].
	Name string `json:"name"`
	// Kind is "http" for a [Cache], "loader" for a [Loader] and "function" for a [Stampede]. For the
	// function API, a request is one key asked for (GetMany counts each distinct key), a run is one
	// call of the load function (a batch load counts once), handler time is load time, and a pass never
	// happens.
	Kind string `json:"kind"`

	// Requests counts the requests that reached the middleware.
	Requests uint64 `json:"requests"`
	// Hits counts requests served a fresh response from the store (X-Cache: HIT).
	Hits uint64 `json:"hits"`
	// StaleHits counts requests served an expired response from the store without waiting for a run:
	// within stale-while-revalidate (a background run refreshes it meanwhile), within the request's
	// max-stale ([WithHonorRequestCacheControl]), or, within stale-if-error, a waiter released at the
	// compute timeout. A request that led a run is a miss, even when stale-if-error answered it.
	StaleHits uint64 `json:"stale_hits"`
	// Misses counts requests that ran the handler for the others: one per run (X-Cache: MISS, or HIT
	// when the run failed and stale-if-error answered it with the stored response).
	Misses uint64 `json:"misses"`
	// Refreshes counts background runs that refreshed an entry nobody waited on (stale-while-revalidate,
	// early refresh); Runs = Misses + Refreshes once nothing is in flight.
	Refreshes uint64 `json:"refreshes"`
	// Coalesced counts requests served the response of a run another request led (X-Cache:
	// COALESCED), the collapsed waiters.
	Coalesced uint64 `json:"coalesced"`
	// Abandoned counts waiters whose own request ended (the client left or timed out) before the run
	// they waited on had a response for them, or while they were being sent it.
	Abandoned uint64 `json:"abandoned"`
	// Failed counts waiters that got no whole response from the run they waited on: it panicked (they
	// answered 500 themselves), or its response broke off after part of it was sent (their connection
	// was cut). For the function API: waiters whose load panicked, or passed the compute timeout with
	// no stale value to serve.
	Failed uint64 `json:"failed"`
	// Passes counts requests that went to the handler untouched (X-Cache: BYPASS), and PassReasons
	// counts them by reason ("method", "private", "hit-for-pass", ...). Waiters that ran the handler
	// themselves because the shared run's response was unshareable count here, under its reason.
	Passes      uint64            `json:"passes"`
	PassReasons map[string]uint64 `json:"pass_reasons"`

	// Runs counts the finished runs of the handler that the cache led, one per miss (a miss still
	// running is not counted yet). Passes run the handler too and are not included: the handler ran
	// Runs + Passes times in all.
	Runs uint64 `json:"runs"`
	// Failures counts runs that answered a 5xx status, panicked or called runtime.Goexit; Panics
	// counts the runs that panicked or called runtime.Goexit.
	Failures uint64 `json:"failures"`
	Panics   uint64 `json:"panics"`
	// HandlerTime is the total time of the runs, AvgHandlerTime the mean, and HandlerTimes their
	// distribution.
	HandlerTime    time.Duration `json:"handler_time_ns"`
	AvgHandlerTime time.Duration `json:"avg_handler_time_ns"`
	HandlerTimes   Histogram     `json:"handler_time_histogram"`
	// Unshareable counts the runs whose response could not be shared, by reason ("private",
	// "set-cookie", "event-stream", "too-large", ...). Each opened a hit-for-pass window for its key.
	Unshareable map[string]uint64 `json:"unshareable"`

	// StoreGetErrors and StoreSetErrors count store calls that failed or timed out (a read by a
	// request whose client had already left is not counted: it says nothing about the store).
	StoreGetErrors uint64 `json:"store_get_errors"`
	StoreSetErrors uint64 `json:"store_set_errors"`
	// BreakerOpen reports whether the circuit breaker is skipping the store now, and BreakerTrips how
	// often it has opened.
	BreakerOpen  bool   `json:"breaker_open"`
	BreakerTrips uint64 `json:"breaker_trips"`
	// FleetServed counts leaders that, with [WithFleetCoalescing], waited for another replica's run and
	// replayed its stored response instead of running the handler (each is also a Hit: it was served
	// from the store, and the requests waiting on it are Coalesced); FleetFenced counts responses not
	// stored because their lease had expired (another replica had taken over).
	FleetServed uint64 `json:"fleet_served"`
	FleetFenced uint64 `json:"fleet_fenced"`
	// BatchLoads counts the calls of a [Loader]'s batch load function ([WithBatchLoad]); CachedErrors
	// counts the hits on a kept failure ([WithErrorTTL]), which are also counted in Hits; DecodeErrors
	// counts the stored values that did not decode, each also a miss. Zero for a Cache.
	BatchLoads   uint64 `json:"batch_loads"`
	CachedErrors uint64 `json:"cached_errors"`
	DecodeErrors uint64 `json:"decode_errors"`
	// Memory describes what a store that reports its size holds (backends/memstore does); nil for
	// other stores and when nothing is stored.
	Memory *MemoryStats `json:"memory,omitempty"`
	// InFlight is the number of runs (handler runs, loads, batch loads) started and not ended yet.
	InFlight int64 `json:"in_flight"`
	// StoreTimes is the distribution of the store calls' times by operation ("get", "set", "delete",
	// "lease", "ticket", "tag"), when they are timed ([WithStoreTimings], [WithObserver]); nil
	// otherwise. Only calls that reached the store are counted.
	StoreTimes map[string]Histogram `json:"store_times,omitempty"`

	// HitRate is (Hits + StaleHits) / Requests, MissRate Misses / Requests; both 0 before any request.
	HitRate  float64 `json:"hit_rate"`
	MissRate float64 `json:"miss_rate"`
	// LoadFailureRate is Failures / Runs, 0 before any run.
	LoadFailureRate float64 `json:"load_failure_rate"`
	// CollapseRatio is Coalesced / (Coalesced + Misses): the share of the requests that needed a run
	// which were served by another request's run instead of their own. 0 before any.
	CollapseRatio float64 `json:"collapse_ratio"`
}

// MemoryStats is what a store that holds its entries in this process reports about its size.
type MemoryStats struct {
	// Entries is the number of entries held, possibly including expired ones not yet removed.
	Entries int `json:"entries"`
	// Bytes is what the entries are charged against the store's budget.
	Bytes int64 `json:"bytes"`
	// Evictions counts entries removed to keep within the budget; zero for a store that does not
	// count them.
	Evictions uint64 `json:"evictions"`
	// MaxEntries is the bound of a store bounded by its number of entries rather than by bytes (an
	// [EntryBoundedStore], such as backends/memstore's Values, or a Loader's in-process tier): such a
	// store does not know the size of what it holds, and its Bytes is 0. Zero for other stores.
	MaxEntries int `json:"max_entries,omitempty"`
	// Store is the store these figures are of, so that a reader of several snapshots can tell the
	// caches that share one store and count its figures once (compare it with ==).
	Store any `json:"-"`
}

// StoreNames names the in-process stores behind a set of snapshots, so that an exporter reports each
// store once however many caches share it: a store is named after the first source found using it
// ([Snapshot.Name]), and a name already taken gets the suffix "#2", "#3", .... Stores are told apart
// by [MemoryStats.Store]; a store whose type is not comparable cannot be recognised and is named anew
// each time. The zero value is ready to use; use one StoreNames per collection.
type StoreNames struct {
	byStore map[any]string
	used    map[string]bool
}

// Name returns the name of the store m describes, used by the source named source, and whether this
// is the first time that store is seen (its figures are to be reported now).
func (n *StoreNames) Name(m *MemoryStats, source string) (name string, first bool) {
	store := m.Store
	keyed := store != nil && reflect.TypeOf(store).Comparable()
	if keyed {
		if name, ok := n.byStore[store]; ok {
			return name, false
		}
	}
	if n.byStore == nil {
		n.byStore, n.used = map[any]string{}, map[string]bool{}
	}
	name = source
	for i := 2; n.used[name]; i++ {
		name = fmt.Sprintf("%s#%d", source, i)
	}
	n.used[name] = true
	if keyed {
		n.byStore[store] = name
	}
	return name, true
}

// Histogram is a distribution of times over fixed buckets: handler run times, store call times.
type Histogram struct {
	// Bounds are the buckets' upper bounds in seconds, ascending; the same for every snapshot.
	Bounds []float64 `json:"bounds_seconds"`
	// Counts[i] counts the runs (or calls) that took more than Bounds[i-1] and at most Bounds[i]; the last
	// element, Counts[len(Bounds)], counts the runs that took longer than every bound.
	Counts []uint64 `json:"counts"`
	// Count is the sum of Counts, and Sum the total time of those runs in seconds.
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum_seconds"`
}

// Snapshot returns the cache's counters now, with derived rates. It takes no lock on the request path:
// it reads atomics, the circuit breaker's state, and the store's size when the store reports one
// (backends/memstore's takes its eviction policy's lock briefly), so it is cheap enough for every scrape.
func (c *Cache) Snapshot() Snapshot {
	var store any
	if c.store != nil {
		store = c.store
	}
	return c.stats.snapshot(c.cfg.name, "http", c.calls.Breaker(), store)
}

// snapshot builds the Snapshot of the counters s of a cache or loader named name, whose breaker is b
// and whose store (nil when none) may report its size.
func (s *stats) snapshot(name, kind string, b *storecall.Breaker, store any) Snapshot {
	snap := Snapshot{
		Name:        name,
		Kind:        kind,
		PassReasons: make(map[string]uint64, len(reasons)),
		Unshareable: make(map[string]uint64, len(responseReasons)),
	}
	h := &snap.HandlerTimes
	h.Bounds = make([]float64, len(handlerTimeBounds))
	for i, b := range handlerTimeBounds {
		h.Bounds[i] = b.Seconds()
	}
	// ran counts a run in runs last, so reading runs after the rest never finds more failures than runs.
	snap.Failures = s.failures.Load()
	snap.Panics = s.panics.Load()
	snap.HandlerTime = time.Duration(s.handlerNanos.Load())
	h.Sum = snap.HandlerTime.Seconds()
	h.Counts = make([]uint64, len(s.runs))
	for i := range s.runs {
		h.Counts[i] = s.runs[i].Load()
		h.Count += h.Counts[i]
	}
	snap.Runs = h.Count
	if snap.Runs > 0 {
		snap.AvgHandlerTime = snap.HandlerTime / time.Duration(snap.Runs)
	}

	for i, r := range reasons {
		n := s.passes[i].Load()
		snap.PassReasons[r] = n
		snap.Passes += n
	}
	if n := s.passes[len(reasons)].Load(); n > 0 {
		snap.PassReasons[otherReason] = n
		snap.Passes += n
	}
	for _, r := range responseReasons {
		snap.Unshareable[r] = 0
	}
	for i := range s.unshareable {
		if n := s.unshareable[i].Load(); n > 0 {
			name := otherReason
			if i < len(reasons) {
				name = reasons[i]
			}
			snap.Unshareable[name] = n
		}
	}

	snap.Hits = s.hits.Load()
	snap.StaleHits = s.staleHits.Load()
	snap.Misses = s.misses.Load()
	snap.Refreshes = s.refreshes.Load()
	snap.Coalesced = s.coalesced.Load()
	snap.Abandoned = s.abandoned.Load()
	snap.Failed = s.failed.Load()
	snap.Requests = s.requests.Load() // after the outcomes, so it is never below their sum
	if kind != "http" {
		// The function API counts outcomes only; a call is counted once it has one.
		snap.Requests = snap.Hits + snap.StaleHits + snap.Misses + snap.Coalesced + snap.Abandoned + snap.Failed
	}

	snap.StoreGetErrors = s.getErrors.Load()
	snap.StoreSetErrors = s.setErrors.Load()
	snap.BreakerOpen, snap.BreakerTrips = b.State()
	snap.FleetServed, snap.FleetFenced = s.fleetServed.Load(), s.fleetFenced.Load()
	snap.BatchLoads, snap.CachedErrors, snap.DecodeErrors = s.batchLoads.Load(), s.cachedErrors.Load(), s.decodeErrors.Load()
	if m, ok := store.(SizedStore); ok {
		snap.Memory = &MemoryStats{Entries: m.Len(), Bytes: m.Bytes(), Store: store}
		if b, ok := store.(EntryBoundedStore); ok {
			snap.Memory.MaxEntries = b.MaxEntries()
		}
		if e, ok := store.(EvictionCounter); ok {
			snap.Memory.Evictions = e.Evictions()
		}
	}

	snap.InFlight = max(s.running.Load(), 0)
	snap.StoreTimes = s.storeTimesSnapshot()

	snap.HitRate = ratio(snap.Hits+snap.StaleHits, snap.Requests)
	snap.MissRate = ratio(snap.Misses, snap.Requests)
	snap.LoadFailureRate = ratio(snap.Failures, snap.Runs)
	snap.CollapseRatio = ratio(snap.Coalesced, snap.Coalesced+snap.Misses)
	return snap
}

// ratio returns n/d, or 0 when d is 0.
func ratio(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}
