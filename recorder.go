package stampede

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// recorder is the ResponseWriter the handler gets on a run. When the handler writes its header the run's
// leader decides, once, what the response is for (see [verdict]), and from then on the recorder:
//   - records a shared response into the flight's recording, which every client (the leading one
//     included, through its own goroutine) is fed from at its own pace: the handler never waits for a
//     client;
//   - or passes an unshareable response straight to the leading client, as if there were no cache;
//   - or discards what the handler writes, when a stored response answers instead.
//
// The handler gets a header map of its own, a copy of the leading writer's at the start, so what it
// does to it never races with a client being sent the response. The recorder implements Unwrap, so
// http.NewResponseController reaches the leading writer; Flush, Hijack and the deadline and full-duplex
// setters are intercepted so they stay safe while the leading client is fed from another goroutine.
type recorder struct {
	l      *leader
	w      http.ResponseWriter // the leading client's writer (a discarding one for a background run)
	header http.Header         // the handler's header map
	before http.Header         // w's header before the handler ran: set by outer middleware, never recorded
	limit  int64               // the body limit

	wroteHeader bool
	status      int
	mode        recMode
	v           verdict // what decide said, from the header on
	pre         []byte  // modeRecord: body written before the head is committed (type sniffing)
	rec         *recording
	n           int64 // modeRecord: body bytes recorded
	// clen is the declared Content-Length of a recorded response whose status allows a body and whose
	// leading client speaks HTTP/1, -1 otherwise; attempted counts the body bytes the handler tried to
	// write. net/http's HTTP/1 writer refuses whole every write past the declared length
	// (ErrContentLength) and sniffs no type from it; its HTTP/2 writer refuses it too but sniffs first,
	// so there the recorder lets it through and finish finds the length wrong, as before.
	clen, attempted int64
	clientGone      bool // modeDirect: a write to w failed
	// deadline is the write deadline the handler set before the recording was committed, if
	// deadlineSet: the recording carries it to every client from its start.
	deadline    time.Time
	deadlineSet bool
	fullDuplex  bool        // the handler called EnableFullDuplex
	written     http.Header // the handler's header as it was at WriteHeader, while the head is uncommitted
	windowed    bool        // modeDirect after overflow: what is written also goes to the recording's window
	// bodyClosed is set when net/http would have put a recorded response's header on the leading
	// client's wire (a flush, or more body than it buffers) while the handler had not enabled full
	// duplex: on HTTP/1 it then closes the request body (see h1Body). Read by the handler's body reads,
	// which may run on another goroutine.
	bodyClosed atomic.Bool
}

// recMode is what the recorder does with what the handler writes.
type recMode uint8

const (
	modeUndecided recMode = iota // no header yet
	modeRecord                   // into the recording
	modeDirect                   // straight to the leading client
	modeDiscard                  // nowhere: a stored response answers
)

// sniffLen is how much of an untyped body net/http's content sniffing looks at (http.DetectContentType).
const sniffLen = 512

func newRecorder(l *leader, w http.ResponseWriter, limit int64) *recorder {
	h := w.Header()
	canonicalize(h)
	// Shallow copies: a handler that changes a field replaces its slice or appends past its length, and
	// either shows as a change against before, whose slices keep their lengths.
	var before http.Header
	mine := make(http.Header, len(h)+4)
	if len(h) > 0 {
		before = make(http.Header, len(h))
		for k, v := range h {
			before[k] = v
			mine[k] = v
		}
	}
	return &recorder{l: l, w: w, header: mine, before: before, limit: limit}
}

// Header returns the handler's header map.
func (rw *recorder) Header() http.Header { return rw.header }

// Unwrap returns the leading request's writer, for http.NewResponseController.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.w }

// WriteHeader decides what the response is for and starts it on its way.
func (rw *recorder) WriteHeader(code int) {
	if rw.wroteHeader {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// Informational (103 Early Hints): to the leading client now; never recorded.
		if !rw.l.o.background {
			rw.syncHeader()
			rw.w.WriteHeader(code)
			// The final response's header is the handler's map as it is then, which may have dropped
			// a field the 1xx carried: the leading writer's header goes back to what it was before.
			rw.restoreHeader()
		}
		return
	}
	rw.wroteHeader, rw.status = true, code
	// A handler may set h["set-cookie"] or h["cache-control"] directly. net/http sends such names as
	// written and clients read them case-insensitively, so they are merged under their canonical names
	// before anything is decided: otherwise a private page or a cookie would look shareable.
	canonicalize(rw.header)
	rw.l.decide(&rw.v, code, rw.own())
	switch rw.v.kind {
	case verdictPass:
		rw.mode = modeDirect
		rw.l.pass(rw.v.reason)
		rw.writeDirectHeader(rw.v.lead)
	case verdictReplace:
		rw.mode = modeDiscard
		rw.l.publish(rw.v.replace, &rw.v)
	default:
		rw.mode = modeRecord
		rw.clen = -1
		if bodyAllowed(code) && rw.l.r.ProtoMajor == 1 {
			rw.clen = declaredLength(rw.v.head.Header)
		}
		if !rw.needsSniff() {
			rw.commit()
		} else {
			// The head waits for the body's first bytes; if the response turns out to be the leading
			// client's alone meanwhile, its header is the one the handler wrote, as net/http keeps it
			// (changes after WriteHeader are ignored).
			rw.written = rw.header.Clone()
		}
	}
}

