package stampede

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// Reasons a request passes through or a response is not shared. They appear in logs and stats.
const (
	reasonMethod     = "method"
	reasonUpgrade    = "upgrade"
	reasonNoStoreReq = "request-no-store"
	reasonBodyLimit  = "key-body-too-large"
	reasonBodyError  = "key-body-error"
	reasonKeyError   = "key-error"
	reasonPass       = "hit-for-pass"
	reasonGoexit     = "goexit"
	reasonVary       = "vary-mismatch"
	reasonPrivate    = "private"
	reasonNoStore    = "no-store"
	reasonSetCookie  = "set-cookie"
	reasonVaryStar   = "vary-star"
	reasonAuth       = "authorization"
	reasonFlushed    = "flushed"
	reasonHijacked   = "hijacked"
	reasonTooLarge   = "too-large"
	reasonContention = "contention"
)

// maxAttempts bounds how often one request looks in the store again because a run for its key finished
// while it looked.
const maxAttempts = 4

// result is what one run of the handler produced, as the waiting requests and the store see it.
type result struct {
	unshareable string // why nobody else may have it; "" when shareable
	status      int
	header      http.Header
	body        []byte
	vary        []entry.VaryField
	encoded     []byte // the stored form; nil when the response is not storable
	ttl         time.Duration
}

// serve is the whole request flow: pass through, or key the request, then hit, join, or lead a run.
func (c *Cache) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	c.stats.requests.Add(1)
	if reason := c.passesThrough(r); reason != "" {
		c.bypass(next, w, r, "", reason)
		return
	}
	k, anonAuth, reason := c.key(r)
	if reason != "" {
		c.bypass(next, w, r, "", reason)
		return
	}
	now := time.Now()
	if c.pass.has(k, now) {
		c.bypass(next, w, r, k.s, reasonPass)
		return
	}
	for attempt := 0; ; attempt++ {
		if attempt == maxAttempts {
			c.bypass(next, w, r, k.s, reasonContention) // runs for this key keep finishing unstored; stop waiting
			return
		}
		if f := c.flights.lookup(k); f != nil {
			c.join(f, next, w, r)
			return
		}
		epoch := c.flights.epoch(k.shard)
		if c.store != nil && c.serveStored(w, r, k, anonAuth, now) {
			return
		}
		f, leader, retry := c.flights.acquire(k, epoch)
		switch {
		case retry:
			continue // a run for this key may have stored its response since we looked: look again
		case !leader:
			c.join(f, next, w, r)
		default:
			c.lead(f, next, w, r, k, anonAuth, now)
		}
		return
	}
}

// passesThrough returns why r is not coalesced at all, or "".
func (c *Cache) passesThrough(r *http.Request) string {
	if !c.cfg.methods[r.Method] {
		return reasonMethod
	}
	if r.Header["Upgrade"] != nil {
		return reasonUpgrade
	}
	if r.Header["Cache-Control"] != nil && requestNoStore(r.Header) {
		return reasonNoStoreReq
	}
	return ""
}

// key computes r's key; a non-empty reason means r must pass through instead.
func (c *Cache) key(r *http.Request) (k key, anonAuth bool, reason string) {
	var digest []byte
	if c.cfg.keyBody || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		d, reason := c.readKeyBody(r)
		if reason != "" {
			return k, false, reason
		}
		digest = d[:]
	}
	var fromFunc string
	if c.cfg.keyFunc != nil {
		s, err := c.cfg.keyFunc(r)
		if err != nil {
			c.logger.Warn("stampede: key function failed, request not cached", "cache", c.cfg.name, "error", err)
			return k, false, reasonKeyError
		}
		fromFunc = s
	}
	anonAuth = !c.keys.authKeyed && r.Header["Authorization"] != nil
	return c.keys.build(r, digest, fromFunc, anonAuth), anonAuth, ""
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
	r.Body = &replayBody{Reader: bytes.NewReader(buf), Closer: orig}
	return sha256.Sum256(buf), ""
}

