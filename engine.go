package stampede

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// engine is the function API's core, shared by [Loader] (keys of type K, a load function fixed at build)
// and [Stampede] (string keys, a function per call). It runs on the middleware's parts: the coalescer
// and its epoch protocol (zero duplicate loads), the circuit breaker and store-call convention
// (storeCalls), the stats type, the fleet lease protocol of the stores that offer it, and the
// doorkeeper.
type engine[K comparable, V any] struct {
	name   string
	kind   string // Snapshot.Kind
	cfg    config
	logger *slog.Logger
	keys   keyer // digests and memo only: its prefix is "<prefix>:<version>:{"

	flights coalescer[record[V]]
	breaker breaker
	stats   stats
	calls   storeCalls
	store   recordStore[V]   // nil: coalesce only
	plain   ValueStore[V]    // the store when it keeps bare values (store is then its plainRecords)
	sizer   any              // the store reporting its size, for Snapshot.Memory; nil when none
	fleet   legacyLeaseStore // nil unless fleet coalescing is on and the store offers leases
	door    *doorkeeper      // nil unless WithMinUses asks for more than one use
	errTTL  func(error) time.Duration

	load   func(ctx context.Context, k K) (V, error) // nil for a Stampede: each call brings its own
	batch  BatchLoadFunc[K, V]                       // nil: misses load one key at a time
	buffer *refreshBuffer[K, V]                      // nil unless refreshes are buffered

	background   sync.WaitGroup // loads and refreshes in flight, on goroutines of their own
	decodeLogged atomic.Bool
	stop         func() // ends the invalidation subscription; nil when none

	// Test hooks, set before use: onJoin is called as a call starts waiting on another's load,
	// onDropped as an announced invalidation has dropped a key from the in-process tier.
	onJoin    func()
	onDropped atomic.Pointer[func(key string)]
}

// callOpts are the settings of one call: the engine's, or a Do call's own options.
type callOpts[V any] struct {
	ttl  time.Duration
	skip bool                              // coalesce only
	fn   func() (V, *time.Duration, error) // a Do call's function; nil: the engine's load
}

// maxLoadAttempts bounds how often one call looks in the store again because a load for its key finished
// while it looked; the last attempt waits on or leads a load whatever the store says.
const maxLoadAttempts = 4

// readResult is what one store read found.
type readResult uint8

const (
	readMiss readResult = iota
	readFound
	readSkipped // the breaker skipped the store: nothing was read, no epoch to check
)

// read reads key through the breaker.
func (e *engine[K, V]) read(ctx context.Context, key string) (record[V], readResult) {
	ok, probe := e.calls.begin()
	if !ok {
		return record[V]{}, readSkipped
	}
	sctx, bound := e.calls.ctx(ctx)
	rec, found, err := e.store.get(sctx, key)
	bound.release()
	e.calls.endRead(ctx, probe, err)
	if err != nil || !found {
		return record[V]{}, readMiss
	}
	return rec, readFound
}

// badValue logs, once per engine, a stored value that does not decode; it counts as a miss.
func (e *engine[K, V]) badValue(err error) {
	e.stats.decodeErrors.Add(1)
	if e.decodeLogged.CompareAndSwap(false, true) {
		e.logger.Warn("stampede: a stored value does not decode; treated as a miss and loaded again (logged once)",
			"loader", e.name, "error", err)
	}
}

// hit counts a call answered from the store with rec.
func (e *engine[K, V]) hit(rec *record[V]) {
	e.stats.hits.Add(1)
	if rec.err != nil {
		e.stats.cachedErrors.Add(1)
	}
}

// get returns k's value: from the store when it holds a usable one, else from the load in flight for
// k, else from a load this call starts. See docs/behaviour.md §8.
func (e *engine[K, V]) get(ctx context.Context, k K, ck key, co callOpts[V]) (V, error) {
	if e.plain != nil && !co.skip {
		v, ok, missedAt := e.hitPlain(ctx, &ck)
		if ok {
			return v, nil
		}
		return e.lookupOrLoad(ctx, k, ck, co, missedAt)
	}
	return e.lookupOrLoad(ctx, k, ck, co, noEpoch)
}

