package stampede

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/flight"
	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// delivery says how one client is sent a response: the X-Cache value and Cache-Status parameters it
// gets, and whether the response comes from the store (then Age and the remaining freshness are computed
// at now).
type delivery struct {
	xcache    []string
	params    string
	fromStore bool
	now       time.Time
	// leader marks the leading request's own client: a recording handed over to its writer (the body
	// outgrew the limit, the handler hijacked) is still delivered to it up to the hand-over.
	leader bool
	// slot is the memo slot of a stored entry, whose Age and Cache-Status values it caches.
	slot *viewSlot
}

// errClientGone is what deliver reports when its client stopped reading (a write failed or its request
// ended).
var errClientGone = errors.New("stampede: client gone")

// deliver sends rec's response to w for r: a 304 or 412 when r's preconditions say so, a 206 or 416
// for a single-range request on a 200, otherwise the status, header and body, streamed as the handler
// writes it. sent reports whether anything was written to w; when it is false the caller still owns w
// and falls back (err says why: the recording was aborted, or the run expired, before anything was
// sent). When sent is true and err is not nil the response was cut short: the caller must make sure
// its client does not take it for whole.
func (c *Cache) deliver(w http.ResponseWriter, r *http.Request, rec *recording, d delivery) (sent bool, err error) {
	v := &rec.head
	first, _ := rec.view()
	if first.state == recAborted && !(d.leader && handedOver(first.err)) {
		return false, first.err
	}
	if first.base > 0 && !d.leader {
		return false, errTooLarge // its start was dropped from the window: nothing of it can be sent
	}
	// The handler's write deadline, as it set it for its own client (see recording.deadline).
	deadlines := first.deadlines
	if deadlines != 0 {
		setWriteDeadline(w, first.deadline)
	}
	if c.answerPrecondition(w, r, v, d, rec) {
		return true, nil
	}
	if spec, ok := rangeAsked(r, v); ok {
		body, err := rec.waitComplete(r.Context().Done())
		if err != nil {
			return false, err
		}
		c.writeRange(w, v, body, spec, d, rec)
		return true, nil
	}
	c.writeHeader(w.Header(), v, d, rec)
	w.WriteHeader(v.Status)
	if !bodyAllowed(v.Status) {
		return true, nil
	}
	// A HEAD is written the body too: net/http discards it and frames the header from it (a
	// Content-Length when it is short and whole), as it does for the handler itself.

	var off int // the body offset of the next byte to send
	var flushes uint64
	done := r.Context().Done()
	for {
		snap, changed := rec.view()
		if off < snap.base {
			return true, errFellBehind
		}
		end := snap.base + len(snap.body)
		if d.leader && snap.handoff >= 0 {
			end = snap.handoff // the handler writes the rest to this client itself
		}
		if snap.deadlines != deadlines {
			deadlines = snap.deadlines
			setWriteDeadline(w, snap.deadline)
		}
		if snap.flushes != flushes {
			flushes = snap.flushes
			if off == 0 && snap.flushedEmpty {
				// The handler flushed its header before any body: send it alone too (net/http
				// then sniffs no Content-Type from the body).
				if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return true, errClientGone
				}
			}
			if at := min(snap.flushedAt, end); off < at {
				if _, err := w.Write(snap.body[off-snap.base : at-snap.base]); err != nil {
					return true, errClientGone
				}
				off = at
			}
			if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return true, errClientGone
			}
		}
		if off < end {
			if _, err := w.Write(snap.body[off-snap.base : end-snap.base]); err != nil {
				return true, errClientGone
			}
			off = end
		}
		if d.leader && snap.handoff >= 0 {
			return true, nil // handed over: everything before the hand-over was sent
		}
		switch snap.state {
		case recComplete:
			if d.leader {
				// Trailers reach the leading client only (§6.2), as net/http sends them: set
				// "Trailer:"-prefixed once the body is written.
				h := w.Header()
				for name, values := range snap.trailer {
					h[name] = values
				}
			}
			return true, nil
		case recAborted:
			return true, snap.err
		}
		select {
		case <-changed:
		case <-done:
			return true, errClientGone
		}
	}
}

// setWriteDeadline sets w's write deadline to t when w supports it: a writer that does not (a test's
// recorder) has no connection to bound.
func setWriteDeadline(w http.ResponseWriter, t time.Time) {
	_ = http.NewResponseController(w).SetWriteDeadline(t)
}

// waitComplete blocks until the body is whole and returns it; err is the reason it never will be (the
// recording was aborted, the run expired, or the client left).
func (r *recording) waitComplete(cancel <-chan struct{}) ([]byte, error) {
	for {
		snap, changed := r.view()
		switch {
		case snap.handoff >= 0:
			return nil, errTooLarge // a window: the whole body is never there at once
		case snap.state == recComplete:
			return snap.body, nil
		case snap.state == recAborted:
			return nil, snap.err
		case snap.expired:
			return nil, flight.ErrExpired
		}
		select {
		case <-changed:
		case <-cancel:
			return nil, errClientGone
		}
	}
}