type replayBody struct {
	io.Reader
	io.Closer
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// bypass hands r to the handler untouched but for the X-Cache: BYPASS marker. storeKey is r's key, or ""
// when r passes before it is keyed.
func (c *Cache) bypass(next http.Handler, w http.ResponseWriter, r *http.Request, storeKey, reason string) {
	c.stats.pass(reason)
	c.logDecision(r.Context(), storeKey, "BYPASS", reason)
	w.Header()["X-Cache"] = []string{"BYPASS"}
	next.ServeHTTP(w, r)
}

// storeCtx returns the context for a store call made for parent.
func (c *Cache) storeCtx(parent context.Context) (context.Context, context.CancelFunc) {
	if c.selfBounded {
		return parent, func() {}
	}
	return context.WithTimeout(parent, c.cfg.storeTimeout)
}

// serveStored replays a fresh stored response for k, reporting whether it did. Anything unusable in the
// store (error, corrupt or foreign bytes, expired, wrong Vary) is a miss.
func (c *Cache) serveStored(w http.ResponseWriter, r *http.Request, k key, anonAuth bool, now time.Time) bool {
	ok, probe := c.breaker.allow(now)
	if !ok {
		return false
	}
	ctx, cancel := c.storeCtx(r.Context())
	b, found, err := c.store.Get(ctx, k.s)
	cancel()
	if err != nil && r.Context().Err() != nil {
		c.breaker.abandon(probe) // the client left; that says nothing about the store's health
		return false
	}
	c.breaker.done(time.Now(), probe, err)
	if err != nil {
		c.stats.getErrors.Add(1)
	}
	if err != nil || !found {
		return false
	}
	v, err := entry.Parse(b)
	if err != nil {
		c.logger.Warn("stampede: unusable stored entry, treated as a miss and removed",
			"cache", c.cfg.name, "error", err)
		ctx, cancel := c.storeCtx(r.Context())
		_ = c.store.Delete(ctx, k.s)
		cancel()
		return false
	}
	if !now.Before(v.StoredAt.Add(v.TTL)) ||
		(anonAuth && v.Flags&entry.FlagAuthShareable == 0) ||
		(v.HasVary() && !viewVaryMatches(r.Header, &v)) {
		return false
	}
	c.stats.hits.Add(1)
	c.logDecision(r.Context(), k.s, "HIT", "")
	h := w.Header()
	v.CopyHeader(h)
	h["X-Cache"] = xCacheHit
	w.WriteHeader(v.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(v.Body)
	}
	return true
}

// join waits for f and replays its result, or runs the handler itself when the result cannot be shared.
func (c *Cache) join(f *flight[*result], next http.Handler, w http.ResponseWriter, r *http.Request) {
	if c.onJoin != nil {
		c.onJoin()
	}
	res, err := f.wait(r.Context())
	switch {
	case err == nil:
	case err == http.ErrAbortHandler: //nolint:errorlint // net/http and recoverers compare with ==
		panic(http.ErrAbortHandler)
	case errors.Is(err, errGoexit):
		c.bypass(next, w, r, f.key, reasonGoexit)
		return
	case r.Context().Err() != nil:
		c.stats.abandoned.Add(1)
		return // this request's client left or timed out; the run goes on for the others
	default:
		panic(err) // *PanicError
	}
	if res.unshareable != "" {
		c.bypass(next, w, r, f.key, res.unshareable)
		return
	}
	if len(res.vary) > 0 && !varyMatches(r.Header, res.vary) {
		c.bypass(next, w, r, f.key, reasonVary)
		return
	}
	c.stats.coalesced.Add(1)
	c.logDecision(r.Context(), f.key, "COALESCED", "")
	h := w.Header()
	for name, values := range res.header {
		h[name] = slices.Clone(values) // each response gets its own slices: outer code may edit them
	}
	h["X-Cache"] = []string{"COALESCED"}
	w.WriteHeader(res.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(res.body)
	}
}

// lead runs the handler for f on this goroutine, with a context detached from this client so that the
// client leaving does not cancel the run the others wait on, and bounded by the compute timeout.
func (c *Cache) lead(f *flight[*result], next http.Handler, w http.ResponseWriter, r *http.Request, k key, anonAuth bool, start time.Time) {
	c.stats.misses.Add(1)
	c.logDecision(r.Context(), k.s, "MISS", "")
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.computeTimeout)
	defer cancel()
	run := r.WithContext(ctx)
	head := r.Method == http.MethodHead
	if head {
		run.Method = http.MethodGet // fill the GET entry; the recorder keeps the body from this client
	}
	// Once the response is known to be unshareable nobody else depends on the run, so the leading
	// client's cancellation applies to it again (an SSE handler stops when its client leaves).
	var released atomic.Bool
	stop := context.AfterFunc(r.Context(), func() {
		if released.Load() {
			cancel()
		}
	})
	defer stop()
	rec := newRecorder(w, &c.cfg, head, func(reason string) {
		released.Store(true)
		c.pass.add(k, time.Now())
		f.publish(&result{unshareable: reason}, nil)
		if r.Context().Err() != nil {
			cancel()
		}
	})
	began, finished := time.Now(), false
	defer func() { c.stats.ran(time.Since(began), rec.status, finished) }() // also when it panics
	res := c.flights.run(f, func() *result {
		next.ServeHTTP(rec, run)
		return c.result(rec, r, anonAuth, start)
	}, c.persister(k))
	finished = true
	if res.unshareable != "" {
		c.pass.add(k, time.Now())
		c.stats.unshareable[reasonIndex(res.unshareable)].Add(1)
	}
}