// hitPlain is the hit path of a store of bare values, whose every value is fresh: when no load of ck is
// in flight it reads the store directly (no record, no state) and counts a hit. On a miss, missedAt is
// the epoch it read at, for lookupOrLoad, or noEpoch when it read nothing.
func (e *engine[K, V]) hitPlain(ctx context.Context, ck *key) (v V, ok bool, missedAt uint64) {
	shard := &e.flights.shards[ck.shard]
	if shard.n.Load() != 0 {
		if f := e.flights.lookup(*ck); f != nil && !f.soft {
			return v, false, noEpoch
		}
	}
	epoch := shard.epoch.Load()
	ok, probe := e.calls.begin()
	if !ok {
		return v, false, noEpoch
	}
	var found bool
	var err error
	if e.calls.bounded {
		v, found, err = e.plain.Get(ctx, ck.s)
	} else {
		sctx, bound := e.calls.ctx(ctx)
		v, found, err = e.plain.Get(sctx, ck.s)
		bound.release()
	}
	if err != nil || probe || e.breaker.troubled() {
		e.calls.endRead(ctx, probe, err)
	}
	if err != nil || !found {
		var zero V
		return zero, false, epoch
	}
	e.stats.hits.Add(1)
	return v, true, 0
}

// lookupOrLoad is get. missedAt, unless noEpoch, says the caller has read the store at that epoch and
// found nothing: the first attempt reads it no more. (The function API counts a call by its outcome
// alone: see Snapshot.Requests.)
func (e *engine[K, V]) lookupOrLoad(ctx context.Context, k K, ck key, co callOpts[V], missedAt uint64) (V, error) {
	store := e.store
	if co.skip {
		store = nil
	}
	var stale *record[V]
	for attempt := 0; ; attempt++ {
		if f := e.flights.lookup(ck); f != nil && !f.soft {
			rec, err, again := e.join(ctx, f, stale, asWaiter)
			if again {
				missedAt = noEpoch
				continue
			}
			return rec.val, err
		}
		epoch := noEpoch
		if attempt == 0 && missedAt != noEpoch {
			epoch = missedAt
		} else if store != nil && attempt < maxLoadAttempts {
			epoch = e.flights.epoch(ck.shard)
			rec, res := e.read(ctx, ck.s)
			switch res {
			case readSkipped:
				epoch = noEpoch
			case readFound:
				switch rec.state(e.cfg.clock) {
				case recFresh:
					e.hit(&rec)
					if rec.err == nil && e.cfg.xfetchBeta > 0 && e.early(&rec) {
						e.refresh(ctx, k, ck, co)
					}
					return rec.val, rec.err
				case recStale:
					e.stats.staleHits.Add(1)
					e.refresh(ctx, k, ck, co)
					return rec.val, nil
				case recStaleError:
					kept := rec // only this path puts a record on the heap
					stale = &kept
				}
			}
		}
		f, leader, retry := e.flights.acquire(ck, epoch)
		switch {
		case retry != noRetry:
			continue // a load for k may have stored its value since we looked: look again
		case leader:
			e.lead(ctx, f, k, ck, co, stale, e.admit(ck))
		}
		rec, err, again := e.join(ctx, f, stale, roleOf(leader))
		if again {
			continue
		}
		return rec.val, err
	}
}

// joinRole is how a call waiting on a flight takes part in it.
type joinRole uint8

const (
	asWaiter joinRole = iota // counted as coalesced
	asLeader                 // started the load: counted as a miss already, re-raises its panic
	asMember                 // a key of a batch load this call leads: counted as a miss already
)

func roleOf(leader bool) joinRole {
	if leader {
		return asLeader
	}
	return asWaiter
}

// admit reports whether the doorkeeper lets k's value be stored.
func (e *engine[K, V]) admit(ck key) bool { return e.door == nil || e.door.use(ck, e.cfg.clock()) }

