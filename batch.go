package stampede

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// BatchLoadFunc loads the values of many keys in one call (one SQL query with IN, one RPC). A key the
// returned map leaves out does not exist: it counts as [ErrNotFound] for that key. An error fails
// every key of the call.
type BatchLoadFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// manySlot is one distinct key of a getMany call.
type manySlot[K comparable, V any] struct {
	k     K
	ck    key
	epoch uint64
	stale *record[V]
	f     *flight[record[V]]
	role  joinRole
	done  bool // answered from the store
	rec   record[V]
}

// getMany is get for many keys: one batched store read for all of them, then, for the keys it did not
// answer, the loads in flight (whoever started them: a key that another call is loading, alone or in
// a batch, is taken from that load) and one batch load for the rest. See docs/behaviour.md §8.
func (e *engine[K, V]) getMany(ctx context.Context, ks []K, keyOf func(K) key) (map[K]V, error) {
	slots := make([]*manySlot[K, V], 0, len(ks))
	seen := make(map[K]bool, len(ks))
	for _, k := range ks {
		if !seen[k] {
			seen[k] = true
			slots = append(slots, &manySlot[K, V]{k: k, ck: keyOf(k)})
		}
	}

	var waiting []*manySlot[K, V] // slots whose value comes from a flight
	pending := slots
	for attempt := 0; len(pending) > 0; attempt++ {
		var toRead []*manySlot[K, V]
		for _, s := range pending {
			if f := e.flights.lookup(s.ck); f != nil && !f.soft {
				s.f = f
				waiting = append(waiting, s)
				continue
			}
			s.epoch = noEpoch
			toRead = append(toRead, s)
		}
		if e.store != nil && attempt < maxLoadAttempts && len(toRead) > 0 {
			e.readMany(ctx, toRead)
		}
		var retry, mine []*manySlot[K, V]
		for _, s := range toRead {
			if s.done {
				continue
			}
			f, leader, again := e.flights.acquire(s.ck, s.epoch)
			switch {
			case again != noRetry:
				retry = append(retry, s)
			case leader:
				s.f, s.role = f, asLeader
				mine = append(mine, s)
				waiting = append(waiting, s)
			default:
				s.f = f
				waiting = append(waiting, s)
			}
		}
		e.leadMany(ctx, mine)
		pending = retry
	}

	defer func() {
		for _, s := range waiting { // a call that returns early has stopped waiting for its loads too
			if s.role == asLeader && s.f.lead != nil {
				s.f.lead.leave()
			}
		}
	}()
	out := make(map[K]V, len(slots))
	var errs []error
	for _, s := range slots {
		if s.done {
			if s.rec.err == nil {
				out[s.k] = s.rec.val
			} else if !errors.Is(s.rec.err, ErrNotFound) {
				errs = append(errs, keyError(s.k, s.rec.err))
			}
			continue
		}
	}
	for i, s := range waiting {
		rec, err, again := e.join(ctx, s.f, s.stale, s.role)
		if again { // the load called runtime.Goexit: this key alone, again
			rec.val, err = e.lookupOrLoad(ctx, s.k, s.ck, e.defaultCall(), noEpoch)
		}
		switch {
		case err == nil:
			out[s.k] = rec.val
		case ctx.Err() != nil:
			for _, rest := range waiting[i+1:] {
				if rest.role == asWaiter { // the keys this call leads are counted as misses already
					e.stats.abandoned.Add(1)
				}
			}
			return out, ctx.Err()
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, keyError(s.k, err))
		}
	}
	return out, errors.Join(errs...)
}

// keyError says which key an error of a getMany call is for.
func keyError[K comparable](k K, err error) error { return fmt.Errorf("stampede: key %v: %w", k, err) }

// readMany reads the slots' keys in one batched store call and answers those it can. The epoch of each
// is read before the store is, as get does.
func (e *engine[K, V]) readMany(ctx context.Context, slots []*manySlot[K, V]) {
	ok, probe := e.calls.begin()
	if !ok {
		return // skipped: nothing read, the epochs stay noEpoch
	}
	keys := make([]string, len(slots))
	for i, s := range slots {
		s.epoch = e.flights.epoch(s.ck.shard)
		keys[i] = s.ck.s
	}
	recs, found := make([]record[V], len(slots)), make([]bool, len(slots))
	sctx, bound := e.calls.ctx(ctx)
	err := e.store.getMany(sctx, keys, recs, found)
	bound.release()
	e.calls.endRead(ctx, probe, err)
	for i, s := range slots {
		if !found[i] {
			continue
		}
		rec := recs[i]
		switch rec.state(e.cfg.clock) {
		case recFresh:
			e.hit(&rec)
			s.done, s.rec = true, rec
			if rec.err == nil && e.cfg.xfetchBeta > 0 && e.early(&rec) {
				e.refresh(ctx, s.k, s.ck, e.defaultCall())
			}
		case recStale:
			e.stats.staleHits.Add(1)
			s.done, s.rec = true, rec
			e.refresh(ctx, s.k, s.ck, e.defaultCall())
		case recStaleError:
			s.stale = &recs[i]
		}
	}
}

