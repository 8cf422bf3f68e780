package stampede

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// verdictKind is what a run's response is for, decided once, when the handler writes its header.
type verdictKind uint8

const (
	// verdictShare: the response is recorded and streamed to every client, and stored when store says
	// so and the body completes.
	verdictShare verdictKind = iota
	// verdictPass: the response reaches the leading client only; the requests waiting on the run run
	// the handler themselves, and the key goes hit-for-pass.
	verdictPass
	// verdictReplace: a stored response answers instead of the handler's: the 304 of a revalidation
	// merged into the stored entry, or the stale entry when the handler failed (stale-if-error).
	verdictReplace
)

// verdict is the one decision made about a run's response. It drives everything after the header:
// Cache-Status, whether the requests waiting on the run get it, and whether it is stored.
type verdict struct {
	kind   verdictKind
	reason string // verdictPass: why the response is kept from others

	// verdictShare: what the recording's head says.
	head entry.Entry
	// store: the response is written to the store once whole, under storeKey for storeTTL (and, for a
	// varying response, the index at indexKey with generation).
	store      bool
	storeTTL   time.Duration
	storeKey   key
	indexKey   key
	generation []byte
	names      []string // the Vary names, for the index

	// verdictReplace: the response that answers instead, and, when it is to be stored (a revalidated
	// entry), its sealed bytes.
	replace *recording
	sealed  []byte

	// lead and waiters say how the leading client and the requests collapsed onto the run are sent it.
	lead, waiters delivery
}

// Cache-Status parameters a run's clients get (RFC 9211 §2).
const (
	fwdMiss      = "fwd=uri-miss"
	fwdVaryMiss  = "fwd=vary-miss"
	fwdRequest   = "fwd=request"
	fwdStale     = "fwd=stale"
	collapsedArg = "; collapsed"
)

// Values of X-Cache, shared by every response that carries them: header slices are never modified in
// place by net/http, and a capacity of one makes an append copy them.
var (
	xCacheHit       = []string{"HIT"}
	xCacheMiss      = []string{"MISS"}
	xCacheCoalesced = []string{"COALESCED"}
	xCacheBypass    = []string{"BYPASS"}
)

// decide classifies the handler's response when it writes its header: status, and own, the header
// fields the handler set itself (canonical names). It applies the rules of internal/httpcache once, and
// the rest of the run follows what it says. It fills v, which is the recorder's own (verdicts are large:
// filling one in place keeps them off the stack of the handler's goroutine, which every miss grows).
func (l *leader) decide(v *verdict, status int, own http.Header) {
	c := l.c
	now := c.cfg.clock()
	if s := l.o.stale; s != nil {
		switch {
		case status == http.StatusNotModified && l.conditional:
			l.revalidated(v, own, now)
			return
		case (status >= 500 || l.o.background && refreshFailed(status)) && s.onError:
			l.staleOnError(v, status)
			return
		}
	}
	fwd := l.fwd
	if l.o.stale != nil {
		fwd += "; fwd-status=" + strconv.Itoa(status)
	}
	d, targeted := httpcache.ResponseDirectives(own, c.cfg.targets)
	reason := string(httpcache.Share(status, own, &d, l.o.anonAuth))
	switch {
	case reason != "":
	case isEventStream(own):
		reason = reasonEventStream
	case declaresTrailers(own):
		// Declared trailers are part of the response, and no shared copy carries them (§6.2): the
		// response is its own client's, framed by net/http as without the cache.
		reason = reasonTrailers
	case declaredLength(own) > c.cfg.maxBodyBytes:
		reason = reasonTooLarge
	}
	if reason != "" {
		params := fwd + "; detail=" + reason
		*v = verdict{kind: verdictPass, reason: reason}
		v.lead.xcache, v.lead.params, v.lead.leader = xCacheMiss, params, true
		return
	}

	header := c.cfg.recordedHeader(own)
	fr := c.freshnessOf(status, own, &d, targeted, l.start, now)
	names, _ := httpcache.VaryNames(own)
	// Field by field, not one composite literal, so that no verdict-sized temporary is built on the stack.
	*v = verdict{kind: verdictShare}
	h := &v.head
	h.Status, h.Header, h.StoredAt, h.Lifetime, h.InitialAge = status, header, now, fr.lifetime, fr.initialAge
	h.StaleWhileRevalidate, h.StaleIfError, h.Keep, h.Flags = fr.swr, fr.sie, fr.keep, fr.flags
	v.lead.xcache, v.lead.params, v.lead.leader = xCacheMiss, fwd, true
	v.waiters.xcache, v.waiters.params = xCacheCoalesced, fwd+collapsedArg
	for _, name := range names {
		v.head.Vary = append(v.head.Vary, entry.VaryField{Name: name, Value: httpcache.VaryValue(l.r.Header, name)})
	}
	// A run for a stored entry (a background refresh, or a request that found it too stale) that failed
	// keeps that entry: its response is shared with the requests waiting on it, never stored over the
	// entry. Failed is an error status (refreshFailed), or, for a background refresh, a header only after
	// the compute timeout (such as the empty 200 of a handler that returned when its context ended).
	// The run's context says so before the expiry callback has run.
	late := l.expired.Load() || errors.Is(l.run.Context().Err(), context.DeadlineExceeded)
	keep := l.o.stale == nil || !refreshFailed(status) && !(l.o.background && late)
	v.store = keep && c.store != nil && l.o.admitted && fr.storeTTL > 0 && !c.calls.Breaker().Open()
	if v.store {
		v.storeTTL = fr.storeTTL
		v.storeKey = l.o.k
		if len(names) > 0 {
			v.names = names
			v.indexKey = l.o.primary
			v.generation = l.o.generation(names)
			v.storeKey = variantKeyFor(l.o.primary, v.generation, names, l.r.Header)
		}
	}
}