// xfetchAt is XFetch's test (see [WithEarlyRefresh]) for a value fresh until expiry whose load took
// delta: refresh when now - delta*beta*ln(rand) >= expiry.
func xfetchAt(expiry time.Time, delta time.Duration, now time.Time, beta float64) bool {
	gap := -float64(delta) * beta * math.Log(1-rand.Float64()) // rand in (0,1]: ln <= 0
	return !now.Add(time.Duration(gap)).Before(expiry)
}

// early reports whether a fresh record should be refreshed now (XFetch, see [WithEarlyRefresh]).
func (e *engine[K, V]) early(rec *record[V]) bool {
	if rec.storedAt.IsZero() || rec.compute <= 0 {
		return false
	}
	return xfetchAt(rec.storedAt.Add(rec.ttl), rec.compute, e.cfg.clock(), e.cfg.xfetchBeta)
}

// leadState is what a leading call and its load's goroutine share, so that a panic is raised on the
// leading call when it is still waiting, and logged when nobody was there to see it.
type leadState struct {
	done       chan struct{} // closed, by leave, when the leading call stopped waiting
	once       sync.Once
	repanicked atomic.Bool
}

// leave says the leading call stopped waiting.
func (st *leadState) leave() { st.once.Do(func() { close(st.done) }) }

// lead starts f's load on a goroutine of its own, so that the calling goroutine (and every other) may
// stop waiting when its context ends while the load goes on, detached, for the others.
func (e *engine[K, V]) lead(ctx context.Context, f *flight[record[V]], k K, ck key, co callOpts[V], stale *record[V], admitted bool) {
	e.stats.misses.Add(1)
	st := &leadState{done: make(chan struct{})}
	f.lead = st
	base := context.WithoutCancel(ctx)
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		defer func() {
			if p := recover(); p != nil {
				<-st.done
				if !st.repanicked.Load() {
					e.stats.logs.log(context.Background(), e.logger, logLoadPanic, slog.LevelError,
						"stampede: load panicked", "loader", e.name, "panic", p)
				}
			}
		}()
		e.runLoad(base, f, k, ck, co, stale, admitted)
	}()
}

// join waits for f. again is true when the caller should look again: the load called runtime.Goexit.
// A leading caller re-raises a panic of its load, with the same value.
func (e *engine[K, V]) join(ctx context.Context, f *flight[record[V]], stale *record[V], role joinRole) (rec record[V], err error, again bool) {
	leader := role == asLeader
	var st *leadState
	if leader && f.lead != nil {
		st = f.lead
		defer st.leave()
	}
	if role == asWaiter && e.onJoin != nil {
		e.onJoin()
	}
	rec, err = f.wait(ctx)
	waiter := role == asWaiter // a leader's or member's call is counted as a miss already
	count := func(c *atomic.Uint64) {
		if waiter {
			c.Add(1)
		}
	}
	var pe *PanicError
	switch {
	case err == nil:
		count(&e.stats.coalesced)
		return rec, rec.err, false
	case ctx.Err() != nil:
		count(&e.stats.abandoned)
		return record[V]{}, ctx.Err(), false
	case errors.Is(err, errGoexit):
		if leader {
			runtime.Goexit()
		}
		return rec, nil, true
	case errors.Is(err, errComputeTimeout):
		if stale != nil {
			count(&e.stats.staleHits)
			return *stale, nil, false
		}
		count(&e.stats.failed)
		return record[V]{}, ErrComputeTimeout, false
	case errors.As(err, &pe) || err == http.ErrAbortHandler: //nolint:errorlint // compared as the coalescer publishes it
		if leader && st != nil {
			st.repanicked.Store(true)
			if pe != nil {
				panic(pe.Value)
			}
			panic(err)
		}
		count(&e.stats.failed)
		return record[V]{}, err, false
	}
	return record[V]{}, err, false
}

