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

	wroteHeader bool
	status      int
	header      http.Header // the handler's own headers, captured at WriteHeader
	body        bytes.Buffer
	unshareable string // why the response cannot be shared; "" while it still can
	clientGone  bool   // a write to the leading client failed; the run goes on for the others
}

func newRecorder(w http.ResponseWriter, cfg *config, noBody bool, release func(string)) *recorder {
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
	if _, ok := h["Set-Cookie"]; ok && !slices.Equal(rw.before["Set-Cookie"], h["Set-Cookie"]) {
		rw.markUnshareable(reasonSetCookie)
	}
	h["X-Cache"] = xCacheMiss
	rw.ResponseWriter.WriteHeader(code)
}

// Write records p (up to the body limit) and passes it through to the leading client.
func (rw *recorder) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.unshareable == "" {
		if int64(rw.body.Len()+len(p)) > rw.cfg.maxBodyBytes {
			rw.markUnshareable(reasonTooLarge)
		} else {
			rw.body.Write(p)
		}
	}
	if rw.noBody || rw.clientGone {
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

// markUnshareable records why the response cannot be shared, drops the recorded body, and releases the
// waiting requests at once so they do not wait for a stream that may never end.
func (rw *recorder) markUnshareable(reason string) {
	if rw.unshareable != "" {
		return
	}
	rw.unshareable = reason
	rw.body = bytes.Buffer{}
	rw.release(reason)
}

var (
	xCacheMiss      = []string{"MISS"}
	xCacheHit       = []string{"HIT"}
	xCacheCoalesced = []string{"COALESCED"}
	xCacheBypass    = []string{"BYPASS"}
)