// own returns the header fields the handler set or changed itself (not those outer middleware set
// before it ran and it left alone).
func (rw *recorder) own() http.Header {
	if rw.before == nil {
		return rw.header // nothing was set before the handler ran: it is all the handler's
	}
	own := make(http.Header, len(rw.header))
	for name, values := range rw.header {
		if !slices.Equal(rw.before[name], values) {
			own[name] = values
		}
	}
	return own
}

// needsSniff reports whether net/http would sniff the response's Content-Type from its first bytes: the
// recording's head is then committed only once those are there, so every client gets the same type.
func (rw *recorder) needsSniff() bool {
	h := rw.v.head.Header
	_, typed := h["Content-Type"]
	return !typed && h["Content-Encoding"] == nil && bodyAllowed(rw.status)
}

// commit fixes the recording's head and publishes it to the flight's waiters and the leading client.
func (rw *recorder) commit() {
	head := &rw.v.head
	if rw.needsSniff() && len(rw.pre) > 0 {
		head.Header["Content-Type"] = []string{http.DetectContentType(rw.pre)}
	}
	capacity := max(len(rw.pre), 512) + 4 // an unknown length grows by doubling, and is trimmed if stored
	if n := declaredLength(head.Header); n >= 0 && n <= rw.limit {
		capacity = int(n) + 4
	}
	buf := entry.AppendHead(make([]byte, 0, entry.HeadLen(head)+capacity), head)
	view, err := entry.ParseHead(buf)
	if err != nil {
		// Only recordable fields reach the head, so this cannot happen; if it did, the response would
		// be the leader's alone.
		rw.v.kind, rw.v.reason = verdictPass, reasonRevalidate
		rw.mode = modeDirect
		rw.l.pass(rw.v.reason)
		rw.writeDirectHeader(rw.v.lead)
		_, _ = rw.writeDirect(rw.pre)
		rw.pre = nil
		return
	}
	rw.rec = newLiveRecording(buf, view)
	if rw.deadlineSet {
		rw.rec.setWriteDeadline(rw.deadline)
	}
	rw.rec.append(rw.pre)
	rw.n = int64(len(rw.pre))
	rw.pre = nil
	rw.l.publish(rw.rec, &rw.v)
	if rw.n > streamAfter {
		rw.l.streaming()
		rw.headerOut()
	}
}

