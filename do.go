package stampede

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultCacheTTL is how long [Stampede.Do] and a [Loader] keep a value when no [WithTTL] says
// otherwise, as in go-chi/stampede.
const DefaultCacheTTL = time.Minute

// Stampede is go-chi/stampede's function coalescer and cache: [Stampede.Do] runs a function once for
// every caller that asks for the same key while it runs, and keeps its value in a [ValueStore] for the
// TTL. Build it with [NewStampede]; it is safe for concurrent use. It is the same engine as a [Loader]
// (string keys, a function per call), so it has the same guarantees (behaviour contract §8); a store of
// plain values keeps no metadata, though, so stale serving, early refresh and kept failures need a
// Loader.
type Stampede[V any] struct {
	e      engine[string, V]
	prefix memoPrefix                  // the key material of every key: tagDo
	call   atomic.Pointer[callOpts[V]] // the defaults of a Do call; SetOptions replaces them
}

// NewStampede returns a Stampede that keeps values in store, go-chi/stampede's NewStampede. store is any
// goware/cachestore2 Store[V] (a cachestore2 Backend is a Store[any], so V is then any), or
// backends/memstore's Values; nil means coalesce only (a typed nil panics), as does WithSkipCache(true) or WithTTL(0).
// Values are kept for [DefaultCacheTTL] unless WithTTL says otherwise. Of the other options, those a
// [Loader] takes apply. A nil logger means slog.Default(). Invalid options panic here, with a message
// starting "stampede: ".
func NewStampede[V any](logger *slog.Logger, store ValueStore[V], opts ...Option) *Stampede[V] {
	cfg := defaultConfig()
	cfg.ttl = DefaultCacheTTL
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	cfg.validate()
	if cfg.name == "" {
		cfg.name = cfg.keyPrefix
	}
	s := &Stampede[V]{}
	var records recordStore[V]
	var sizer any
	if storeGiven("NewStampede", store) {
		plain := &plainRecords[V]{store: store}
		plain.batch, _ = store.(ValueBatchStore[V])
		records, sizer = plain, store
	}
	s.e.setup(cfg.name, "function", cfg, logger, records, sizer)
	if records != nil {
		s.e.plain = store
	}
	s.prefix = s.e.keys.memo.prefix([]byte{tagDo})
	s.e.skeyOf = func(k string) key { return s.e.keys.keyOfPrefixed(&s.prefix, k) }
	call := s.e.defaultCall()
	s.call.Store(&call)
	return s
}

// errNoFunc is what Do returns when it is given no function.
var errNoFunc = errors.New("stampede: Do needs a function")

// Do returns key's value: the stored one, or the value fn returns, fn running once for every caller
// that asks for key while it runs (go-chi/stampede's Do). A non-nil TTL returned by fn replaces the TTL
// for that value (zero or less: not stored); an error is returned to every caller waiting on that run
// and is never stored. opts (WithTTL, WithSkipCache) apply to this call only, on top of the
// Stampede's own options. A store error is a miss, never an error to the caller.
//
// fn runs on a goroutine of its own with no context of its own: a caller whose ctx ends stops waiting
// with ctx's error, and fn goes on for the others (a fn that passes the compute timeout releases its
// waiters with [ErrComputeTimeout]). A panic in fn makes the call that started it panic with the same
// value, and every other caller waiting on it return a [*PanicError].
func (s *Stampede[V]) Do(ctx context.Context, key string, fn func() (V, *time.Duration, error), opts ...Option) (V, error) {
	if fn == nil {
		var zero V
		return zero, errNoFunc
	}
	call := s.call.Load()
	if len(opts) == 0 && s.e.plain != nil && !call.skip {
		if ck := s.e.keys.memo.getPrefixed(&s.prefix, key); ck != nil {
			// The hit path of a memoised key: nothing copied, nothing built.
			r := ref[string]{k: key, hash: ck.id, sk: *ck, hasK: true}
			v, ok, missedAt, failed := s.e.hitPlain(ctx, &r)
			if ok {
				return v, nil
			}
			return s.miss(ctx, &r, call, fn, missedAt, failed)
		}
	}
	return s.slow(ctx, s.ref(key), call, fn, opts)
}

