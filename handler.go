package stampede

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// Reasons a request passes through or a response is not shared. They appear in logs and stats.
const (
	reasonMethod      = "method"
	reasonUpgrade     = "upgrade"
	reasonNoStoreReq  = "request-no-store"
	reasonBodyLimit   = "key-body-too-large"
	reasonBodyError   = "key-body-error"
	reasonKeyError    = "key-error"
	reasonPass        = "hit-for-pass"
	reasonGoexit      = "goexit"
	reasonVary        = "vary-mismatch"
	reasonPrivate     = "private"
	reasonNoStore     = "no-store"
	reasonSetCookie   = "set-cookie"
	reasonVaryStar    = "vary-star"
	reasonAuth        = "authorization"
	reasonEventStream = "event-stream"
	reasonTrailers    = "trailers"
	reasonHijacked    = "hijacked"
	reasonTooLarge    = "too-large"
	reasonIncomplete  = "incomplete"
	reasonPartial     = "partial"
	reasonStatus      = "status"
	reasonContention  = "contention"
	reasonRevalidate  = "revalidate-failed"
	reasonTimeout     = "compute-timeout"
)

// maxAttempts bounds how often one request looks in the store again because a run for its key finished
// while it looked (or its response turned out to vary). maxUnknownRetries bounds how often it looks
// again because it could not tell (acquire's retryUnknown: its look-ups are so slow that more runs
// finished in its shard than the coalescer remembers); then it leads or joins without an epoch, which
// runs the handler no more often than passing through would, and stores and coalesces.
const (
	maxAttempts       = 4
	maxUnknownRetries = 4
)

// serve serves r, observed when it has observers or logs at debug level (see [WithObserver]).
func (c *Cache) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if c.observed(r) {
		c.serveObserved(next, w, r)
		return
	}
	c.serveRequest(next, w, r)
}

// serveRequest is the whole request flow: pass through, or key the request, then hit, join, or lead a
// run.
func (c *Cache) serveRequest(next http.Handler, w http.ResponseWriter, r *http.Request) {
	c.stats.requests.Add(1)
	if outer := nestedIn(r); outer != nil {
		c.passNested(outer, next, w, r)
		return
	}
	if reason := c.passesThrough(r); reason != "" {
		c.bypass(next, w, r, "", reason)
		return
	}
	k, anonAuth, reason := c.key(r)
	if reason != "" {
		c.bypass(next, w, r, "", reason)
		return
	}
	now := c.cfg.clock()
	if c.pass.has(k, now) {
		c.bypass(next, w, r, k.s, reasonPass)
		return
	}
	var req *httpcache.Directives
	if c.cfg.honorRequestCC {
		req = requestDirectives(r.Header)
	}
	o := runOpts{k: k, primary: k, anonAuth: anonAuth, admitted: c.door == nil || c.door.use(k, now)}
	for attempt, unknown := 0, 0; ; attempt++ {
		if attempt == maxAttempts {
			c.bypass(next, w, r, o.k.s, reasonContention) // runs for this key keep finishing unstored; stop waiting
			return
		}
		if f := c.flights.Lookup(o.k.s, o.k.id); f != nil && !f.Soft() {
			c.join(f, next, w, r, o)
			return
		}
		if o.k.s == o.primary.s || o.index == nil {
			// The epoch is read before the URL's key is: a variant's look-up keeps the epoch of the index
			// it followed (the same shard), so that an invalidation of the URL after the index was read
			// sends the request back to the start rather than to a variant of a purged index.
			o.epoch = c.flights.Epoch(o.k.id)
		}
		epoch := o.epoch
		o.stale = nil
		if c.store == nil || o.storeFailed {
			// No store, or it did not answer this request's look-up: a request pays one store timeout
			// at most, so it does not look again however often it is sent back to the start.
			epoch = flight.NoEpoch
		} else {
			switch c.consultStore(next, w, r, &o, anonAuth, now, req) {
			case stepServed:
				return
			case stepNoEpoch:
				epoch = flight.NoEpoch
			case stepVariant:
				continue // the response varies: look for this request's variant
			}
		}
		if req != nil && req.OnlyIfCached {
			c.onlyIfCached(w, r, o.k.s) // RFC 9111 §5.2.1.7: nothing stored may answer
			return
		}
		if unknown == maxUnknownRetries {
			epoch = flight.NoEpoch
		}
		f, leader, retry := c.flights.Acquire(o.spec(), epoch)
		switch {
		case retry == flight.RetryKey:
			o.restart()
			continue // a run for this key may have stored its response since we looked: look again
		case retry == flight.RetryUnknown:
			unknown++
			attempt--
			o.restart()
			continue // a run for it may have finished, the coalescer cannot tell: look again
		case !leader:
			c.join(f, next, w, r, o)
		default:
			c.lead(f, next, w, r, o)
		}
		return
	}
}

