package stampede

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/storecall"
)

// outcome is what a run tells the requests waiting on it once its response header is decided.
type outcome struct {
	pass string     // non-empty: the response is not for them (the reason); they run the handler themselves
	rec  *recording // otherwise the response, streaming or whole
	d    delivery   // how they are sent it
}

// fallback is a stored entry a run may replace its own response with: when the handler says 304 to the
// validators sent on its behalf (revalidation), or, within stale-if-error, when it fails.
type fallback struct {
	view    entry.View
	onError bool // inside the stale-if-error window
}

// varyIndex is what a request's look-up found at the primary key of a response that varies: the Vary
// names and the generation its variants are keyed under.
type varyIndex struct {
	names      []string
	generation []byte
	until      time.Time // when the index expires
}

// runOpts says how a run is led.
type runOpts struct {
	k, primary key
	anonAuth   bool
	admitted   bool // the doorkeeper lets the response be stored
	background bool // a refresh nobody waits on (stale-while-revalidate, early refresh)
	forced     bool // the request's Cache-Control asked for it (WithHonorRequestCacheControl)
	// storeFailed: the store did not answer the request's look-up; it pays no second timeout (no
	// lease, no ticket: its response is not stored).
	storeFailed bool
	stale       *fallback
	index       *varyIndex
	epoch       uint64 // the flight group\'s epoch before the URL\'s key was looked up
}

// restart sends a request back to its URL's key: what it read of a varying response's index may be
// out of date.
func (o *runOpts) restart() { o.k, o.index = o.primary, nil }

// spec describes the flight of o.k: keyed by the store key, fenced by the URL's key, so that purging
// the URL reaches the runs of all its variants.
func (o *runOpts) spec() flight.Spec[string] {
	return flight.Spec[string]{Key: o.k.s, Hash: o.k.id, Fence: o.primary.s, HasFence: true}
}

// generation returns the generation a variant of a response varying on names is keyed under: the
// index's when one with the same names was found, a new random one otherwise.
func (o *runOpts) generation(names []string) []byte {
	if o.index != nil && slices.Equal(o.index.names, names) {
		return o.index.generation
	}
	g := make([]byte, generationLen)
	_, _ = crand.Read(g)
	return g
}

// generationLen is the length of a Vary index's random generation.
const generationLen = 16

// leader is one run of the handler, led by the request that found nothing usable in flight: it prepares
// the request the handler gets, runs it through a [recorder], decides once what the response is for,
// feeds the leading client from the recording like any other client, and persists the result.
type leader struct {
	c    *Cache
	f    *flight.Flight[string, *outcome]
	next http.Handler
	w    http.ResponseWriter // the leading client's writer
	r    *http.Request       // the leading request, as its client sent it; only its goroutine reads it
	// client is what the leading client's delivery reads: r with a copy of the fields that decide a
	// response's form (preconditions, Range), so it never races with the handler reading run.
	client *http.Request
	run    *http.Request // what the handler gets
	o      runOpts

	fwd         string    // the Cache-Status forward reason: why the handler runs
	conditional bool      // run carries validators of the stored entry (a revalidation)
	start       time.Time // the configured clock when the run began (RFC 9111's request_time)
	began       time.Time // the wall clock, for the handler-time statistics

	cancel     context.CancelFunc
	stopAfter  func() bool
	stopExpire func() bool
	released   atomic.Bool // nobody but the leading client depends on the run any more
	unbounded  atomic.Bool // the response outgrew the body limit and streams on: the compute timeout no longer applies
	expired    atomic.Bool // the run passed the compute timeout

	rw     *recorder
	out    *outcome                  // what was published; set on the handler's goroutine
	rec    atomic.Pointer[recording] // the published recording, for expire
	feeder chan struct{}             // closed once the leading client's delivery is done; nil when none
	// pending is the leading client's delivery while it has not started: it starts on a goroutine of
	// its own once the response streams (a second write, a flush), or on the leading request's goroutine
	// once the handler returned, which for most responses saves the goroutine.
	pending  *recording
	pendingD delivery
	// lead is what the run holds to write to a shared store: its fleet lease, or a ticket (see
	// [FencedStore]); writes is the ticket its writes use (the lease's, or one of the URL's key when the
	// lease is a variant's).
	lead, writes storecall.Lead
	handed       atomic.Bool // the run's persist work took charge of releasing the lease
	failed       bool        // the handler panicked and a stale entry answered // the handler panicked and a stale entry answered
	ended        bool        // the handler returned normally
	returned     bool        // load returned normally (the handler did, or a stale entry answered its panic)
}