// loadCtx returns the context a load runs with: base (detached from the caller) bounded by the compute
// timeout. At the timeout the flights are detached, so callers arriving later start loads of their own,
// and their waiters told.
func (e *engine[K, V]) loadCtx(base context.Context, fs ...*flight[record[V]]) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(base, e.cfg.computeTimeout)
	timer := time.AfterFunc(e.cfg.computeTimeout, func() {
		for _, f := range fs {
			e.flights.detach(f)
			f.publish(record[V]{}, errComputeTimeout)
		}
	})
	return ctx, func() {
		timer.Stop()
		cancel()
	}
}

// runLoad is the body of a load's goroutine: the fleet step, then the load through the coalescer, which
// publishes its record and persists it before the flight is forgotten.
func (e *engine[K, V]) runLoad(base context.Context, f *flight[record[V]], k K, ck key, co callOpts[V], stale *record[V], admitted bool) {
	ctx, done := e.loadCtx(base, f)
	defer done()
	var token string
	handed := false
	if e.fleet != nil && !f.soft && !co.skip {
		var served bool
		if token, served = e.fleetLead(ctx, f, ck); served {
			return
		}
		defer func() {
			if !handed {
				e.release(ck.s, token, fleetMiss) // the load panicked or called Goexit
			}
		}()
	}
	e.flights.run(f, func() (record[V], func()) {
		start := time.Now()
		finished := false
		defer func() {
			if !finished {
				e.stats.ran(time.Since(start), 0, false)
			}
		}()
		var v V
		var ttl *time.Duration
		var err error
		if co.fn != nil {
			v, ttl, err = co.fn()
		} else {
			v, err = e.load(ctx, k)
		}
		d := time.Since(start)
		finished = true
		e.stats.ran(d, statusOf(err), true)
		rec, storeTTL := e.newRecord(v, err, ttl, co, d)
		if co.skip {
			storeTTL = 0 // this call coalesces only (WithSkipCache)
		}
		if err != nil && stale != nil {
			handed = true
			if token != "" {
				return *stale, func() { e.release(ck.s, token, fleetMiss) }
			}
			return *stale, nil // stale-if-error: serve what the store has, keep it there
		}
		handed = true
		return rec, e.persistWork(f, ck.s, rec, storeTTL, token, admitted)
	})
}

// statusOf is the run status the stats count a load's outcome as.
func statusOf(err error) int {
	if err != nil && !errors.Is(err, ErrNotFound) {
		return http.StatusInternalServerError
	}
	return http.StatusOK
}

// newRecord makes the record of a load's outcome and the TTL to store it for (zero: not stored). A value
// is fresh for the call's TTL, or the TTL a Do function returned; a failure is kept only as long as
// WithErrorTTL says.
func (e *engine[K, V]) newRecord(v V, err error, ttl *time.Duration, co callOpts[V], compute time.Duration) (record[V], time.Duration) {
	rec := record[V]{val: v, err: err, storedAt: e.cfg.clock(), compute: compute}
	if err != nil {
		if e.errTTL != nil {
			rec.ttl = e.errTTL(err)
		}
		return rec, max(rec.ttl, 0)
	}
	rec.ttl = co.ttl
	if ttl != nil {
		rec.ttl = *ttl
	}
	if rec.ttl <= 0 {
		return rec, 0
	}
	rec.swr, rec.sie = e.cfg.staleWhileRevalidate, e.cfg.staleIfError
	return rec, rec.usable()
}

// persistWork returns the store write of rec, run before the flight is forgotten (zero duplicate
// loads), or nil when nothing is to be written. With a fleet lease it always returns work: the lease
// must be released.
func (e *engine[K, V]) persistWork(f *flight[record[V]], key string, rec record[V], ttl time.Duration, token string, admitted bool) func() {
	if e.store == nil || ttl <= 0 || !admitted {
		if token != "" {
			return func() { e.release(key, token, fleetMiss) }
		}
		return nil
	}
	return func() {
		outcome := fleetMiss
		if token != "" {
			defer func() { e.release(key, token, outcome) }()
		}
		if !f.invalidated.Load() && e.write(key, &rec, ttl, token) {
			outcome = fleetStored
		}
	}
}