// storeStep is what the store said about a request's key, for serve's loop.
type storeStep uint8

const (
	stepRun     storeStep = iota // nothing usable as it is: run (o.stale may hold an entry to revalidate)
	stepServed                   // r was answered from the store
	stepVariant                  // the response varies: o.k is now this request's variant key
	stepNoEpoch                  // the store was skipped: lead or join without an epoch
)

// consultStore looks o.k up in the store and serves r from what it holds when that may be used. It is
// a function of its own, never inlined, so that the stored entry's view lives on its frame only while
// it is consulted, not on serve's for the whole run the request then leads or waits on (that frame is
// on the stack of every waiting request).
//
//go:noinline
func (c *Cache) consultStore(next http.Handler, w http.ResponseWriter, r *http.Request, o *runOpts, anonAuth bool,
	now time.Time, req *httpcache.Directives) storeStep {
	v, found, variant, idx, slot := c.lookupSlot(r, o.k, anonAuth, now)
	switch found {
	case lookupSkipped:
		return stepNoEpoch
	case lookupFailed:
		o.storeFailed = true // the run makes no further store call before the handler: no ticket, no lease
	case lookupVariant:
		o.k, o.index = variant, idx
		return stepVariant
	case lookupEntry:
		if c.useStored(next, w, r, &v, slot, now, req, o) {
			return stepServed
		}
	}
	return stepRun
}

// useStored serves r from the stored entry v when it may be used as it is (fresh, or stale within
// stale-while-revalidate, or as the request's max-stale allows), and reports whether it did. Otherwise
// it records in o the entry the run that follows revalidates, or falls back to when it fails.
func (c *Cache) useStored(next http.Handler, w http.ResponseWriter, r *http.Request, v *entry.View, slot *viewSlot,
	now time.Time, req *httpcache.Directives, o *runOpts) bool {
	age, life := v.AgeAt(now.UnixNano()), v.Lifetime
	fresh := age < life && v.Flags&entry.FlagNoCache == 0
	use := httpcache.UseRevalidated
	if fresh {
		use = httpcache.UseAsIs
	}
	if req != nil {
		use = httpcache.RequestUse(req, age, life, v.Flags&entry.FlagRevalidate != 0)
		if use != httpcache.UseRevalidated && v.Flags&entry.FlagNoCache != 0 {
			use = httpcache.UseRevalidated
		}
		o.forced = fresh && use == httpcache.UseRevalidated
	}
	switch {
	case use == httpcache.UseAsIs:
		c.stats.hits.Add(1)
		c.logDecision(r.Context(), o.k.s, "HIT", "")
		c.replayEntry(w, r, v, delivery{xcache: xCacheHit, params: statusHit, fromStore: true, now: now, slot: slot})
		if xfetch(v.FreshUntil(), v.ComputeTime, now, c.cfg.xfetchBeta) {
			c.refresh(next, r, refreshOf(*o, v, age))
		}
		return true
	case use == httpcache.UseStale:
		c.stats.staleHits.Add(1)
		c.logDecision(r.Context(), o.k.s, "HIT", "max-stale")
		c.replayEntry(w, r, v, delivery{xcache: xCacheHit, params: statusHit + "; detail=max-stale", fromStore: true, now: now})
		return true
	case !fresh && !o.forced && v.Flags&entry.FlagNoCache == 0 && age < life+v.StaleWhileRevalidate &&
		(r.Method == http.MethodGet || r.Method == http.MethodHead):
		c.stats.staleHits.Add(1)
		c.logDecision(r.Context(), o.k.s, "HIT", "stale-while-revalidate")
		c.replayEntry(w, r, v, delivery{xcache: xCacheHit, params: statusHit + "; detail=stale-while-revalidate", fromStore: true, now: now})
		c.refresh(next, r, refreshOf(*o, v, age))
		return true
	}
	o.stale = &fallback{view: *v, onError: age < life+v.StaleIfError}
	return false
}