// revalidated is the verdict on a 304 answering the conditional request a run sent on behalf of a
// stored entry: the entry, with the fields the 304 updates (RFC 9111 §3.2, §4.3.4), fresh again and
// stored again. A 304 that is private or sets a cookie updates nothing shared: it is merged for the
// leading client only.
func (l *leader) revalidated(v *verdict, own http.Header, now time.Time) {
	c := l.c
	s := l.o.stale
	stored := make(http.Header, 16)
	s.view.CopyHeader(stored)
	lead := delivery{xcache: xCacheMiss, params: fwdStale + "; fwd-status=304", leader: true}
	waiters := delivery{xcache: xCacheCoalesced, params: fwdStale + "; fwd-status=304" + collapsedArg}

	d304, _ := httpcache.ResponseDirectives(own, c.cfg.targets)
	if reason := httpcache.Share(http.StatusOK, own, &d304, l.o.anonAuth); reason != httpcache.OK {
		merged := httpcache.Freshen(stored, own)
		rec := c.entryRecording(&entry.Entry{Status: s.view.Status, Header: merged, Body: s.view.Body, StoredAt: now,
			Flags: s.view.Flags})
		lead.params += "; detail=" + string(reason)
		*v = verdict{kind: verdictReplace, reason: string(reason), replace: rec, lead: lead}
		return
	}
	merged := httpcache.Freshen(stored, c.cfg.recordedHeader(own))
	d, targeted := httpcache.ResponseDirectives(merged, c.cfg.targets)
	fr := c.freshnessOf(s.view.Status, merged, &d, targeted, l.start, now)
	fr.initialAge = httpcache.InitialAge(own, l.start, now) // the 304's own Date and Age, not the old ones
	e := &entry.Entry{Status: s.view.Status, Header: merged, Body: s.view.Body, StoredAt: now, Lifetime: fr.lifetime,
		InitialAge: fr.initialAge, StaleWhileRevalidate: fr.swr, StaleIfError: fr.sie, Keep: fr.keep, Flags: fr.flags,
		ComputeTime: s.view.ComputeTime}
	s.view.EachVary(func(name, value []byte) bool {
		e.Vary = append(e.Vary, entry.VaryField{Name: string(name), Value: string(value)})
		return true
	})
	sealed := entry.Encode(e)
	view, err := entry.Parse(sealed)
	if err != nil { // cannot happen: Encode's output parses
		*v = verdict{kind: verdictPass, reason: reasonRevalidate, lead: lead}
		return
	}
	*v = verdict{kind: verdictReplace, head: *e, replace: newCompleteRecording(view), lead: lead, waiters: waiters}
	v.store = c.store != nil && l.o.admitted && fr.storeTTL > 0 && !c.calls.Breaker().Open() &&
		httpcache.Share(s.view.Status, merged, &d, l.o.anonAuth) == httpcache.OK
	if v.store {
		v.sealed, v.storeTTL, v.storeKey = sealed, fr.storeTTL, l.o.k
	}
}