// Write records p or passes it on, as the verdict says.
func (rw *recorder) Write(p []byte) (int, error) {
	if rw.rec != nil {
		rw.l.streaming() // a second write: the response streams, its client is fed on its own goroutine
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	switch rw.mode {
	case modeDirect:
		if rw.windowed {
			rw.rec.append(p) // first: the other clients never wait for the leading one
			rw.n += int64(len(p))
		}
		return rw.writeDirect(p)
	case modeRecord:
		if rw.clen >= 0 {
			if rw.attempted += int64(len(p)); rw.attempted > rw.clen {
				return 0, http.ErrContentLength
			}
		}
		if rw.rec == nil {
			if int64(len(rw.pre)+len(p)) > rw.limit {
				rw.overflowUncommitted()
				return rw.writeDirect(p)
			}
			rw.pre = append(rw.pre, p...)
			if len(rw.pre) >= sniffLen {
				rw.commit()
			}
			return len(p), nil
		}
		if rw.n+int64(len(p)) > rw.limit {
			rw.overflow()
			return rw.Write(p)
		}
		rw.rec.append(p)
		rw.n += int64(len(p))
		if rw.n > streamAfter {
			rw.l.streaming() // more than net/http would hold back: it would be on the wire by now
			rw.headerOut()
		}
	}
	return len(p), nil
}

// streamAfter is how much of a body may be recorded before the leading client's delivery must start:
// net/http itself holds back the first 2 KiB of a response (to compute its Content-Length), so a
// handler that writes no more than that and returns is delivered after it returned, on its own
// goroutine, at no cost.
const streamAfter = 2048

// writeDirect writes p to the leading client. Its errors reach the handler: nobody else depends on the
// run any more.
func (rw *recorder) writeDirect(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if rw.l.o.background {
		return len(p), nil
	}
	n, err := rw.w.Write(p)
	if err != nil {
		rw.clientGone = true
	}
	return n, err
}

// overflow goes on with a published response that outgrew the body limit without keeping it: it will
// not be stored, and the key goes hit-for-pass, but the clients being sent it still get all of it. The
// leading client is sent what was recorded, then the handler writes to it directly, as without the
// cache; the others are fed from a window of the last body-limit bytes (recording.windowed), so
// memory stays bounded and the handler never waits for them.
func (rw *recorder) overflow() {
	rw.rec.windowed(int(rw.limit))
	rw.mode = modeDirect
	rw.windowed = true
	l := rw.l
	l.unbounded.Store(true)
	l.c.pass.add(l.o.k, l.c.cfg.clock())
	l.c.stats.unshareable[reasonIndex(reasonTooLarge)].Add(1)
	l.waitFeeder()
}

// overflowUncommitted turns a response that outgrew the body limit before its head was committed into
// the leading client's alone: nobody has been sent anything yet.
func (rw *recorder) overflowUncommitted() {
	rw.mode = modeDirect
	rw.l.pass(reasonTooLarge)
	lead := rw.v.lead
	lead.params += "; detail=" + reasonTooLarge
	rw.writeDirectHeader(lead)
	pre := rw.pre
	rw.pre = nil
	_, _ = rw.writeDirect(pre)
}

// handOver ends the recording because of err and hands the rest of the response to the leading client:
// its own goroutine first delivers everything recorded, then the handler writes to it directly.
// Requests that were sent part of the response are cut off; the others run the handler themselves.
func (rw *recorder) handOver(err error, reason string) {
	rw.rec.abort(err)
	rw.mode = modeDirect
	rw.l.unshared(reason)
	rw.l.waitFeeder()
}

// writeDirectHeader sends the handler's status and header to the leading client, with its X-Cache and
// Cache-Status, for a response that is its alone.
func (rw *recorder) writeDirectHeader(d delivery) {
	if rw.l.o.background {
		return
	}
	rw.syncHeader()
	h := rw.w.Header()
	rw.l.c.setXCache(h, d.xcache)
	rw.l.c.setCacheStatus(h, d.params)
	rw.w.WriteHeader(rw.status)
}

// syncHeader makes the leading writer's header what the handler's header map says.
func (rw *recorder) syncHeader() {
	h := rw.w.Header()
	clear(h)
	src := rw.header
	if rw.written != nil {
		src = rw.written
	}
	for k, v := range src {
		h[k] = v
	}
}

// restoreHeader makes the leading writer's header what it was before the handler ran.
func (rw *recorder) restoreHeader() {
	h := rw.w.Header()
	clear(h)
	for k, v := range rw.before {
		h[k] = v
	}
}

// Flush commits the head if it is not yet, and asks every client to flush what it was sent.
func (rw *recorder) Flush() { _ = rw.FlushError() }

// FlushError is Flush for http.ResponseController.
func (rw *recorder) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	switch rw.mode {
	case modeDirect:
		if rw.windowed {
			rw.rec.flush()
		}
		if rw.l.o.background {
			return nil
		}
		return http.NewResponseController(rw.w).Flush()
	case modeRecord:
		if rw.rec == nil {
			rw.commit()
		}
		if rw.rec != nil {
			rw.rec.flush()
			rw.l.streaming()
			rw.headerOut()
		}
	}
	return nil
}

// Hijack hands the connection to the handler: the response becomes the leading client's alone.
func (rw *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	switch {
	case rw.windowed:
		rw.rec.abort(errHijacked)
	case rw.mode == modeRecord && rw.rec != nil:
		rw.handOver(errHijacked, reasonHijacked)
	case rw.mode == modeUndecided || rw.mode == modeRecord:
		rw.l.pass(reasonHijacked)
		rw.mode = modeDirect
		rw.wroteHeader = true
		rw.syncHeader()
	}
	return http.NewResponseController(rw.w).Hijack()
}