// leadMany starts the loads of the flights a getMany call leads: one batch load for all of them when
// there is a batch load function, else one load each (concurrently, each on its own goroutine).
func (e *engine[K, V]) leadMany(ctx context.Context, mine []*manySlot[K, V]) {
	if len(mine) == 0 {
		return
	}
	co := e.defaultCall()
	if e.batch == nil || len(mine) == 1 && e.load != nil {
		for _, s := range mine {
			e.lead(ctx, s.f, s.k, s.ck, co, s.stale, e.admit(s.ck))
		}
		return
	}
	b := &batchRun[K, V]{base: context.WithoutCancel(ctx), st: &leadState{done: make(chan struct{})}}
	for _, s := range mine {
		e.stats.misses.Add(1)
		b.add(s.k, s.ck, s.f, s.stale, e.admit(s.ck))
	}
	// One leadState for the batch: the first flight carries it, so the call re-raises a panic once.
	mine[0].f.lead = b.st
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		defer func() {
			if p := recover(); p != nil {
				<-b.st.done
				if !b.st.repanicked.Load() {
					e.stats.logs.log(context.Background(), e.logger, logBatchPanic, slog.LevelError,
						"stampede: batch load panicked", "loader", e.name, "panic", p)
				}
			}
		}()
		e.runBatch(b)
	}()
	for _, s := range mine[1:] {
		s.role = asMember // the call re-raises the batch's panic once, through mine[0]
	}
}

// batchRun is one call of the batch load function, for the flights of the keys it loads.
type batchRun[K comparable, V any] struct {
	base    context.Context
	st      *leadState // nil for a buffered refresh, which nobody waits on
	ks      []K
	cks     []key
	fs      []*flight[record[V]]
	stale   []*record[V]
	admit   []bool
	started time.Time
}

func (b *batchRun[K, V]) add(k K, ck key, f *flight[record[V]], stale *record[V], admitted bool) {
	b.ks, b.cks, b.fs = append(b.ks, k), append(b.cks, ck), append(b.fs, f)
	b.stale, b.admit = append(b.stale, stale), append(b.admit, admitted)
}

// runBatch calls the batch load function once for b's keys, publishes each key's record and persists
// them before the flights are forgotten.
func (e *engine[K, V]) runBatch(b *batchRun[K, V]) {
	ctx, done := e.loadCtx(b.base, b.fs...)
	defer done()
	co := e.defaultCall()
	e.flights.runMany(b.fs, func() ([]record[V], func()) {
		start := time.Now()
		finished := false
		defer func() {
			if !finished {
				e.stats.ran(time.Since(start), 0, false)
			}
		}()
		e.stats.batchLoads.Add(1)
		m, err := e.batch(ctx, b.ks)
		d := time.Since(start)
		finished = true
		e.stats.ran(d, statusOf(err), true)
		recs := make([]record[V], len(b.ks))
		var works []func()
		for i, k := range b.ks {
			var v V
			kerr := err
			if kerr == nil {
				var ok bool
				if v, ok = m[k]; !ok {
					kerr = ErrNotFound
				}
			}
			rec, ttl := e.newRecord(v, kerr, nil, co, d)
			if kerr != nil && b.stale[i] != nil {
				recs[i] = *b.stale[i] // stale-if-error
				continue
			}
			recs[i] = rec
			if w := e.persistWork(b.fs[i], b.cks[i].s, rec, ttl, "", b.admit[i]); w != nil {
				works = append(works, w)
			}
		}
		if len(works) == 0 {
			return recs, nil
		}
		return recs, func() {
			for _, w := range works {
				w()
			}
		}
	})
}

// refreshBuffer collects background refreshes of a [Loader] into batches (see
// [WithRefreshBuffering]): a batch is loaded once it holds size keys or wait has passed since its first
// key, whichever is first.
type refreshBuffer[K comparable, V any] struct {
	e    *engine[K, V]
	size int
	wait time.Duration

	mu    sync.Mutex
	batch *batchRun[K, V] // guarded by mu; nil when empty
	timer *time.Timer     // guarded by mu; armed while batch is not empty
}

// add queues k's refresh; f is its soft flight, already acquired.
func (r *refreshBuffer[K, V]) add(base context.Context, k K, ck key, f *flight[record[V]]) {
	r.mu.Lock()
	if r.batch == nil {
		r.batch = &batchRun[K, V]{base: base}
		r.timer = time.AfterFunc(r.wait, r.flush)
	}
	r.batch.add(k, ck, f, nil, true)
	full := len(r.batch.ks) >= r.size
	r.mu.Unlock()
	if full {
		r.flush()
	}
}

// flush starts the load of the batch collected so far, if any.
func (r *refreshBuffer[K, V]) flush() {
	r.mu.Lock()
	b := r.batch
	r.batch = nil
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if b != nil {
		r.e.background.Add(1) // under mu, so that a wait after this flush sees it
	}
	r.mu.Unlock()
	if b == nil {
		return
	}
	go func() {
		defer r.e.background.Done()
		defer r.e.recoverBackground()
		r.e.runBatch(b)
	}()
}
