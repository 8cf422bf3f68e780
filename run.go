package stampede

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// result is what one run of the handler produced, as the waiting requests and the store see it.
type result struct {
	unshareable string // why nobody else may have it; "" when shareable
	status      int
	header      http.Header
	body        []byte
	vary        []entry.VaryField
	age         string // Age for a result replayed from a stored entry; "" for a fresh response
	stale       bool   // the stored entry served instead of a failed refresh (stale-if-error)
	cacheStatus string // Cache-Status parameters for the requests that waited on the run

	// What persist writes: the entry (nil when not storable) at storeKey, and the Vary index at
	// indexKey when the response varies.
	encoded  []byte
	storeKey key
	ttl      time.Duration
	index    []byte
	indexKey key
}

// fallback is a stored entry a run may replace its own response with: when the handler says 304 to the
// validators sent on its behalf (revalidation), or, within stale-if-error, when it fails.
type fallback struct {
	view    entry.View
	onError bool // inside the stale-if-error window
}

// runOpts says how a run is led.
type runOpts struct {
	k, primary key
	anonAuth   bool
	admitted   bool // the doorkeeper lets the response be stored
	background bool // a refresh nobody waits on (stale-while-revalidate, early refresh)
	stale      *fallback
}

// lead runs the handler for f on this goroutine, with a context detached from this client so that the
// client leaving does not cancel the run the others wait on, and bounded by the compute timeout.
func (c *Cache) lead(f *flight[*result], next http.Handler, w http.ResponseWriter, r *http.Request, o runOpts) {
	persist := c.persist
	if c.fleet != nil && !o.background {
		lease, served := c.fleetLead(f, w, r, o)
		if served {
			return // another replica ran the handler; its stored response was replayed
		}
		if lease != nil {
			persist = c.persistFleet(lease)
			defer c.fleetAbandon(lease) // the handler panicked or called Goexit: nothing stored
		}
	}
	if o.background {
		c.stats.refreshes.Add(1)
		c.logDecision(r.Context(), o.k.s, "REFRESH", "")
	} else {
		c.stats.misses.Add(1)
		c.logDecision(r.Context(), o.k.s, "MISS", "")
	}
	start := c.cfg.clock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.computeTimeout)
	defer cancel()
	run := r.WithContext(ctx)
	head := r.Method == http.MethodHead
	if head {
		run.Method = http.MethodGet // fill the GET entry; the recorder keeps the body from this client
	}
	if o.stale != nil || hasPreconditions(r) || r.Header["If-Match"] != nil || r.Header["If-Unmodified-Since"] != nil ||
		r.Header["If-Range"] != nil {
		// The run answers everyone, so it must not be conditional on one client's validators; when a
		// stored entry exists, it is conditional on that entry's validators instead (revalidation).
		run.Header = r.Header.Clone()
		for _, name := range [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"} {
			delete(run.Header, name)
		}
		if o.stale != nil {
			if etag, ok := o.stale.view.HeaderValue("Etag"); ok {
				run.Header.Set("If-None-Match", string(etag))
			}
			if lm, ok := o.stale.view.HeaderValue("Last-Modified"); ok {
				run.Header.Set("If-Modified-Since", string(lm))
			}
		}
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
		c.pass.add(o.k, c.cfg.clock())
		f.publish(&result{unshareable: reason}, nil)
		if r.Context().Err() != nil {
			cancel()
		}
	})
	rec.deferred = o.stale != nil
	rec.onHeader = func(code int, h http.Header) { c.setCacheStatus(h, c.missStatus(code, h, o)) }

	began, finished, failed := time.Now(), false, false
	defer func() { c.stats.ran(time.Since(began), rec.status, finished && !failed) }() // also when it panics
	res := c.flights.run(f, func() (res *result) {
		if o.stale != nil && o.stale.onError {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler { //nolint:errorlint // compared with == by net/http
						panic(p)
					}
					c.logger.Error("stampede: handler panicked; serving the stale entry (stale-if-error)",
						"cache", c.cfg.name, "panic", p)
					failed = true
					res = c.staleResult(o.stale, http.StatusInternalServerError, start)
				}
			}()
		}
		next.ServeHTTP(rec, run)
		return c.result(rec, r, o, start)
	}, persist)
	finished = true
	if res.unshareable != "" {
		c.pass.add(o.k, c.cfg.clock())
		c.stats.unshareable[reasonIndex(res.unshareable)].Add(1)
	}
	if rec.deferred && !rec.committed {
		// Nothing went to the leading client yet: it gets what everyone else gets.
		restoreHeader(w.Header(), rec.before)
		switch {
		case res.unshareable != "" || res.header == nil:
			rec.commit() // the handler's own response, as it wrote it
		case res.stale:
			c.stats.staleHits.Add(1)
			c.replayResult(w, r, res, "HIT", res.cacheStatus)
		default:
			c.replayResult(w, r, res, "MISS", strings.TrimSuffix(res.cacheStatus, "; collapsed")+storedParam(res))
		}
	}
}