// SetReadDeadline sets the leading connection's read deadline (http.ResponseController): only the
// handler reads the leading request, so it is passed on whatever the response is for.
func (rw *recorder) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(rw.w).SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline of every client the response reaches, as the bare handler's
// call sets its own client's. A response that goes straight to the leading client has it set at once;
// a recorded one carries it in the recording, and each client's delivery sets it on its connection
// before writing what follows it (the leading client's included, which is written to by its own
// goroutine, not the handler).
func (rw *recorder) SetWriteDeadline(t time.Time) error {
	switch {
	case rw.l.o.background || rw.mode == modeDiscard:
		return nil // nobody is sent what the handler writes
	case rw.mode == modeRecord && rw.rec != nil:
		rw.rec.setWriteDeadline(t)
		return nil
	case rw.mode == modeRecord || rw.mode == modeUndecided:
		// Nothing has been sent to the leading client and no goroutine writes to it yet.
		rw.deadline, rw.deadlineSet = t, true
	case rw.windowed:
		rw.rec.setWriteDeadline(t)
	}
	return http.NewResponseController(rw.w).SetWriteDeadline(t)
}

// EnableFullDuplex lets the handler read the request body while it writes (http.ResponseController).
// It is passed on unless the leading client's delivery is already running on a goroutine of its own
// (a recorded response that streams): net/http's writer is not safe for that, and its header is
// then on its way already, which is when HTTP/1 would stop the body anyway.
func (rw *recorder) EnableFullDuplex() error {
	rw.fullDuplex = true
	if rw.l.o.background || (rw.mode == modeRecord && rw.l.feeder != nil) {
		return nil
	}
	return http.NewResponseController(rw.w).EnableFullDuplex()
}

// headerOut notes that the handler has done what puts a response's header on the wire (a flush, or
// more body than net/http buffers): from then on, unless it enabled full duplex, an HTTP/1 request
// body reads as closed, as net/http would have closed it.
func (rw *recorder) headerOut() {
	if !rw.fullDuplex {
		rw.bodyClosed.Store(true)
	}
}

// h1Body is the body of an HTTP/1 request whose run records its response. net/http closes such a body
// when it writes the response's header, unless the handler enabled full duplex; the leading client of
// a recorded response is written to later, by its own goroutine, so the handler would otherwise read a
// body that it could not read without the cache.
type h1Body struct {
	io.ReadCloser
	rw *recorder
}

// Read reads the body, or fails as net/http's closed body does.
func (b *h1Body) Read(p []byte) (int, error) {
	if b.rw.bodyClosed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.ReadCloser.Read(p)
}

// finish ends the recording when the handler returned normally, returning the entry's bytes (head and
// body, not yet sealed) when the response is whole and stored; nil otherwise.
func (rw *recorder) finish() []byte {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK) // what net/http sends for a handler that wrote nothing
	}
	switch rw.mode {
	case modeDirect:
		rw.copyTrailers()
		if rw.windowed {
			if n := declaredLength(rw.v.head.Header); n >= 0 && n != rw.n && bodyAllowed(rw.status) {
				rw.rec.abort(errShortBody)
			} else {
				rw.rec.complete()
			}
		}
	case modeRecord:
		if rw.rec == nil {
			rw.commit()
		}
		if rw.mode != modeRecord {
			return nil
		}
		if n := declaredLength(rw.v.head.Header); n >= 0 && n != rw.n && bodyAllowed(rw.status) {
			// A body shorter (or longer) than its Content-Length: the handler failed mid-body. The
			// leading client gets what was written and net/http closes its connection; nobody else gets
			// it, and it is not stored.
			rw.rec.abort(errShortBody)
			rw.l.unshared(reasonIncomplete)
			return nil
		}
		if t := rw.trailers(); t != nil {
			rw.rec.setTrailer(t)
		}
		return rw.rec.complete()
	}
	return nil
}

// trailers returns the trailers the handler set for a recorded response ("Trailer:"-prefixed names: a
// response that declares trailers is not recorded), nil when none.
func (rw *recorder) trailers() http.Header {
	var t http.Header
	for name, values := range rw.header {
		if strings.HasPrefix(name, http.TrailerPrefix) {
			if t == nil {
				t = make(http.Header, 1)
			}
			t[name] = values
		}
	}
	return t
}

// copyTrailers passes on trailers the handler set after its header, for a response that went straight
// to the leading client ("Trailer:"-prefixed names, or those its Trailer field declared).
func (rw *recorder) copyTrailers() {
	if rw.l.o.background {
		return
	}
	h := rw.w.Header()
	declared := rw.header["Trailer"]
	for name, values := range rw.header {
		if strings.HasPrefix(name, http.TrailerPrefix) || listed(declared, name) {
			h[name] = values
		}
	}
}

// listed reports whether a comma-separated field lists name (case-insensitively).
func listed(lines []string, name string) bool {
	for _, line := range lines {
		for tok := range strings.SplitSeq(line, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
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