// refreshOf is the runOpts of a background refresh of the stored entry v (of age age), started by a
// request whose own options are o: the run revalidates v (its validators are sent), and v is what a
// failure of the run falls back on (within v's stale-if-error window), so a refresh that fails never
// replaces it.
func refreshOf(o runOpts, v *entry.View, age time.Duration) runOpts {
	o.stale = &fallback{view: *v, onError: age < v.Lifetime+v.StaleIfError}
	return o
}

// refreshFailed reports whether a run for a stored entry that answered status failed: a 5xx, or a 4xx
// that is not one of the heuristically cacheable statuses (404, 405, 410, 414), such as the 400 or 431
// an oversized or malformed header of the request that started the run provokes. The stored entry is
// kept then; a 404 or 410 does replace it, since the resource is gone.
func refreshFailed(status int) bool {
	return status >= 500 || status >= 400 && !httpcache.HeuristicallyCacheable(status)
}

// staleOnError is the verdict when the handler answered status 5xx for an entry that may be served
// stale on error (RFC 5861 §4): the stale entry answers everyone, and nothing is stored.
func (l *leader) staleOnError(v *verdict, status int) {
	params := fwdStale + "; fwd-status=" + strconv.Itoa(status) + "; detail=stale-if-error"
	now := l.c.cfg.clock()
	d := delivery{xcache: xCacheHit, params: params, fromStore: true, now: now}
	lead := d
	lead.leader = true
	*v = verdict{kind: verdictReplace, replace: newCompleteRecording(l.o.stale.view), lead: lead, waiters: d}
}

// entryRecording encodes e and returns a complete recording of it.
func (c *Cache) entryRecording(e *entry.Entry) *recording {
	v, _ := entry.Parse(entry.Encode(e))
	return newCompleteRecording(v)
}

// freshness is how long a response may be used, decided once when it is recorded.
type freshness struct {
	lifetime   time.Duration // RFC 9111 §4.2.1 (or the heuristic of §4.2.2)
	initialAge time.Duration // RFC 9111 §4.2.3
	swr, sie   time.Duration // RFC 5861 windows past freshness
	keep       time.Duration // kept this long past freshness for revalidation (it has a validator)
	flags      entry.Flags
	storeTTL   time.Duration // how long the store keeps it: freshness left plus the longest window
}