// requestDirectives returns the request's Cache-Control directives for WithHonorRequestCacheControl, or
// nil when it has none. Pragma: no-cache counts as Cache-Control: no-cache when there is no
// Cache-Control (RFC 9111 §5.4).
func requestDirectives(h http.Header) *httpcache.Directives {
	if cc := h["Cache-Control"]; cc != nil {
		d := httpcache.ParseCacheControl(cc)
		return &d
	}
	for _, p := range h["Pragma"] {
		if strings.Contains(strings.ToLower(p), "no-cache") {
			return &httpcache.Directives{NoCache: true}
		}
	}
	return nil
}

// onlyIfCached answers a request that said only-if-cached and that nothing stored can answer: 504
// Gateway Timeout (RFC 9111 §5.2.1.7).
func (c *Cache) onlyIfCached(w http.ResponseWriter, r *http.Request, storeKey string) {
	c.stats.pass(reasonOnlyIfCached)
	c.logDecision(r.Context(), storeKey, "BYPASS", reasonOnlyIfCached)
	h := w.Header()
	c.setXCache(h, xCacheBypass)
	c.setCacheStatus(h, "fwd=miss; detail="+reasonOnlyIfCached)
	w.WriteHeader(http.StatusGatewayTimeout)
}

// reasonOnlyIfCached is the pass reason of an only-if-cached request nothing stored could answer.
const reasonOnlyIfCached = "only-if-cached"

// passesThrough returns why r is not coalesced at all, or "".
func (c *Cache) passesThrough(r *http.Request) string {
	if !c.cfg.serves(r.Method) {
		return reasonMethod
	}
	if r.Header["Upgrade"] != nil {
		return reasonUpgrade
	}
	if cc := r.Header["Cache-Control"]; cc != nil && httpcache.ParseCacheControl(cc).NoStore {
		return reasonNoStoreReq
	}
	return ""
}

// key computes r's key; a non-empty reason means r must pass through instead.
func (c *Cache) key(r *http.Request) (k key, anonAuth bool, reason string) {
	digest, fromFunc, reason := c.keyParts(r)
	if reason != "" {
		return k, false, reason
	}
	anonAuth = !c.keys.authKeyed && r.Header["Authorization"] != nil
	return c.keys.build(r, digest, fromFunc, anonAuth), anonAuth, ""
}

// keyParts computes the parts of r's key material that take work: the digest of its body when the body
// is keyed, and the key function's result. A non-empty reason means r cannot be keyed.
func (c *Cache) keyParts(r *http.Request) (digest []byte, fromFunc, reason string) {
	if c.cfg.keyBody || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		d, reason := c.readKeyBody(r)
		if reason != "" {
			return nil, "", reason
		}
		digest = d[:]
	}
	if c.cfg.keyFunc != nil {
		s, err := c.cfg.keyFunc(r)
		if errors.Is(err, ErrNotCached) {
			return nil, "", reasonDeclined // the key function's quiet "not for the cache"
		}
		if err != nil {
			c.stats.logs.log(r.Context(), c.logger, logKeyFunc, slog.LevelWarn,
				"stampede: key function failed, request not cached", "cache", c.cfg.name, "error", err)
			return nil, "", reasonKeyError
		}
		fromFunc = s
		c.checkCredentialKey(r)
	}
	return digest, fromFunc, ""
}