// result classifies what the handler wrote (SPEC §4) and, when it is storable, encodes it.
func (c *Cache) result(rec *recorder, r *http.Request, anonAuth bool, start time.Time) *result {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK) // what net/http sends for a handler that wrote nothing
	}
	if rec.unshareable != "" {
		return &result{unshareable: rec.unshareable}
	}
	h := rec.header
	cc := parseCacheControl(h["Cache-Control"])
	names, star := varyNames(h)
	reason := ""
	switch {
	case cc.private:
		reason = reasonPrivate
	case cc.noStore:
		reason = reasonNoStore
	case star:
		reason = reasonVaryStar
	case anonAuth && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate:
		reason = reasonAuth
	}
	if reason != "" {
		return &result{unshareable: reason}
	}
	body := rec.body.Bytes()
	if _, ok := h["Content-Type"]; !ok && len(body) > 0 && h["Transfer-Encoding"] == nil {
		// net/http sniffs the type at the first write; record what it decided so replays match.
		h["Content-Type"] = []string{http.DetectContentType(body)}
	}
	res := &result{status: rec.status, header: h, body: body}
	for _, name := range names {
		res.vary = append(res.vary, entry.VaryField{Name: name, Value: varyValue(r.Header, name)})
	}
	if c.store == nil {
		return res
	}
	res.ttl = c.ttlFor(rec.status)
	if res.ttl <= 0 {
		return res
	}
	var flags entry.Flags
	if cc.public || cc.sMaxAge >= 0 || cc.mustRevalidate {
		flags |= entry.FlagAuthShareable
	}
	if cc.noCache {
		flags |= entry.FlagNoCache
	}
	now := time.Now()
	res.encoded = entry.Encode(&entry.Entry{
		Status: rec.status, Header: h, Body: body, StoredAt: now, TTL: res.ttl,
		ComputeTime: now.Sub(start), Flags: flags, Vary: res.vary,
	})
	return res
}

// heuristicallyCacheable are the statuses RFC 9110 §15.1 lets a cache store without explicit freshness.
var heuristicallyCacheable = map[int]bool{
	200: true, 203: true, 204: true, 300: true, 301: true, 308: true,
	404: true, 405: true, 410: true, 414: true, 501: true,
}

// ttlFor returns how long a response with status may be stored; zero or less means not at all.
func (c *Cache) ttlFor(status int) time.Duration {
	if c.cfg.statusTTL != nil {
		return c.cfg.statusTTL(status)
	}
	if heuristicallyCacheable[status] {
		return c.cfg.ttl
	}
	return 0
}

// persister returns the coalescer's persist step for k: the store write for a storable result, run in
// the background before the flight is forgotten (SPEC §5.2).
func (c *Cache) persister(k key) func(*result) func() {
	if c.store == nil {
		return nil
	}
	return func(res *result) func() {
		if res == nil || res.encoded == nil {
			return nil
		}
		return func() {
			defer func() {
				if p := recover(); p != nil { // a store that panics must not take the process down
					c.stats.setErrors.Add(1)
					c.logger.Error("stampede: store panicked on write", "cache", c.cfg.name, "panic", p)
				}
			}()
			now := time.Now()
			ok, probe := c.breaker.allow(now)
			if !ok {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.storeTimeout)
			defer cancel()
			err := c.store.SetEx(ctx, k.s, res.encoded, res.ttl)
			c.breaker.done(time.Now(), probe, err)
			if err != nil {
				c.stats.setErrors.Add(1)
				c.logger.Debug("stampede: store write failed", "cache", c.cfg.name, "error", err)
			}
		}
	}
}