// freshnessOf decides the freshness of a response with status, header h and effective directives d,
// requested at reqTime and received at respTime.
//
// The lifetime is explicit when the response gives one (s-maxage, max-age, Expires - Date; an invalid
// one means already stale) and heuristic otherwise: the status's WithHTTPStatusTTL, or the handler TTL
// for the statuses RFC 9110 §15.1 calls heuristically cacheable and for responses marked public.
// WithMaxAgePolicy can make the explicit lifetime only shorten that, or be ignored. Once stale, a
// response that says must-revalidate, proxy-revalidate or no-cache gets none of the configured stale
// windows; its own stale-if-error still counts (RFC 5861 §4: "regardless of other freshness
// information"), its own stale-while-revalidate does not (the most restrictive directive wins, RFC 9111
// §4.2.1).
func (c *Cache) freshnessOf(status int, h http.Header, d *httpcache.Directives, targeted bool, reqTime, respTime time.Time) freshness {
	var f freshness
	heuristic := c.heuristicLifetime(status, d.Public)
	explicit := httpcache.ExplicitLifetime(d, h, respTime, targeted)
	switch {
	case c.cfg.maxAgePolicy == MaxAgeIgnore || !explicit.Explicit:
		f.lifetime = heuristic
	case c.cfg.maxAgePolicy == MaxAgeCap:
		f.lifetime = min(explicit.D, c.capLifetime(status))
	default:
		f.lifetime = explicit.D
	}
	f.initialAge = httpcache.InitialAge(h, reqTime, respTime)
	own := c.cfg.maxAgePolicy != MaxAgeIgnore
	revalidate := d.Revalidate()
	// Stale windows and WithKeep extend only a response that is storable on its own: one with a
	// lifetime above zero, or one whose status the handler TTL would store (heuristic > 0) that says it
	// is stale at once (max-age=0, stale-while-revalidate=60). A 400 or 500 the handler TTL would not
	// store is never kept stale (else one request that makes the origin fail, say with an oversized
	// header, would have every client served that error within the window).
	alone := f.lifetime > 0 || explicit.Explicit && heuristic > 0
	if alone && !revalidate {
		f.swr, f.sie = c.cfg.staleWhileRevalidate, c.cfg.staleIfError
		if own && d.StaleWhileRevalidate.Set() {
			f.swr = time.Duration(d.StaleWhileRevalidate.Seconds) * time.Second
		}
	}
	if alone && own && d.StaleIfError.Set() {
		f.sie = time.Duration(d.StaleIfError.Seconds) * time.Second
	}
	validator := h["Etag"] != nil || h["Last-Modified"] != nil
	if alone && validator {
		f.keep = c.cfg.keep
	}
	if httpcache.AuthShareable(d) {
		f.flags |= entry.FlagAuthShareable
	}
	if d.NoCache {
		f.flags |= entry.FlagNoCache
	}
	if revalidate {
		f.flags |= entry.FlagRevalidate
	}
	left := f.lifetime - f.initialAge
	if d.NoCache && !validator {
		left = 0 // every use is a full fetch: only a stale-if-error window makes it worth keeping
	}
	f.storeTTL = max(left, 0) + max(f.swr, f.sie, f.keep)
	return f
}

// heuristicLifetime is the lifetime of a response without explicit freshness (RFC 9111 §4.2.2): the
// WithHTTPStatusTTL of its status when that option is given, else the handler TTL for the heuristically
// cacheable statuses and public responses, else zero.
func (c *Cache) heuristicLifetime(status int, public bool) time.Duration {
	if c.cfg.statusTTL != nil {
		return max(0, c.cfg.statusTTL(status))
	}
	if httpcache.HeuristicallyCacheable(status) || public {
		return c.cfg.ttl
	}
	return 0
}

// capLifetime is the longest lifetime MaxAgeCap lets an explicit one reach: the handler TTL, or the
// status's WithHTTPStatusTTL.
func (c *Cache) capLifetime(status int) time.Duration {
	if c.cfg.statusTTL != nil {
		return max(0, c.cfg.statusTTL(status))
	}
	return c.cfg.ttl
}

// isEventStream reports a Server-Sent Events response: an endless stream for one client, which waiters
// get their own of instead of a share of the leader's.
func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct[0])), "text/event-stream")
}

// declaredLength returns the response's Content-Length, or -1 when it has none that parses.
func declaredLength(h http.Header) int64 {
	cl := h["Content-Length"]
	if len(cl) == 0 {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(cl[0]), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// declaresTrailers reports whether a response's header announces trailers: a Trailer field, or a
// "Trailer:"-prefixed name already set when the header is written (net/http then frames the response
// for trailers, chunked, however short it is).
func declaresTrailers(h http.Header) bool {
	if h["Trailer"] != nil {
		return true
	}
	for name := range h {
		if strings.HasPrefix(name, http.TrailerPrefix) {
			return true
		}
	}
	return false
}
