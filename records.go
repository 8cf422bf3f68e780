package stampede

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"sync"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// ErrNotFound is what a load function returns (or wraps) to say that the record it was asked for does
// not exist. It is an error like any other to the callers, except that [Loader.GetMany] leaves the key
// out of its result instead of reporting it, and a batch load that omits a key from its map means
// ErrNotFound for that key. Keeping the answer for a while (missing-record storage, negative caching)
// is up to [WithErrorTTL].
var ErrNotFound = errors.New("stampede: not found")

// ErrComputeTimeout is what callers waiting on a load get when it runs past the compute timeout
// ([WithComputeTimeout]) and there is no stale value to give them instead. The load is not abandoned:
// its context is cancelled, and what it returns late is still stored. Callers arriving from then on
// start a load of their own.
var ErrComputeTimeout = errors.New("stampede: load passed the compute timeout")

// CachedError is the error a [Loader] returns for a key whose load failed and whose failure was kept
// ([WithErrorTTL]): the load is not called again until it expires. Error is the original message;
// errors.Is(err, ErrNotFound) holds when the original error was a not-found, in this process or another
// (the message and that fact are all a shared store keeps); Unwrap returns the original error when the
// failure was kept in this process ([WithValues]).
type CachedError struct {
	// Msg is the original error's message.
	Msg string
	// NotFound reports whether the original error was, or wrapped, ErrNotFound.
	NotFound bool
	err      error // the original, when the failure was kept in this process; else nil
}

// Error returns the original error's message.
func (e *CachedError) Error() string { return e.Msg }

// Is reports whether target is ErrNotFound and the original error was one.
func (e *CachedError) Is(target error) bool { return target == ErrNotFound && e.NotFound } //nolint:errorlint // identity of the sentinel

// Unwrap returns the original error, when it is known in this process.
func (e *CachedError) Unwrap() error { return e.err }

// cachedError returns the form in which err is kept.
func cachedError(err error) *CachedError {
	var ce *CachedError
	if errors.As(err, &ce) {
		return ce
	}
	return &CachedError{Msg: err.Error(), NotFound: errors.Is(err, ErrNotFound), err: err}
}

// record is one loaded value, or a kept failure, and what decides how long it may be used.
type record[V any] struct {
	val V
	err error // a kept failure (WithErrorTTL): a *CachedError when read back from a store
	// storedAt is when it was loaded; zero for a value from a plain value store (the function API's),
	// which keeps no metadata: such a value is fresh for as long as the store keeps it.
	storedAt time.Time
	ttl      time.Duration // fresh until storedAt + ttl
	swr      time.Duration // then served while it is refreshed, for this long (stale-while-revalidate)
	sie      time.Duration // or served when the refresh fails, for this long (stale-if-error)
	compute  time.Duration // how long the load took: XFetch's delta
}

// usable is how long after it was loaded a record is of any use: the TTL its store write gets.
func (r *record[V]) usable() time.Duration { return r.ttl + max(r.swr, r.sie) }

// age states of a record.
type recordState uint8

const (
	recExpired    recordState = iota
	recFresh                  // use it
	recStale                  // use it, and refresh it in the background (stale-while-revalidate)
	recStaleError             // use it only if the load that replaces it fails (stale-if-error)
)

// state returns what r is good for at the time clock tells; clock is called only for records that
// carry a load time.
func (r *record[V]) state(clock func() time.Time) recordState {
	if r.storedAt.IsZero() {
		return recFresh
	}
	age := clock().Sub(r.storedAt)
	switch {
	case age < r.ttl:
		return recFresh
	case r.err != nil:
		return recExpired // failures are never served stale
	case age < r.ttl+r.swr:
		return recStale
	case age < r.ttl+r.sie:
		return recStaleError
	}
	return recExpired
}

// recordStore is the one store layer of the function API: records in and out of whichever store the
// caller configured. A get or getMany whose stored bytes do not decode reports them to the bad callback
// it was built with and counts them as misses; err is only ever the store's own error.
type recordStore[V any] interface {
	get(ctx context.Context, key string) (rec record[V], found bool, err error)
	// getMany fills recs and found for keys in as few round trips as the store allows.
	getMany(ctx context.Context, keys []string, recs []record[V], found []bool) error
	// set stores rec under key for ttl; with a lead holding a ticket or lease (see [FencedStore]), only
	// while it is valid (stored is false when it no longer is).
	set(ctx context.Context, key string, rec *record[V], ttl time.Duration, lead storecall.Lead) (stored bool, err error)
	// del deletes key; in a store that fences writes, it revokes key's tickets and leases.
	del(ctx context.Context, key string) error
}