// write stores rec under key through the breaker and reports whether it was stored. A store that
// panics does not take the process down: the write counts as failed.
func (e *engine[K, V]) write(key string, rec *record[V], ttl time.Duration, token string) (stored bool) {
	ok, probe := e.calls.begin()
	if !ok {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			e.calls.endWrite(probe, errStorePanic)
			e.stats.logs.log(context.Background(), e.logger, logStorePanic, slog.LevelError,
				"stampede: store panicked on write", "loader", e.name, "panic", p)
			stored = false
		}
	}()
	ctx, bound := e.calls.ctx(context.Background())
	defer bound.release()
	stored, err := e.store.set(ctx, key, rec, ttl, token)
	e.calls.endWrite(probe, err)
	switch {
	case err != nil:
		e.logger.Debug("stampede: store write failed", "loader", e.name, "error", err)
		return false
	case !stored && token != "":
		e.stats.fleetFenced.Add(1)
		e.stats.logs.log(context.Background(), e.logger, logLeaseExpired, slog.LevelWarn,
			"stampede: lease expired before the value was stored; another replica's value wins",
			"loader", e.name, "lease", e.cfg.fleetLease)
	}
	return stored
}

var errStorePanic = errors.New("stampede: store panicked")

// refresh starts a background load of k unless a load of k is in flight; the stale or nearly expired
// value is served meanwhile. With refresh buffering the key joins the next batch instead.
func (e *engine[K, V]) refresh(ctx context.Context, k K, ck key, co callOpts[V]) {
	f, leader := e.flights.acquireSoft(ck)
	if !leader {
		return
	}
	e.stats.refreshes.Add(1)
	base := context.WithoutCancel(ctx)
	if e.buffer != nil && co.fn == nil {
		e.buffer.add(base, k, ck, f)
		return
	}
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		defer e.recoverBackground()
		e.runLoad(base, f, k, ck, co, nil, true)
	}()
}

// recoverBackground logs a panic of a load nobody waits on.
func (e *engine[K, V]) recoverBackground() {
	if p := recover(); p != nil {
		e.stats.logs.log(context.Background(), e.logger, logRefreshPanic, slog.LevelError,
			"stampede: background refresh panicked", "loader", e.name, "panic", p)
	}
}

// fleetLead is the fleet step of a load (see [WithFleetCoalescing]): it returns served when another
// replica's stored value was published to f, so nothing is loaded; otherwise the lease this process now
// holds ("" when none: load without one, as a per-process leader). Store errors only lead to the latter.
func (e *engine[K, V]) fleetLead(ctx context.Context, f *flight[record[V]], ck key) (token string, served bool) {
	fctx, cancel := context.WithTimeout(ctx, e.cfg.fleetLease+e.cfg.storeTimeout)
	defer cancel()
	for try := range 2 {
		token, held, ok := e.tryLease(fctx, ck.s)
		switch {
		case !ok:
			return "", false
		case held:
			if e.fleetServe(fctx, f, ck) {
				e.release(ck.s, token, fleetStored)
				return "", true
			}
			return token, false
		case try == 1:
			return "", false // lost the lease twice: load without one rather than wait again
		}
		if _, err := e.fleet.WaitRelease(fctx, ck.s); err != nil {
			return "", false
		}
		if e.fleetServe(fctx, f, ck) {
			return "", true
		}
	}
	return "", false
}

// fleetServe publishes to f the fresh record another replica stored for ck, when there is one.
func (e *engine[K, V]) fleetServe(ctx context.Context, f *flight[record[V]], ck key) bool {
	rec, res := e.read(ctx, ck.s)
	if res != readFound || rec.state(e.cfg.clock) != recFresh {
		return false
	}
	e.flights.run(f, func() (record[V], func()) { return rec, nil })
	e.stats.fleetServed.Add(1)
	return true
}