// ref returns the ref of key: its store key (memoised) gives its hash.
func (s *Stampede[V]) ref(key string) *ref[string] {
	ck := s.e.keys.keyOfPrefixed(&s.prefix, key)
	return &ref[string]{k: key, hash: ck.id, sk: ck, hasK: true}
}

// miss is Do after hitPlain found nothing at epoch missedAt (failed: the store did not answer).
func (s *Stampede[V]) miss(ctx context.Context, r *ref[string], call *callOpts[V], fn func() (V, *time.Duration, error), missedAt uint64, failed bool) (V, error) {
	co := *call
	co.fn, co.storeFailed = fn, failed
	return s.e.lookupOrLoad(ctx, r, co, missedAt)
}

// slow is Do with options of its own, or on a store that is not a plain one.
func (s *Stampede[V]) slow(ctx context.Context, r *ref[string], call *callOpts[V], fn func() (V, *time.Duration, error), opts []Option) (V, error) {
	co := *call
	if len(opts) > 0 {
		co = s.callWith(co, opts)
	}
	co.fn = fn
	return s.e.get(ctx, r, co)
}

// callWith returns the settings of a call with its own options.
func (s *Stampede[V]) callWith(co callOpts[V], opts []Option) callOpts[V] {
	cfg := config{ttl: co.ttl, skipCache: co.skip}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	co.ttl, co.skip = max(cfg.ttl, 0), cfg.skipCache
	return co
}

// SetOptions replaces the Stampede's TTL and SkipCache with o's (go-chi/stampede's SetOptions); the
// HTTP fields of o mean nothing here. A zero TTL means [DefaultCacheTTL], as in go-chi.
func (s *Stampede[V]) SetOptions(o *Options) {
	if o == nil {
		return
	}
	call := callOpts[V]{ttl: o.TTL, skip: o.SkipCache}
	if call.ttl <= 0 {
		call.ttl = DefaultCacheTTL
	}
	s.call.Store(&call)
}

// Invalidate removes what is stored for keys, so the next Do for each runs its function again.
func (s *Stampede[V]) Invalidate(ctx context.Context, keys ...string) error {
	var errs []error
	for _, k := range keys {
		// s.ref, not the engine's: Do's flights are found by their store key's id (see Do).
		errs = append(errs, s.e.drop(ctx, s.ref(k)))
	}
	return errors.Join(errs...)
}

// Snapshot returns the Stampede's counters (see [Snapshot]; Kind is "function").
func (s *Stampede[V]) Snapshot() Snapshot { return s.e.snapshot() }

// Wait blocks until every function run and store write started so far has finished.
func (s *Stampede[V]) Wait() { s.e.wait() }

// Options is go-chi/stampede's Options: the settings its options set, as a struct. [WithOptions] turns
// one into an [Option]; [Stampede.SetOptions] takes one.
type Options struct {
	// TTL is how long values and responses are kept; zero means the TTL given to [Handler] or [New],
	// or [DefaultCacheTTL] for the function API.
	TTL time.Duration
	// SkipCache: coalesce only, store nothing.
	SkipCache bool
	// HTTPCacheKeyRequestBody adds a digest of the request body to the key of every request.
	HTTPCacheKeyRequestBody bool
	// HTTPCacheKeyRequestHeaders are request headers whose values are part of the key.
	HTTPCacheKeyRequestHeaders []string
	// HTTPStatusTTL decides the TTL from the response status (see [WithHTTPStatusTTL]).
	HTTPStatusTTL func(status int) time.Duration
}

// WithOptions applies o's non-zero fields as the options of the same names would.
func WithOptions(o Options) Option {
	return func(c *config) {
		if o.TTL != 0 {
			WithTTL(o.TTL)(c)
		}
		if o.SkipCache {
			WithSkipCache(true)(c)
		}
		if o.HTTPCacheKeyRequestBody {
			WithHTTPCacheKeyRequestBody(true)(c)
		}
		if o.HTTPCacheKeyRequestHeaders != nil {
			WithHTTPCacheKeyRequestHeaders(o.HTTPCacheKeyRequestHeaders)(c)
		}
		if o.HTTPStatusTTL != nil {
			WithHTTPStatusTTL(o.HTTPStatusTTL)(c)
		}
	}
}