// urlKeys returns the keys of r's URL in every key space r reaches, for an invalidation or a purge of
// the URL: without and with an Authorization the key does not include; or, when Authorization is keyed
// (a key header, a CredentialKeyFunc), r's own credential's and the public one (r without its
// Authorization, the key function run on that). A non-empty reason means r cannot be keyed.
func (c *Cache) urlKeys(r *http.Request) ([]key, string) {
	digest, fromFunc, reason := c.keyParts(r)
	if reason != "" {
		return nil, reason
	}
	keys := []key{c.keys.build(r, digest, fromFunc, false)}
	if !c.keys.authKeyed {
		return append(keys, c.keys.build(r, digest, fromFunc, true)), ""
	}
	if r.Header["Authorization"] == nil {
		return keys, ""
	}
	public := r.Clone(r.Context())
	delete(public.Header, "Authorization")
	if c.cfg.keyFunc != nil {
		s, err := c.cfg.keyFunc(public)
		if err != nil {
			return keys, "" // the public request cannot be keyed, so nothing is stored for it
		}
		fromFunc = s
	}
	return append(keys, c.keys.build(public, digest, fromFunc, false)), ""
}

// readKeyBody reads r's body up to the key-body limit and puts back a body that reads the same bytes.
func (c *Cache) readKeyBody(r *http.Request) (sum [sha256.Size]byte, reason string) {
	if r.Body == nil || r.Body == http.NoBody {
		return sha256.Sum256(nil), ""
	}
	orig := r.Body
	buf, err := io.ReadAll(io.LimitReader(orig, c.cfg.keyBodyLimit+1))
	switch {
	case err != nil:
		r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), errReader{err}), Closer: orig}
		return sum, reasonBodyError
	case int64(len(buf)) > c.cfg.keyBodyLimit:
		r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), orig), Closer: orig}
		return sum, reasonBodyLimit
	}
	r.Body = &replayBody{Reader: bytes.NewReader(buf), Closer: orig, keyed: buf, whole: true}
	return sha256.Sum256(buf), ""
}

// replayBody is the body a request keyed on its body is handed on with: the bytes read to key it, then
// what was left of the original.
type replayBody struct {
	io.Reader
	io.Closer
	keyed []byte // the bytes the key was computed from; never modified
	whole bool   // keyed is the whole body: a background refresh replays it (run.go)
}

// keyedBody returns the body r was keyed on, when it was keyed and read whole.
func keyedBody(r *http.Request) ([]byte, bool) {
	rb, ok := r.Body.(*replayBody)
	if !ok || !rb.whole {
		return nil, false
	}
	return rb.keyed, true
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// bypass hands r to the handler untouched but for the X-Cache: BYPASS marker. storeKey is r's key, or ""
// when r passes before it is keyed. A non-error response to an unsafe method invalidates what is stored
// for its URI (RFC 9111 §4.4).
func (c *Cache) bypass(next http.Handler, w http.ResponseWriter, r *http.Request, storeKey, reason string) {
	c.stats.pass(reason)
	c.logDecision(r.Context(), storeKey, "BYPASS", reason)
	h := w.Header()
	c.setXCache(h, xCacheBypass)
	switch reason {
	case reasonMethod:
		c.setCacheStatus(h, "fwd=method")
	case reasonNoStoreReq:
		c.setCacheStatus(h, "fwd=request")
	default:
		c.setCacheStatus(h, "fwd=bypass; detail="+reason)
	}
	if reason == reasonMethod && c.store != nil && !httpcache.Safe(r.Method) {
		c.serveUnsafe(next, w, r)
		return
	}
	next.ServeHTTP(w, r)
}

// join waits for f and replays its response, or runs the handler itself when the response cannot be
// shared with it.
func (c *Cache) join(f *flight.Flight[string, *outcome], next http.Handler, w http.ResponseWriter, r *http.Request, o runOpts) {
	if c.onJoin != nil {
		c.onJoin()
	}
	out, err := f.Wait(r.Context())
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		c.stats.abandoned.Add(1)
		return // this request's client left or timed out; the run goes on for the others
	default:
		c.waiterFallback(next, w, r, f.Key(), o, err)
		return
	}
	if out.pass != "" {
		c.bypass(next, w, r, f.Key(), out.pass)
		return
	}
	if out.rec.head.HasVary() && !viewVaryMatches(r.Header, &out.rec.head) {
		c.bypass(next, w, r, f.Key(), reasonVary)
		return
	}
	d := out.d
	if d.fromStore {
		d.now = c.cfg.clock()
	}
	sent, err := c.deliver(w, r, out.rec, d)
	switch {
	case !sent:
		c.waiterFallback(next, w, r, f.Key(), o, err)
	case err == nil:
		c.stats.coalesced.Add(1)
		c.logDecision(r.Context(), f.Key(), "COALESCED", "")
	case errors.Is(err, errClientGone):
		c.stats.abandoned.Add(1)
	default:
		// The response was cut short after part of it was sent: abort the connection, so this client
		// never takes it for whole (net/http logs nothing for this value).
		c.stats.failed.Add(1)
		panic(http.ErrAbortHandler)
	}
}