// storedParam is "; stored" for a result that is being stored, the Cache-Status parameter saying so.
func storedParam(res *result) string {
	if res.encoded != nil {
		return "; stored"
	}
	return ""
}

// restoreHeader makes h what it was before the handler ran (a deferred response is replaced).
func restoreHeader(h, before http.Header) {
	clear(h)
	for k, v := range before {
		h[k] = v
	}
}

// missStatus is the Cache-Status of the leading request, decided when its status is written: whether the
// response will be stored is known from its status and headers then (a body that later overflows the
// limit is not stored after all).
func (c *Cache) missStatus(code int, h http.Header, o runOpts) string {
	fwd := "fwd=uri-miss"
	if o.stale != nil {
		fwd = "fwd=stale; fwd-status=" + strconv.Itoa(code)
	}
	if c.store == nil || !o.admitted || c.ttlFor(code) <= 0 {
		return fwd
	}
	cc := parseCacheControl(h["Cache-Control"])
	if cc.private || cc.noStore || h["Set-Cookie"] != nil || (o.anonAuth && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate) {
		return fwd + "; detail=" + reasonPrivate
	}
	return fwd + "; stored"
}

// result classifies what the handler wrote (SPEC §4) and, when it is storable, encodes it.
func (c *Cache) result(rec *recorder, r *http.Request, o runOpts, start time.Time) *result {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK) // what net/http sends for a handler that wrote nothing
	}
	if rec.unshareable != "" {
		return &result{unshareable: rec.unshareable}
	}
	if o.stale != nil {
		switch {
		case rec.status == http.StatusNotModified:
			return c.revalidated(o, rec.header, start)
		case rec.status >= 500 && o.stale.onError:
			return c.staleResult(o.stale, rec.status, start)
		}
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
	case o.anonAuth && !cc.public && cc.sMaxAge < 0 && !cc.mustRevalidate:
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
	res := &result{status: rec.status, header: h, body: body, cacheStatus: "fwd=uri-miss; collapsed"}
	if o.stale != nil {
		res.cacheStatus = "fwd=stale; fwd-status=" + strconv.Itoa(rec.status) + "; collapsed"
	}
	for _, name := range names {
		res.vary = append(res.vary, entry.VaryField{Name: name, Value: varyValue(r.Header, name)})
	}
	if c.store == nil || !o.admitted || c.breaker.isOpen.Load() {
		return res // nothing will be stored: do not encode
	}
	fr := c.freshnessFor(rec.status, cc)
	if fr.storeTTL() <= 0 {
		return res
	}
	c.encode(res, o, fr, cc, names, r.Header, start)
	return res
}

// encode fills in what persist writes for a storable result.
func (c *Cache) encode(res *result, o runOpts, fr freshness, cc cacheControl, names []string, reqHeader http.Header, start time.Time) {
	var flags entry.Flags
	if cc.public || cc.sMaxAge >= 0 || cc.mustRevalidate {
		flags |= entry.FlagAuthShareable
	}
	if fr.noCache {
		flags |= entry.FlagNoCache
	}
	now := c.cfg.clock()
	res.ttl = fr.storeTTL()
	res.storeKey = o.k
	if len(names) > 0 {
		res.storeKey = variantKeyFor(o.primary, names, reqHeader)
		res.indexKey = o.primary
		res.index = encodeIndex(names, now, res.ttl)
	}
	res.encoded = entry.Encode(&entry.Entry{
		Status: res.status, Header: res.header, Body: res.body, StoredAt: now, TTL: fr.ttl,
		StaleWhileRevalidate: fr.swr, StaleIfError: fr.sie, ComputeTime: now.Sub(start), Flags: flags, Vary: res.vary,
	})
}