// tryLease asks for key's lease through the breaker; ok is false when the store could not answer.
func (e *engine[K, V]) tryLease(ctx context.Context, key string) (token string, held, ok bool) {
	allowed, probe := e.calls.begin()
	if !allowed {
		return "", false, false
	}
	sctx, bound := e.calls.ctx(ctx)
	token, held, err := e.fleet.TryLease(sctx, key, e.cfg.fleetLease)
	bound.release()
	e.calls.endRead(ctx, probe, err)
	if err != nil {
		e.logger.Debug("stampede: fleet lease failed, coalescing in this process only", "loader", e.name, "error", err)
		return "", false, false
	}
	return token, held, true
}

// release gives up key's lease held with token, announcing outcome; "" holds none.
func (e *engine[K, V]) release(key, token, outcome string) {
	if token == "" {
		return
	}
	ctx, bound := e.calls.ctx(context.Background())
	defer bound.release()
	if err := e.fleet.Release(ctx, key, token, outcome); err != nil {
		e.logger.Debug("stampede: lease release failed", "loader", e.name, "error", err)
	}
}

// set stores v for k now, as a load would have. A load of k in flight is not stored when it finishes:
// its value is older than v.
func (e *engine[K, V]) set(ck key, v V, co callOpts[V]) error {
	if f := e.flights.lookup(ck); f != nil {
		f.invalidated.Store(true)
	}
	if e.store == nil {
		return nil
	}
	rec, ttl := e.newRecord(v, nil, nil, co, 0)
	if ttl <= 0 {
		return nil
	}
	if !e.write(ck.s, &rec, ttl, "") {
		return ErrNotStored
	}
	return nil
}

// ErrNotStored is what [Loader.Set] returns when the store did not take the value (it failed, timed out
// or is skipped by the circuit breaker).
var ErrNotStored = errors.New("stampede: value not stored")

// invalidate removes what is stored for the keys; loads of them in flight are not stored when they
// finish (their callers still get their values).
func (e *engine[K, V]) invalidate(ctx context.Context, cks []key) error {
	var errs []error
	for _, ck := range cks {
		if f := e.flights.lookup(ck); f != nil {
			f.invalidated.Store(true)
		}
		if e.store == nil {
			continue
		}
		ok, probe := e.calls.begin()
		if !ok {
			errs = append(errs, ErrNotStored)
			continue
		}
		sctx, bound := e.calls.ctx(ctx)
		err := e.store.del(sctx, ck.s)
		bound.release()
		e.calls.endWrite(probe, err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// forceLoad loads k now, whatever the store holds, unless a load of k is in flight, whose value it
// returns.
func (e *engine[K, V]) forceLoad(ctx context.Context, k K, ck key, co callOpts[V]) (V, error) {
	for {
		f, leader, _ := e.flights.acquire(ck, noEpoch)
		if leader {
			e.lead(ctx, f, k, ck, co, nil, true)
		}
		rec, err, again := e.join(ctx, f, nil, roleOf(leader))
		if !again {
			return rec.val, err
		}
	}
}

// peek returns what get would serve from the store for ck without loading or refreshing anything.
func (e *engine[K, V]) peek(ctx context.Context, ck key) (V, bool) {
	var zero V
	if e.store == nil {
		return zero, false
	}
	rec, res := e.read(ctx, ck.s)
	if res != readFound || rec.err != nil {
		return zero, false
	}
	if s := rec.state(e.cfg.clock); s != recFresh && s != recStale {
		return zero, false
	}
	return rec.val, true
}

// defaultCall returns the settings of a call that brings none of its own.
func (e *engine[K, V]) defaultCall() callOpts[V] {
	return callOpts[V]{ttl: e.cfg.ttl, skip: e.cfg.skipCache}
}

// wait blocks until every load, refresh and store write started so far has finished.
func (e *engine[K, V]) wait() {
	if e.buffer != nil {
		e.buffer.flush()
	}
	e.background.Wait()
	e.flights.wait()
}

// close flushes buffered refreshes, waits for everything in flight and ends the invalidation
// subscription.
func (e *engine[K, V]) close() {
	e.wait()
	if e.stop != nil {
		e.stop()
	}
}

// snapshot returns the engine's counters.
func (e *engine[K, V]) snapshot() Snapshot {
	return e.stats.snapshot(e.name, e.kind, &e.breaker, e.sizer)
}