// Entry statuses of the function API's records in the entry format (internal/entry), which gives them a
// format version, a checksum, the load time and the lifetimes; the body is the encoded value, or the
// message of a kept failure.
const (
	entryValue    = http.StatusOK
	entryNotFound = http.StatusNotFound
	entryFailure  = http.StatusInternalServerError
)

// bytesRecords keeps records in a byte [Store], each value encoded with codec inside an entry.
type bytesRecords[V any] struct {
	store  Store
	codec  Codec
	batch  BatchStore  // nil when the store reads one key per call
	fenced FencedStore // the store's fenced writes; nil when it has none
	bad    func(error)
}

func (b *bytesRecords[V]) encode(rec *record[V]) ([]byte, error) {
	e := entry.Entry{
		Status: entryValue, StoredAt: rec.storedAt, Lifetime: rec.ttl,
		StaleWhileRevalidate: rec.swr, StaleIfError: rec.sie, ComputeTime: rec.compute,
	}
	if rec.err != nil {
		ce := cachedError(rec.err)
		e.Status, e.Body = entryFailure, []byte(ce.Msg)
		if ce.NotFound {
			e.Status = entryNotFound
		}
		return entry.Encode(&e), nil
	}
	body, err := b.codec.Marshal(rec.val)
	if err != nil {
		return nil, err
	}
	e.Body = body
	return entry.Encode(&e), nil
}

func (b *bytesRecords[V]) decode(raw []byte) (record[V], bool) {
	var rec record[V]
	v, err := entry.Parse(raw)
	if err != nil {
		b.bad(err)
		return rec, false
	}
	rec.storedAt, rec.ttl, rec.compute = v.StoredAt, v.Lifetime, v.ComputeTime
	rec.swr, rec.sie = v.StaleWhileRevalidate, v.StaleIfError
	switch v.Status {
	case entryValue:
		if err := b.codec.Unmarshal(v.Body, &rec.val); err != nil {
			b.bad(err)
			return record[V]{}, false
		}
	case entryNotFound:
		rec.err = &CachedError{Msg: string(v.Body), NotFound: true}
	case entryFailure:
		rec.err = &CachedError{Msg: string(v.Body)}
	default:
		b.bad(fmt.Errorf("stampede: stored entry has status %d: not a loader's value", v.Status))
		return record[V]{}, false
	}
	return rec, true
}

func (b *bytesRecords[V]) get(ctx context.Context, key string) (record[V], bool, error) {
	raw, found, err := b.store.Get(ctx, key)
	if err != nil || !found {
		return record[V]{}, false, err
	}
	rec, ok := b.decode(raw)
	return rec, ok, nil
}