// requestPreconditions are the request fields that make a response conditional or partial for one
// client; a run that answers everyone must not carry them.
var requestPreconditions = [...]string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

// lead runs the handler for f on this goroutine, with a context detached from this client so that the
// client leaving does not cancel the run the others wait on, and bounded by the compute timeout.
func (c *Cache) lead(f *flight.Flight[string, *outcome], next http.Handler, w http.ResponseWriter, r *http.Request, o runOpts) {
	ld, writes, served := c.leadStore(f, w, r, o)
	if served {
		return // another replica ran the handler; its stored response was replayed
	}
	if o.background {
		c.stats.refreshes.Add(1)
		c.logDecision(r.Context(), o.k.s, "REFRESH", "")
	} else {
		c.stats.misses.Add(1)
		c.logDecision(r.Context(), o.k.s, "MISS", "")
	}
	c.stats.running.Add(1) // until close counts the run
	l := c.newLeader(f, next, w, r, o)
	l.lead, l.writes = ld, writes
	defer l.close()
	c.flights.Run(f, l.load)
}

// leadStore is what a run does with a shared store before the handler runs: with fleet coalescing,
// the fleet step (served when another replica's stored response was replayed instead); then the ticket
// its writes will carry (see [FencedStore]), which must be taken before the handler computes anything.
// Without a store that fences writes, it holds nothing and writes are guarded in this process only.
func (c *Cache) leadStore(f *flight.Flight[string, *outcome], w http.ResponseWriter, r *http.Request, o runOpts) (ld, writes storecall.Lead, served bool) {
	if c.fenced == nil || o.storeFailed {
		return ld, writes, false
	}
	if c.fleet != nil && !o.background {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), c.cfg.fleetLease+c.cfg.storeTimeout)
		defer cancel()
		detached := r.WithContext(ctx)
		var res storecall.FleetResult
		ld, res = c.calls.Fleet(ctx, c.fleet, o.k.s, c.cfg.fleetLease, func(context.Context) storecall.ServeResult {
			return c.fleetServe(f, w, detached, o)
		})
		switch res {
		case storecall.FleetServed:
			return ld, writes, true
		case storecall.FleetPass:
			c.pass.add(o.k, c.cfg.clock())
		case storecall.FleetFailed:
			return ld, writes, false // no second store timeout: no ticket, so the run does not write
		}
		if ld.Leased && o.k.s == o.primary.s {
			return ld, ld, false // the lease is the URL's: its token is the ticket
		}
	}
	writes, _ = c.calls.Ticket(context.WithoutCancel(r.Context()), c.fenced, o.primary.s, c.ticketTTL())
	return ld, writes, false
}

// ticketTTL is how long a run's ticket stays valid: longer than any run may take to write.
func (c *Cache) ticketTTL() time.Duration {
	return c.cfg.computeTimeout + 4*c.cfg.storeTimeout
}

// newLeader prepares a run: the request the handler gets (GET for a HEAD, without the leading client's
// preconditions and Range, with the stored entry's validators when revalidating) and its context.
func (c *Cache) newLeader(f *flight.Flight[string, *outcome], next http.Handler, w http.ResponseWriter, r *http.Request, o runOpts) *leader {
	l := &leader{c: c, f: f, next: next, w: w, r: r, o: o, start: c.cfg.clock(), began: time.Now(), fwd: fwdMiss}
	switch {
	case o.stale != nil:
		l.fwd = fwdStale
	case o.forced:
		l.fwd = fwdRequest
	case o.index != nil:
		l.fwd = fwdVaryMiss
	}
	// The compute timeout bounds how long others wait on the run, not a response only the leading
	// client receives: the run's context has no deadline (as the bare handler's has none), and the
	// timer cancels it only while the run is shared.
	ctx, cancel := context.WithCancel(c.markRun(context.WithoutCancel(r.Context())))
	l.cancel = cancel
	run := r.WithContext(ctx)
	if r.Method == http.MethodHead {
		run.Method = http.MethodGet // fill the GET entry; the leading client still gets no body
	}
	needClone := o.stale != nil
	for _, name := range requestPreconditions {
		needClone = needClone || r.Header[name] != nil
	}
	client := r
	if needClone {
		run.Header = r.Header.Clone()
		subset := make(http.Header, len(requestPreconditions))
		for _, name := range requestPreconditions {
			if v := r.Header[name]; v != nil {
				subset[name] = v
			}
			delete(run.Header, name)
		}
		client = r.WithContext(r.Context())
		client.Header = subset
		if o.stale != nil {
			if etag, ok := o.stale.view.HeaderValue("Etag"); ok {
				run.Header["If-None-Match"] = []string{string(etag)}
				l.conditional = true
			}
			if lm, ok := o.stale.view.HeaderValue("Last-Modified"); ok {
				run.Header["If-Modified-Since"] = []string{string(lm)}
				l.conditional = true
			}
		}
	}
	l.run, l.client = run, client
	// Once the response is known to be the leading client's alone, nobody else depends on the run, so
	// that client's cancellation applies to it again (an SSE handler stops when its client leaves).
	l.stopAfter = context.AfterFunc(r.Context(), func() {
		if l.released.Load() {
			cancel()
		}
	})
	timer := time.AfterFunc(c.cfg.computeTimeout, func() {
		l.expire()
		if !l.released.Load() && !l.unbounded.Load() {
			cancel()
		}
	})
	l.stopExpire = timer.Stop
	return l
}

