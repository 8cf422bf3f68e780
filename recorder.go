package stampede

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"slices"
)

// recorder is the ResponseWriter the handler gets on a run. It passes everything through to the leading
// request's own writer as it happens (so that client streams as usual) and records a copy of what the
// handler itself produced, for the requests waiting on the run and for the store.
//
// It embeds the real writer and implements Unwrap, so http.NewResponseController reaches deadlines and
// full-duplex on it; Flush and Hijack are intercepted because they make the response unshareable.
type recorder struct {
	http.ResponseWriter

	cfg     *config
	before  http.Header // the headers outer middleware set before the handler ran; never recorded
	noBody  bool        // the leading request is HEAD: the body is recorded but not passed through
	release func(reason string)
	// onHeader, when set, adds headers for the leading client as the status is written (Cache-Status).
	onHeader func(code int, h http.Header)
	// deferred holds the response back from the leading client until the run is over, because a stale
	// entry may yet replace it (a 304 revalidation, or a 5xx under stale-if-error). A response that
	// streams, overflows the body limit or sets a cookie is committed at once and passed through.
	deferred  bool
	committed bool // the status went to the leading client (always, when not deferred)

	wroteHeader bool
	status      int
	header      http.Header // the handler's own headers, captured at WriteHeader
	body        bytes.Buffer
	unshareable string // why the response cannot be shared; "" while it still can
	clientGone  bool   // a write to the leading client failed; the run goes on for the others
}

func newRecorder(w http.ResponseWriter, cfg *config, noBody bool, release func(string)) *recorder {
	canonicalize(w.Header())
	before := make(http.Header, len(w.Header()))
	for k, v := range w.Header() {
		before[k] = slices.Clone(v)
	}
	return &recorder{ResponseWriter: w, cfg: cfg, before: before, noBody: noBody, release: release}
}

// Unwrap returns the leading request's writer, for http.NewResponseController.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// WriteHeader records the status and the headers the handler added or changed, then writes them through.
func (rw *recorder) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		rw.ResponseWriter.WriteHeader(code) // informational (103 Early Hints): passed on, not recorded
		return
	}
	rw.wroteHeader = true
	rw.status = code
	h := rw.ResponseWriter.Header()
	// A handler may set h["set-cookie"] or h["cache-control"] directly. net/http sends such names as
	// written and clients read them case-insensitively, so they are merged under their canonical names
	// before anything is decided: otherwise a private page or a cookie would look shareable.
	canonicalize(h)
	rw.header = make(http.Header, len(h))
	connection := h["Connection"]
	for name, values := range h {
		if slices.Equal(rw.before[name], values) {
			continue // set by middleware outside us, untouched by the handler
		}
		if rw.cfg.recordable(name, connection) {
			rw.header[name] = slices.Clone(values)
		}
	}
	if rw.deferred {
		if _, ok := h["Set-Cookie"]; ok && !slices.Equal(rw.before["Set-Cookie"], h["Set-Cookie"]) {
			rw.markUnshareable(reasonSetCookie)
		}
		return
	}
	rw.writeStatus()
	if _, ok := h["Set-Cookie"]; ok && !slices.Equal(rw.before["Set-Cookie"], h["Set-Cookie"]) {
		rw.markUnshareable(reasonSetCookie)
	}
}

// writeStatus sends the recorded status to the leading client, with its X-Cache and Cache-Status.
func (rw *recorder) writeStatus() {
	rw.committed = true
	h := rw.ResponseWriter.Header()
	h["X-Cache"] = []string{"MISS"}
	if rw.onHeader != nil {
		rw.onHeader(rw.status, h)
	}
	rw.ResponseWriter.WriteHeader(rw.status)
}

// commit sends what a deferred run has produced so far to the leading client and passes the rest
// through as it comes.
func (rw *recorder) commit() {
	if rw.committed || !rw.wroteHeader {
		return
	}
	rw.writeStatus()
	if !rw.noBody && rw.body.Len() > 0 {
		if _, err := rw.ResponseWriter.Write(rw.body.Bytes()); err != nil {
			rw.clientGone = true
		}
	}
}

// Write records p (up to the body limit) and passes it through to the leading client.
func (rw *recorder) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.unshareable == "" {
		if int64(rw.body.Len()+len(p)) > rw.cfg.maxBodyBytes {
			rw.markUnshareable(reasonTooLarge) // commits a deferred response: p passes through below
		} else {
			rw.body.Write(p)
		}
	}
	if rw.noBody || rw.clientGone || !rw.committed {
		return len(p), nil
	}
	n, err := rw.ResponseWriter.Write(p)
	if err != nil && rw.unshareable == "" {
		// The leading client went away. Its handler goes on for the requests waiting on it, so the
		// handler must not see the error and stop early.
		rw.clientGone = true
		return len(p), nil
	}
	return n, err
}

// Flush releases the waiting requests (a streamed response is not shared) and flushes the client.
func (rw *recorder) Flush() { _ = rw.FlushError() }

// FlushError is Flush for http.ResponseController, returning the underlying writer's error.
func (rw *recorder) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	rw.markUnshareable(reasonFlushed)
	return http.NewResponseController(rw.ResponseWriter).Flush()
}

// Hijack releases the waiting requests and hands the connection to the handler.
func (rw *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	rw.markUnshareable(reasonHijacked)
	return http.NewResponseController(rw.ResponseWriter).Hijack()
}

// canonicalize moves values stored under non-canonical header names to their canonical names, keeping
// their order after the values already there.
func canonicalize(h http.Header) {
	for name, values := range h {
		if c := http.CanonicalHeaderKey(name); c != name {
			delete(h, name)
			h[c] = append(h[c], values...)
		}
	}
}

// markUnshareable records why the response cannot be shared, drops the recorded body, and releases the
// waiting requests at once so they do not wait for a stream that may never end.
func (rw *recorder) markUnshareable(reason string) {
	if rw.unshareable != "" {
		return
	}
	rw.unshareable = reason
	rw.commit() // a deferred response goes to its client now, with what it has so far
	rw.body = bytes.Buffer{}
	rw.release(reason)
}

// xCacheHit is shared by every hit to save an allocation; slices set in a header are never modified in
// place by net/http, and its capacity of one makes an append copy it.
var xCacheHit = []string{"HIT"}