// replayEntry sends a stored entry, whole in v, to w for r: the hit path.
func (c *Cache) replayEntry(w http.ResponseWriter, r *http.Request, v *entry.View, d delivery) {
	if c.answerPrecondition(w, r, v, d, nil) {
		return
	}
	if spec, ok := rangeAsked(r, v); ok {
		c.writeRange(w, v, v.Body, spec, d, nil)
		return
	}
	c.writeHeader(w.Header(), v, d, nil)
	w.WriteHeader(v.Status)
	if r.Method != http.MethodHead && bodyAllowed(v.Status) {
		_, _ = w.Write(v.Body)
	}
}

// writeHeader sets in h the header of a response from v for one client: the recorded fields, X-Cache,
// Cache-Status and, for a stored response, Age. rec is the recording being delivered (nil for a hit).
func (c *Cache) writeHeader(h http.Header, v *entry.View, d delivery, rec *recording) {
	if d.slot != nil {
		d.slot.layout.CopyHeaderFrom(v, h)
	} else {
		v.CopyHeader(h)
	}
	c.setStatusHeaders(h, v, d, rec)
}

// setXCache sets X-Cache to v, unless [WithoutXCache] turned it off.
func (c *Cache) setXCache(h http.Header, v []string) {
	if !c.cfg.noXCache {
		h["X-Cache"] = v
	}
}

// setStatusHeaders sets X-Cache, Cache-Status and, for a stored response, Age.
func (c *Cache) setStatusHeaders(h http.Header, v *entry.View, d delivery, rec *recording) {
	c.setXCache(h, d.xcache)
	if d.fromStore {
		c.setHitHeaders(h, v, d.now, d.params, d.slot)
		return
	}
	params := d.params
	if rec != nil && rec.storing.Load() {
		params += "; stored"
	}
	c.setCacheStatus(h, params)
}

// answerPrecondition answers r from v when r's conditional fields decide the outcome (RFC 9110
// §13.2.2): 304 Not Modified with the fields RFC 9110 §15.4.5 lists, or 412 Precondition Failed. It
// reports whether it answered. Preconditions apply to GET and HEAD, and only when the response would
// be a 2xx (RFC 9110 §13.2.1).
func (c *Cache) answerPrecondition(w http.ResponseWriter, r *http.Request, v *entry.View, d delivery, rec *recording) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || v.Status < 200 || v.Status > 299 ||
		!httpcache.HasConditionals(r.Header) {
		return false
	}
	switch httpcache.Evaluate(r.Header, viewValidators(v)) {
	case httpcache.NotModified:
		h := w.Header()
		for _, name := range httpcache.NotModifiedFields {
			if val, ok := v.HeaderValue(name); ok {
				h[name] = []string{string(val)}
			}
		}
		c.setStatusHeaders(h, v, d, rec)
		w.WriteHeader(http.StatusNotModified)
		return true
	case httpcache.Failed:
		c.setStatusHeaders(w.Header(), v, d, rec)
		w.WriteHeader(http.StatusPreconditionFailed)
		return true
	}
	return false
}

// viewValidators returns the validators of a recorded response.
func viewValidators(v *entry.View) httpcache.Validators {
	h := make(http.Header, 3)
	for _, name := range [...]string{"Etag", "Last-Modified", "Date"} {
		if val, ok := v.HeaderValue(name); ok {
			h[name] = []string{string(val)}
		}
	}
	return httpcache.ResponseValidators(h, v.StoredAt)
}

// rangeAsked returns r's Range field value when it applies to the response in v: a GET of a 200 whose
// If-Range, if any, matches (RFC 9110 §14.2, §13.1.5).
func rangeAsked(r *http.Request, v *entry.View) (string, bool) {
	ranges := r.Header["Range"]
	if len(ranges) == 0 || r.Method != http.MethodGet || v.Status != http.StatusOK {
		return "", false
	}
	if !httpcache.IfRangeMatches(r.Header, viewValidators(v)) {
		return "", false
	}
	return ranges[0], true
}

// writeRange answers a range request from a whole body (RFC 9110 §14.4, §15.3.7, §15.5.17): a 206
// with the one range asked for, a 416 when no range is satisfiable, or the whole 200 for anything else
// (several ranges, a unit other than bytes, a field that does not parse).
func (c *Cache) writeRange(w http.ResponseWriter, v *entry.View, body []byte, spec string, d delivery, rec *recording) {
	h := w.Header()
	c.writeHeader(h, v, d, rec)
	size := int64(len(body))
	switch kind, br := httpcache.ParseRange(spec, size); kind {
	case httpcache.OneRange:
		h["Content-Range"] = []string{br.ContentRange(size)}
		h["Content-Length"] = []string{itoa(br.Len())}
		w.WriteHeader(http.StatusPartialContent)
		_, _ = w.Write(body[br.First : br.Last+1])
	case httpcache.Unsatisfiable:
		h["Content-Range"] = []string{httpcache.UnsatisfiedRange(size)}
		delete(h, "Content-Length")
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
	default:
		w.WriteHeader(v.Status)
		_, _ = w.Write(body)
	}
}

// bodyAllowed reports whether a response with status has a body (RFC 9110 §6.4.1).
func bodyAllowed(status int) bool {
	return !(status >= 100 && status < 200) && status != http.StatusNoContent && status != http.StatusNotModified
}

// itoa formats n in decimal.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