// load is the coalescer's load step: it runs the handler and returns what was published and the work
// that persists it. A panic aborts the recording (so clients mid-stream are cut off) and is re-raised,
// except that within stale-if-error a panic before the header serves the stale entry instead.
func (l *leader) load() (out *outcome, persist func()) {
	c := l.c
	l.rw = newRecorder(l, l.w, c.cfg.maxBodyBytes)
	if l.run.ProtoMajor == 1 && l.run.ContentLength != 0 && l.run.Body != nil && l.run.Body != http.NoBody {
		l.run.Body = &h1Body{ReadCloser: l.run.Body, rw: l.rw}
	}
	normal := false
	defer func() {
		if normal {
			return
		}
		p := recover()
		switch {
		case p == nil: // runtime.Goexit
			l.abort(flight.ErrGoexit)
		case p != http.ErrAbortHandler && l.out == nil && l.o.stale != nil && l.o.stale.onError: //nolint:errorlint // compared with ==
			c.stats.logs.log(l.r.Context(), c.logger, logStaleOnPanic, slog.LevelError,
				"stampede: handler panicked; serving the stale entry (stale-if-error)", "cache", c.cfg.name, "panic", p)
			l.failed = true
			l.staleOnError(&l.rw.v, http.StatusInternalServerError)
			l.rw.mode, l.rw.wroteHeader = modeDiscard, true
			l.publish(l.rw.v.replace, &l.rw.v)
			out, persist = l.out, l.persistWork(nil)
			l.returned = true
		default:
			l.abort(flight.PanicError(p))
			panic(p)
		}
	}()
	l.next.ServeHTTP(l.rw, l.run)
	normal = true
	l.ended = true
	buf := l.rw.finish()
	l.returned = true
	return l.out, l.persistWork(buf)
}

// publish makes rec the run's response: the waiting requests are released to it (unless v keeps it for
// the leading client), and the leading client starts being fed from it on a goroutine of its own, so
// the handler never waits for it.
func (l *leader) publish(rec *recording, v *verdict) {
	out := &outcome{rec: rec, d: v.waiters}
	if v.reason != "" {
		out = &outcome{pass: v.reason}
		l.released.Store(true)
		l.c.pass.add(l.o.k, l.c.cfg.clock())
		l.c.stats.unshareable[reasonIndex(v.reason)].Add(1)
	}
	l.out = out
	l.rec.Store(rec)
	if v.reason == "" && v.store {
		// The response's tags are known now: a PurgeTag from here on finds the run by them.
		tags, ok := responseTags(v.head.Header)
		if !ok {
			l.c.tagsUnindexable()
		}
		if !ok || !l.c.flights.Label(l.f, tags) {
			v.store = false
		}
	}
	l.f.Publish(out, nil)
	if l.expired.Load() {
		rec.expire()
	}
	if l.o.background {
		return
	}
	l.pending, l.pendingD = rec, v.lead
}

// streaming starts the leading client's delivery on a goroutine of its own, if it has not started: the
// handler goes on writing, and must never wait for that client.
func (l *leader) streaming() {
	rec := l.pending
	if rec == nil {
		return
	}
	l.pending = nil
	l.feeder = make(chan struct{})
	go func() {
		defer close(l.feeder)
		_, _ = l.c.deliver(l.w, l.client, rec, l.pendingD)
	}()
}