// waiterFallback serves a waiter whose run had nothing for it (err says why) and that was sent nothing.
func (c *Cache) waiterFallback(next http.Handler, w http.ResponseWriter, r *http.Request, storeKey string, o runOpts, err error) {
	var pe *flight.Panic
	switch {
	case err == http.ErrAbortHandler: //nolint:errorlint // net/http and recoverers compare with ==
		c.stats.failed.Add(1)
		panic(http.ErrAbortHandler)
	case errors.As(err, &pe):
		// The run panicked. Its panic is raised, with its stack, on the leading request; each waiter
		// answers 500 itself, so that one panic is logged once, not once per waiter.
		c.stats.failed.Add(1)
		c.logDecision(r.Context(), storeKey, "COALESCED", "panic")
		h := w.Header()
		c.setXCache(h, xCacheCoalesced)
		c.setCacheStatus(h, fwdMiss+collapsedArg+"; detail=panic")
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
	case errors.Is(err, flight.ErrExpired):
		c.afterTimeout(next, w, r, o)
	case errors.Is(err, flight.ErrGoexit):
		c.bypass(next, w, r, storeKey, reasonGoexit)
	case errors.Is(err, errClientGone):
		c.stats.abandoned.Add(1)
	case errors.Is(err, errTooLarge):
		c.bypass(next, w, r, storeKey, reasonTooLarge)
	case errors.Is(err, errHijacked):
		c.bypass(next, w, r, storeKey, reasonHijacked)
	default:
		c.bypass(next, w, r, storeKey, reasonIncomplete)
	}
}

// afterTimeout serves a request whose run passed the compute timeout before it had anything for it:
// the stale entry, when one may be served on error (the timeout is an error, as nginx's
// proxy_cache_lock_timeout treats it), or the handler, run for this request alone.
func (c *Cache) afterTimeout(next http.Handler, w http.ResponseWriter, r *http.Request, o runOpts) {
	now := c.cfg.clock()
	s := o.stale
	if s == nil && c.store != nil {
		s = c.staleFor(r, o, now)
	}
	if s != nil && s.onError {
		c.stats.staleHits.Add(1)
		c.logDecision(r.Context(), o.k.s, "HIT", reasonTimeout)
		c.replayEntry(w, r, &s.view, delivery{xcache: xCacheHit, params: fwdStale + "; detail=" + reasonTimeout, fromStore: true, now: now})
		return
	}
	c.bypass(next, w, r, o.k.s, reasonTimeout)
}

// staleFor looks in the store for an entry r could be served stale on error, following a Vary index.
func (c *Cache) staleFor(r *http.Request, o runOpts, now time.Time) *fallback {
	k := o.k
	for range 2 {
		v, found, variant, _ := c.lookup(r, k, o.anonAuth, now)
		switch found {
		case lookupVariant:
			k = variant
			continue
		case lookupEntry:
			age := v.Age(now)
			return &fallback{view: v, onError: age < v.Lifetime+v.StaleIfError}
		}
		return nil
	}
	return nil
}