func (b *bytesRecords[V]) getMany(ctx context.Context, keys []string, recs []record[V], found []bool) error {
	if b.batch == nil {
		var errs []error
		for i, k := range keys {
			var err error
			recs[i], found[i], err = b.get(ctx, k)
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	raws, err := b.batch.BatchGet(ctx, keys)
	for i, raw := range raws {
		if i < len(keys) && raw != nil {
			recs[i], found[i] = b.decode(raw)
		}
	}
	return err
}

func (b *bytesRecords[V]) set(ctx context.Context, key string, rec *record[V], ttl time.Duration, lead storecall.Lead) (bool, error) {
	raw, err := b.encode(rec)
	if err != nil {
		b.bad(fmt.Errorf("stampede: value not stored: %w", err))
		return false, nil
	}
	if b.fenced != nil {
		if lead.Token == "" {
			return false, nil // no ticket: a write that could not be fenced is not made
		}
		return b.fenced.SetFenced(ctx, lead.Key, lead.Token, key, raw, ttl, nil)
	}
	return true, b.store.SetEx(ctx, key, raw, ttl)
}

func (b *bytesRecords[V]) del(ctx context.Context, key string) error {
	if b.fenced != nil {
		return b.fenced.Invalidate(ctx, key)
	}
	return b.store.Delete(ctx, key)
}

// valueRecords keeps records as Go values, unencoded, in a [ValueStore] of any (backends/memstore's
// Values): a hit is a map look-up and a type assertion.
type valueRecords[V any] struct {
	store ValueStore[any]
	bad   func(error)
}

func (s *valueRecords[V]) get(ctx context.Context, key string) (record[V], bool, error) {
	x, found, err := s.store.Get(ctx, key)
	if err != nil || !found {
		return record[V]{}, false, err
	}
	p, ok := x.(*record[V])
	if !ok {
		s.bad(fmt.Errorf("stampede: value store holds a %T under the key, not this loader's value", x))
		return record[V]{}, false, nil
	}
	return *p, true, nil
}

func (s *valueRecords[V]) getMany(ctx context.Context, keys []string, recs []record[V], found []bool) error {
	var errs []error
	for i, k := range keys {
		var err error
		recs[i], found[i], err = s.get(ctx, k)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *valueRecords[V]) set(ctx context.Context, key string, rec *record[V], ttl time.Duration, _ storecall.Lead) (bool, error) {
	kept := *rec // the store keeps a pointer: it must never change
	if kept.err != nil {
		kept.err = cachedError(kept.err)
	}
	return true, s.store.SetEx(ctx, key, &kept, ttl)
}

func (s *valueRecords[V]) del(ctx context.Context, key string) error { return s.store.Delete(ctx, key) }

// plainRecords keeps bare values in a [ValueStore] of V, as go-chi/stampede's Do does with a
// goware/cachestore2 store: no metadata, so a value is fresh for as long as the store keeps it (its TTL),
// and failures are never kept.
type plainRecords[V any] struct {
	store ValueStore[V]
	batch ValueBatchStore[V] // nil when the store has no BatchGet
}

func (s *plainRecords[V]) get(ctx context.Context, key string) (record[V], bool, error) {
	v, found, err := s.store.Get(ctx, key)
	if err != nil || !found {
		return record[V]{}, false, err
	}
	return record[V]{val: v}, true, nil
}

func (s *plainRecords[V]) getMany(ctx context.Context, keys []string, recs []record[V], found []bool) error {
	if s.batch == nil {
		var errs []error
		for i, k := range keys {
			var err error
			recs[i], found[i], err = s.get(ctx, k)
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	vals, ok, err := s.batch.BatchGet(ctx, keys)
	if err != nil {
		return err
	}
	for i := range keys {
		if i < len(vals) && i < len(ok) && ok[i] {
			recs[i], found[i] = record[V]{val: vals[i]}, true
		}
	}
	return nil
}

func (s *plainRecords[V]) set(ctx context.Context, key string, rec *record[V], _ time.Duration, _ storecall.Lead) (bool, error) {
	if rec.err != nil || rec.ttl <= 0 {
		return false, nil
	}
	return true, s.store.SetEx(ctx, key, rec.val, rec.ttl)
}

func (s *plainRecords[V]) del(ctx context.Context, key string) error { return s.store.Delete(ctx, key) }

// DefaultLocalTTL caps how long a [Loader] with both [WithValues] and [WithStore] keeps a value in its
// in-process tier: the longest a replica may serve a value another replica replaced (with
// [Loader.Set]) in the shared store. Invalidations announced by the shared store
// (backends/redisstore) drop local copies at once.
const DefaultLocalTTL = 5 * time.Second

// tieredRecords puts a tier of Go values in this process (L1) in front of an encoded store (L2), as
// backends/tieredstore does for bytes: a hit in L1 costs no decoding. L1 holds fresh records only, for
// at most maxAge, so stale serving and the fleet read L2.
type tieredRecords[V any] struct {
	l1     *valueRecords[V]
	l2     *bytesRecords[V]
	maxAge time.Duration
	clock  func() time.Time
	// fills orders the L1 copies that reads make with deletions: a read notes its shard's generation
	// before it reads L2 and fills L1 only if no deletion in the shard came in between, so a value read
	// before a deletion never lands in L1 after it.
	fills [fillShards]struct {
		mu  sync.Mutex
		gen uint64 // guarded by mu
	}
}

// fillShards is how many generations tieredRecords keeps: a deletion only stops concurrent fills of
// keys in its shard.
const fillShards = 64

func (t *tieredRecords[V]) fillShard(key string) *struct {
	mu  sync.Mutex
	gen uint64
} {
	return &t.fills[maphash.String(fillSeed, key)%fillShards]
}

var fillSeed = maphash.MakeSeed()

func (t *tieredRecords[V]) l1TTL(rec *record[V]) time.Duration {
	return min(t.maxAge, rec.storedAt.Add(rec.ttl).Sub(t.clock()))
}

// generation returns key's fill generation, to be passed to fillAt after reading L2.
func (t *tieredRecords[V]) generation(key string) uint64 {
	sh := t.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.gen
}

// fillAt copies rec, read from L2 when key's fill generation was gen, into L1 unless a deletion came
// since.
func (t *tieredRecords[V]) fillAt(ctx context.Context, key string, rec *record[V], gen uint64) {
	sh := t.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen == gen {
		t.fill(ctx, key, rec)
	}
}

// wroteAt records a write of rec to L2, begun at key's fill generation gen: it copies rec into L1 when
// nothing else in the shard changed L2 meanwhile, drops key's L1 copy otherwise (it may be older than
// what L2 holds), and stops the copies of reads in progress (they may be older than rec).
func (t *tieredRecords[V]) wroteAt(ctx context.Context, key string, rec *record[V], gen uint64) {
	sh := t.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen == gen {
		t.fill(ctx, key, rec)
	} else {
		_ = t.l1.del(ctx, key)
	}
	sh.gen++
}

func (t *tieredRecords[V]) fill(ctx context.Context, key string, rec *record[V]) {
	if ttl := t.l1TTL(rec); ttl > 0 {
		_, _ = t.l1.set(ctx, key, rec, ttl, storecall.Lead{})
	}
}

// dropL1 removes key's L1 copy and stops the fills of reads in flight.
func (t *tieredRecords[V]) dropL1(ctx context.Context, key string) error {
	sh := t.fillShard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	return t.l1.del(ctx, key)
}

func (t *tieredRecords[V]) get(ctx context.Context, key string) (record[V], bool, error) {
	if rec, found, err := t.l1.get(ctx, key); err == nil && found && rec.state(t.clock) == recFresh {
		return rec, true, nil
	}
	gen := t.generation(key)
	rec, found, err := t.l2.get(ctx, key)
	if found {
		t.fillAt(ctx, key, &rec, gen)
	}
	return rec, found, err
}

func (t *tieredRecords[V]) getMany(ctx context.Context, keys []string, recs []record[V], found []bool) error {
	var missing []string
	var at []int
	for i, k := range keys {
		if rec, ok, err := t.l1.get(ctx, k); err == nil && ok && rec.state(t.clock) == recFresh {
			recs[i], found[i] = rec, true
			continue
		}
		missing, at = append(missing, k), append(at, i)
	}
	if len(missing) == 0 {
		return nil
	}
	gens := make([]uint64, len(missing))
	for j, k := range missing {
		gens[j] = t.generation(k)
	}
	r2, f2 := make([]record[V], len(missing)), make([]bool, len(missing))
	err := t.l2.getMany(ctx, missing, r2, f2)
	for j, i := range at {
		if f2[j] {
			recs[i], found[i] = r2[j], true
			t.fillAt(ctx, keys[i], &r2[j], gens[j])
		}
	}
	return err
}

func (t *tieredRecords[V]) set(ctx context.Context, key string, rec *record[V], ttl time.Duration, lead storecall.Lead) (bool, error) {
	gen := t.generation(key)
	stored, err := t.l2.set(ctx, key, rec, ttl, lead)
	if err == nil && stored {
		t.wroteAt(ctx, key, rec, gen)
	} else {
		_ = t.dropL1(ctx, key) // no replica may serve from L1 what the shared tier does not hold
	}
	return stored, err
}

func (t *tieredRecords[V]) del(ctx context.Context, key string) error {
	// L1 before and after L2: a read that filled L1 from L2 just before the deletion reached L2 does not
	// outlive it.
	err := errors.Join(t.dropL1(ctx, key), t.l2.del(ctx, key))
	return errors.Join(err, t.dropL1(ctx, key))
}