// pass publishes that the response is the leading client's alone (reason says why): the waiting requests
// run the handler themselves, and the key goes hit-for-pass.
func (l *leader) pass(reason string) {
	l.out = &outcome{pass: reason}
	l.f.Publish(l.out, nil)
	l.unshared(reason)
}

// unshared records that the response turned out not to be shareable after all: the key goes
// hit-for-pass, and the run is the leading client's alone from now on.
func (l *leader) unshared(reason string) {
	l.released.Store(true)
	if l.r.Context().Err() != nil {
		l.cancel()
	}
	l.c.pass.add(l.o.k, l.c.cfg.clock())
	l.c.stats.unshareable[reasonIndex(reason)].Add(1)
}

// abort ends the published recording early because of err (a panic, runtime.Goexit).
func (l *leader) abort(err error) {
	if rec := l.rec.Load(); rec != nil {
		rec.abort(err)
	}
}

// expire is called when the run passes the compute timeout: requests that arrive from now on do not
// join it, and those waiting for it that have been sent nothing stop waiting. The run goes on; its
// late response is still stored if it may be.
func (l *leader) expire() {
	l.expired.Store(true)
	l.c.flights.Expire(l.f)
	if rec := l.rec.Load(); rec != nil {
		rec.expire()
	}
}

// waitFeeder waits until the leading client has been sent everything recorded (on this goroutine, when
// its delivery had not started).
func (l *leader) waitFeeder() {
	if rec := l.pending; rec != nil {
		l.pending = nil
		_, _ = l.c.deliver(l.w, l.client, rec, l.pendingD)
	}
	if l.feeder != nil {
		<-l.feeder
	}
}

// close ends the run on the leading request's goroutine, also when the handler panicked: it waits for
// the leading client's delivery (a ResponseWriter must not be used once its handler returned) and counts
// the run.
func (l *leader) close() {
	l.stopExpire()
	l.stopAfter()
	if !l.returned {
		l.pending = nil // the handler panicked: its client is cut off, not sent what it wrote
	}
	l.waitFeeder()
	l.cancel()
	status := 0
	if l.rw != nil {
		status = l.rw.status
	}
	l.c.stats.ran(time.Since(l.began), status, l.ended && !l.failed)
	l.runEnded(time.Since(l.began), status)
	if !l.handed.Load() {
		l.c.calls.Release(l.c.fleet, l.lead, storecall.OutcomeMiss) // the handler panicked or called Goexit: nothing stored
	}
}

// persistWork returns the store writes for the run's response (buf, its head and body, when it is
// whole), which run before the flight is forgotten (zero duplicate loads), or nil when nothing is to be
// written. With a fleet lease it always returns work: the lease must be released.
func (l *leader) persistWork(buf []byte) func() {
	c := l.c
	v := l.rw.v
	var sealed []byte
	switch {
	case !v.store || c.store == nil || c.calls.Breaker().Open():
	case c.fenced != nil && l.writes.Token == "": // no ticket: a write could not be fenced
	case v.kind == verdictShare && buf != nil:
		sealed = trimmed(entry.Seal(buf, max(0, c.cfg.clock().Sub(l.start))))
	case v.kind == verdictReplace:
		sealed = v.sealed
	}
	if sealed == nil && !l.lead.Leased {
		return nil
	}
	if rec := l.rec.Load(); rec != nil && sealed != nil {
		rec.storing.Store(true)
	}
	outcome := storecall.OutcomeMiss
	if l.out != nil && l.out.pass != "" {
		outcome = storecall.OutcomePass
	}
	l.handed.Store(true)
	idx := l.o.index
	return func() {
		defer func() { c.calls.Release(c.fleet, l.lead, outcome) }()
		if sealed != nil && c.flights.Write(l.f, func() bool { return c.writeEntry(l.writes, v, sealed, idx) }) {
			outcome = storecall.OutcomeStored
		}
	}
}

// trimmed returns b, or a copy without its spare capacity when that would waste more than an eighth of
// it: the stored entry is kept as long as it lives, and a store's budget counts its length only.
func trimmed(b []byte) []byte {
	if spare := cap(b) - len(b); spare > 64 && spare > len(b)/8 {
		return append(make([]byte, 0, len(b)), b...)
	}
	return b
}

