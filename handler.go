package stampede

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"

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
	reasonRevalidate = "revalidate-failed"
)

// maxAttempts bounds how often one request looks in the store again because a run for its key finished
// while it looked.
const maxAttempts = 4

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
	now := c.cfg.clock()
	if c.pass.has(k, now) {
		c.bypass(next, w, r, k.s, reasonPass)
		return
	}
	o := runOpts{k: k, primary: k, anonAuth: anonAuth, admitted: c.door == nil || c.door.use(k, now)}
	skipStore := c.store == nil || (c.cfg.honorRequestCC && requestRevalidates(r.Header))
	for attempt := 0; ; attempt++ {
		if attempt == maxAttempts {
			c.bypass(next, w, r, o.k.s, reasonContention) // runs for this key keep finishing unstored; stop waiting
			return
		}
		if f := c.flights.lookup(o.k); f != nil && !f.soft {
			c.join(f, next, w, r)
			return
		}
		epoch := c.flights.epoch(o.k.shard)
		o.stale = nil
		if skipStore {
			epoch = noEpoch
		} else {
			v, found, variant := c.lookup(r, o.k, anonAuth, now)
			switch found {
			case lookupSkipped:
				epoch = noEpoch
			case lookupVariant:
				o.k = variant // the response varies: look for this request's variant
				continue
			case lookupEntry:
				switch entryState(&v, now) {
				case stateFresh:
					c.stats.hits.Add(1)
					c.logDecision(r.Context(), o.k.s, "HIT", "")
					c.replayStored(w, r, &v, now, xCacheHit, statusHit)
					if xfetch(&v, now, c.cfg.xfetchBeta) {
						c.refresh(next, r, o)
					}
					return
				case stateStaleSWR:
					if r.Method == http.MethodGet || r.Method == http.MethodHead {
						c.stats.staleHits.Add(1)
						c.logDecision(r.Context(), o.k.s, "HIT", "stale-while-revalidate")
						c.replayStored(w, r, &v, now, xCacheHit, "hit; detail=stale-while-revalidate")
						c.refresh(next, r, o)
						return
					}
					o.stale = &fallback{view: v, onError: true}
				default: // stale-if-error window, or an entry that must be revalidated (no-cache)
					o.stale = &fallback{view: v, onError: v.Flags&entry.FlagNoCache == 0 || now.Sub(v.StoredAt) < v.StaleIfError}
				}
			}
		}
		f, leader, retry := c.flights.acquire(o.k, epoch)
		switch {
		case retry:
			continue // a run for this key may have stored its response since we looked: look again
		case !leader:
			c.join(f, next, w, r)
		default:
			c.lead(f, next, w, r, o)
		}
		return
	}
}

// requestRevalidates reports whether the request asks not to be served from the cache without
// revalidation (Cache-Control: no-cache or max-age=0), which only WithHonorRequestCacheControl heeds.
func requestRevalidates(h http.Header) bool {
	if h["Cache-Control"] == nil {
		return false
	}
	cc := parseCacheControl(h["Cache-Control"])
	return cc.noCache || cc.maxAge == 0
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
	h := w.Header()
	h["X-Cache"] = []string{"BYPASS"}
	switch reason {
	case reasonMethod:
		c.setCacheStatus(h, "fwd=method")
	case reasonNoStoreReq:
		c.setCacheStatus(h, "fwd=request")
	default:
		c.setCacheStatus(h, "fwd=bypass; detail="+reason)
	}
	next.ServeHTTP(w, r)
}

// storeCtx returns the context for a store call made for parent.
func (c *Cache) storeCtx(parent context.Context) (context.Context, context.CancelFunc) {
	if c.selfBounded {
		return parent, func() {}
	}
	return context.WithTimeout(parent, c.cfg.storeTimeout)
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
	c.replayResult(w, r, res, "COALESCED", res.cacheStatus)
}