// revalidated is the result of a revalidation the handler answered 304: the stored response, with the
// headers the 304 updated (RFC 9111 §4.3.4), fresh again and stored again.
func (c *Cache) revalidated(o runOpts, updated http.Header, start time.Time) *result {
	old, err := entry.Decode(o.stale.view.Raw())
	if err != nil {
		return &result{unshareable: reasonRevalidate}
	}
	for name, values := range updated {
		if name != "Content-Length" {
			old.Header[name] = values
		}
	}
	res := &result{status: old.Status, header: old.Header, body: old.Body, vary: old.Vary, age: "0",
		cacheStatus: "fwd=stale; fwd-status=304; collapsed"}
	if c.store != nil {
		cc := parseCacheControl(old.Header["Cache-Control"])
		if fr := c.freshnessFor(old.Status, cc); fr.storeTTL() > 0 {
			names := make([]string, len(old.Vary))
			reqHeader := http.Header{}
			for i, f := range old.Vary {
				names[i] = f.Name
				reqHeader[f.Name] = []string{f.Value}
			}
			c.encode(res, o, fr, cc, names, reqHeader, start)
		}
	}
	return res
}

// staleResult serves the stored entry instead of a failed refresh (stale-if-error, RFC 5861 §4).
func (c *Cache) staleResult(s *fallback, status int, start time.Time) *result {
	e, err := entry.Decode(s.view.Raw())
	if err != nil {
		return &result{unshareable: reasonRevalidate}
	}
	now := c.cfg.clock()
	return &result{status: e.Status, header: e.Header, body: e.Body, vary: e.Vary, stale: true,
		age:         strconv.FormatInt(int64(now.Sub(e.StoredAt)/time.Second), 10),
		cacheStatus: "fwd=stale; fwd-status=" + strconv.Itoa(status) + "; detail=stale-if-error"}
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

// persist is the coalescer's persist step: the store writes for a storable result (the variant, then its
// index), run in the background before the flight is forgotten (SPEC §5.2).
func (c *Cache) persist(res *result) func() {
	if c.store == nil || res == nil || res.encoded == nil || c.breaker.isOpen.Load() {
		return nil // nothing to write, or the breaker skips the store (look-ups probe it, not writes)
	}
	return func() {
		defer func() {
			if p := recover(); p != nil { // a store that panics must not take the process down
				c.stats.setErrors.Add(1)
				c.logger.Error("stampede: store panicked on write", "cache", c.cfg.name, "panic", p)
			}
		}()
		if c.write(res.storeKey, res.encoded, res.ttl) && (res.index == nil || c.write(res.indexKey, res.index, res.ttl)) {
			c.indexTags(res)
		}
	}
}

// write stores one value through the breaker, reporting whether it was stored.
func (c *Cache) write(k key, value []byte, ttl time.Duration) bool {
	ok, probe := c.breaker.allow(c.cfg.clock())
	if !ok {
		return false
	}
	ctx, cancel := c.storeCtx(context.Background())
	defer cancel()
	err := c.store.SetEx(ctx, k.s, value, ttl)
	c.breaker.done(c.cfg.clock(), probe, err)
	if err != nil {
		c.stats.setErrors.Add(1)
		c.logger.Debug("stampede: store write failed", "cache", c.cfg.name, "error", err)
		return false
	}
	return true
}

// refresh starts a background run for k unless one is in flight: the stale (or nearly expired) entry is
// served meanwhile. Only GET and HEAD refresh in the background, since their requests carry no body
// that could be gone once the client's request is over.
func (c *Cache) refresh(next http.Handler, r *http.Request, o runOpts) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return
	}
	f, leader := c.flights.acquireSoft(o.k)
	if !leader {
		return
	}
	bg := r.Clone(context.WithoutCancel(r.Context()))
	bg.Body = http.NoBody
	o.background = true
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		defer func() {
			if p := recover(); p != nil && !errors.Is(asErr(p), http.ErrAbortHandler) {
				c.logger.Error("stampede: background refresh panicked", "cache", c.cfg.name, "panic", p)
			}
		}()
		c.lead(f, next, discardWriter{header: http.Header{}}, bg, o)
	}()
}

func asErr(p any) error {
	err, _ := p.(error)
	return err
}

// discardWriter is the ResponseWriter of a background refresh: nobody reads its response.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}