// writeEntry stores a run's sealed entry: the variant under its key and, for a varying response, the
// index (its names and generation) at the primary key, with the tags. It reports whether all of it was
// stored. ticket is the run's ticket when the store fences writes.
func (c *Cache) writeEntry(ticket storecall.Lead, v verdict, sealed []byte, idx *varyIndex) bool {
	keys := []string{v.storeKey.s}
	if v.generation != nil {
		keys = append(keys, v.indexKey.s)
	}
	header := v.head.Header
	tags, ok := responseTags(header)
	if !ok {
		c.tagsUnindexable()
		return false
	}
	seq, indexed := c.indexTagsLocal(tags, keys, v.storeTTL)
	if !indexed {
		return false
	}
	if !c.write(ticket, v.storeKey, sealed, v.storeTTL, tags) {
		return false
	}
	if v.generation != nil {
		ttl := v.storeTTL
		now := c.cfg.clock()
		if idx != nil && slices.Equal(idx.generation, v.generation) {
			ttl = max(ttl, idx.until.Sub(now))
		}
		if !c.write(ticket, v.indexKey, encodeIndex(v.names, v.generation, now, ttl), ttl, nil) {
			return false
		}
	}
	if seq != 0 {
		c.tags.settle(tags, keys, seq) // stored: prune may drop the pairs once the store evicts them
	}
	if c.fenced != nil {
		return true // SetFenced recorded the tags
	}
	return c.indexTagsStore(tags, keys, v.storeTTL)
}

// write stores one value through the store-call convention, reporting whether it was stored: fenced by
// the run's ticket when the store fences writes (refused once an invalidation revoked it), plainly
// otherwise.
func (c *Cache) write(ticket storecall.Lead, k key, value []byte, ttl time.Duration, tags []string) bool {
	var tagged []string
	if c.tagged != nil {
		tagged = tags
	}
	stored, err := c.calls.Write("set", func(ctx context.Context) (bool, error) {
		if c.fenced != nil {
			return c.fenced.SetFenced(ctx, ticket.Key, ticket.Token, k.s, value, ttl, tagged)
		}
		return true, c.store.SetEx(ctx, k.s, value, ttl)
	})
	switch {
	case errors.Is(err, storecall.ErrPanicked):
		c.stats.logs.log(context.Background(), c.logger, logStorePanic, slog.LevelError,
			"stampede: store panicked on write", "cache", c.cfg.name)
	case err == nil && !stored && ticket.Expired():
		c.stats.logs.log(context.Background(), c.logger, logLeaseExpired, slog.LevelWarn,
			"stampede: lease expired before the response was stored; it is not stored",
			"cache", c.cfg.name, "lease", c.cfg.fleetLease)
	}
	return stored
}

// refresh starts a background run for k unless one is in flight: the stale (or nearly expired) entry is
// served meanwhile. Only GET and HEAD refresh in the background. The refresh runs the request that was
// keyed: its headers (a clone of them, so the key headers and those the response varies on), and its
// body when the body is keyed (WithHTTPCacheKeyRequestBody), replayed from the bytes the key was
// computed from; with an unkeyed body it gets none, since the client's may be gone.
func (c *Cache) refresh(next http.Handler, r *http.Request, o runOpts) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return
	}
	body, keyed := keyedBody(r)
	if c.cfg.keyBody && !keyed && r.Body != nil && r.Body != http.NoBody {
		return // cannot happen (a keyed request's body is a replayBody); never refresh with another body
	}
	f, leader := c.flights.AcquireSoft(o.spec())
	if !leader {
		return
	}
	bg := r.Clone(detachedRoute(context.WithoutCancel(r.Context())))
	bg.Body = http.NoBody
	if keyed && c.cfg.keyBody {
		bg.Body = io.NopCloser(bytes.NewReader(body))
		bg.ContentLength = int64(len(body))
		bg.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	bg = observeBackground(bg)
	o.background = true
	c.background.Add()
	go func() {
		defer c.background.Done()
		defer func() {
			if p := recover(); p != nil && !errors.Is(asErr(p), http.ErrAbortHandler) {
				c.stats.logs.log(context.Background(), c.logger, logRefreshPanic, slog.LevelError,
					"stampede: background refresh panicked", "cache", c.cfg.name, "panic", p)
			}
		}()
		c.lead(f, next, discardWriter{header: http.Header{}}, bg, o)
	}()
}

// detachedRoute returns ctx with a copy of chi's route context, when it holds one: a background refresh
// outlives its request, and chi puts the request's route context back in its pool (to be reset and
// reused by another request) once the request returns. The copy is made while the request is still
// being served.
func detachedRoute(ctx context.Context) context.Context {
	if rc := chi.RouteContext(ctx); rc != nil {
		return context.WithValue(ctx, chi.RouteCtxKey, rc.Clone())
	}
	return ctx
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
