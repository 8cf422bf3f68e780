package stampede

import (
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// recording is the single source of one response's bytes: an entry being written while the handler
// streams it, or a complete entry (read from the store, or rebuilt by a revalidation). Every client that
// gets the response, the leading request's own included, reads the body from it at its own pace, so
// nothing a client does can stall the handler or another client.
//
// The buffer holds the entry head followed by the body. Bytes are only ever appended, so a slice a
// reader took stays valid and unchanged: the readers write such slices to their clients without holding
// any lock and without copying. Memory is the body (bounded by the body limit) plus, per client, the
// few words of its read position.
type recording struct {
	// head is the entry's head (status, headers, freshness, vary) and bodyAt where the body starts in
	// buf. Both are fixed before the recording is published, so clients read them without mu.
	head   entry.View
	bodyAt int

	// storing is set once the response's store write has started (Cache-Status "stored").
	storing atomic.Bool

	mu sync.Mutex
	// changed is closed when buf, flushes or state next change: a reader that found nothing new waits on
	// it. It is made only when a reader asks for it, so a recording nobody waits on makes none. Guarded
	// by mu.
	changed chan struct{}
	buf     []byte // head and body so far; only appended to; guarded by mu
	flushes uint64 // Flush calls so far; guarded by mu
	// flushedAt is the body's length at the last flush: a reader flushes there, not after what was
	// written since, so a flush before the body sends the header alone, as it did for the handler
	// (net/http sniffs no type then). Guarded by mu.
	flushedAt int
	// flushedEmpty: a flush came before any body byte, so the header went out alone. Guarded by mu.
	flushedEmpty bool
	// deadline is the last write deadline the handler set (http.ResponseController), and deadlines how
	// many it set: every client's delivery applies it to its own connection, as the bare handler's
	// call would have, so a handler that extends its deadline before each write is not cut. Guarded by mu.
	deadline  time.Time
	deadlines uint64
	state     recState // guarded by mu
	err       error    // why it was aborted; guarded by mu
	// trailer holds the trailers the handler set ("Trailer:"-prefixed names), for the leading client
	// only (§6.2); set before the recording completes, read once it has. Guarded by mu.
	trailer http.Header
	expired bool // the run outlived the compute timeout; guarded by mu
	// A response that outgrew the body limit after it was published goes on as a window (see
	// windowed): buf then holds the last bytes only, base is the body offset of buf[bodyAt], window how
	// many bytes are kept at least, and handoff the body offset from which the leading client is
	// written to by the handler directly (-1 before). Guarded by mu.
	base    int
	window  int
	handoff int
}

// recState is where a recording is in its life.
type recState uint8

const (
	recLive     recState = iota // the handler is still writing
	recComplete                 // the whole body is there
	recAborted                  // it ended early: err says why
)

// Why a recording ends early. A client that had not been sent anything yet falls back (runs the handler
// itself, or gets a stale entry); one that had is cut off, so it never takes a shortened body for a
// whole one.
var (
	// errFellBehind: a client read more slowly than the handler wrote a response too large to keep,
	// and the bytes it needed next were dropped from the window.
	errFellBehind = errors.New("stampede: client fell behind a response too large to keep")
	// errTooLarge: the body outgrew the body limit. The leading client is handed the rest directly.
	errTooLarge = errors.New("stampede: response body over the limit")
	// errShortBody: the handler returned having written less than its Content-Length.
	errShortBody = errors.New("stampede: response body shorter than its Content-Length")
	// errHijacked: the handler took over the connection.
	errHijacked = errors.New("stampede: handler hijacked the connection")
)

// handedOver reports whether an abort leaves the rest of the response to the leading client's own
// writer: everything recorded is still delivered to it first, so it gets exactly what the handler wrote.
func handedOver(err error) bool {
	return errors.Is(err, errTooLarge) || errors.Is(err, errShortBody) || errors.Is(err, errHijacked)
}

// newLiveRecording returns a recording whose buffer starts with head (an entry head from
// entry.AppendHead, with room for the body after it) and whose head view is v.
func newLiveRecording(buf []byte, v entry.View) *recording {
	return &recording{head: v, bodyAt: len(buf), buf: buf, handoff: -1}
}

// newCompleteRecording returns a recording of a whole stored entry (v parsed from raw bytes).
func newCompleteRecording(v entry.View) *recording {
	raw := v.Raw()
	body := raw[: len(raw)-4 : len(raw)-4] // the checksum is not body
	return &recording{head: v, bodyAt: v.BodyOffset(), buf: body, state: recComplete, handoff: -1}
}

// notifyLocked wakes every reader waiting for a change. mu must be held.
func (r *recording) notifyLocked() {
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// append adds p to the body. Only the handler's goroutine writes. Once windowed, the buffer keeps at
// least the last window bytes and at most twice that: when it would hold more, the kept bytes move to
// a new buffer (readers keep the slices they took of the old one), so each byte is copied at most once
// more.
func (r *recording) append(p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	if r.window > 0 && len(r.buf)-r.bodyAt+len(p) > 2*r.window {
		body := r.buf[r.bodyAt:]
		keep := min(len(body), r.window)
		next := make([]byte, 0, r.bodyAt+2*r.window+len(p))
		next = append(next, r.buf[:r.bodyAt]...)
		next = append(next, body[len(body)-keep:]...)
		r.base += len(body) - keep
		r.buf = next
	}
	r.buf = append(r.buf, p...)
	r.notifyLocked()
	r.mu.Unlock()
}

// windowed makes the recording of a response that outgrew the body limit go on as a window of at
// least window bytes: the leading client is handed over at the body's current end (the handler writes
// to it directly from there, as without the cache), and the other clients go on being fed from the
// window; one that falls further behind than the window is cut (errFellBehind). Such a recording is
// never stored.
func (r *recording) windowed(window int) {
	r.mu.Lock()
	r.window = window
	r.handoff = r.base + len(r.buf) - r.bodyAt
	r.notifyLocked()
	r.mu.Unlock()
}

// flush asks every reader to flush its client once it has written what is recorded so far.
func (r *recording) flush() {
	r.mu.Lock()
	r.flushes++
	if r.base+len(r.buf) == r.bodyAt {
		r.flushedEmpty = true
	}
	r.flushedAt = r.base + len(r.buf) - r.bodyAt
	r.notifyLocked()
	r.mu.Unlock()
}

// setWriteDeadline asks every reader to set its client's write deadline to t before it writes more.
func (r *recording) setWriteDeadline(t time.Time) {
	r.mu.Lock()
	r.deadline = t
	r.deadlines++
	r.notifyLocked()
	r.mu.Unlock()
}

// setTrailer records the handler's trailers, before complete.
func (r *recording) setTrailer(t http.Header) {
	r.mu.Lock()
	r.trailer = t
	r.mu.Unlock()
}

// complete marks the body whole and returns the buffer (head and body), which nobody will append to.
func (r *recording) complete() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == recLive {
		r.state = recComplete
		r.notifyLocked()
	}
	return r.buf
}

// abort ends the recording early because of err. The first end wins.
func (r *recording) abort(err error) {
	r.mu.Lock()
	if r.state == recLive {
		r.state, r.err = recAborted, err
		r.notifyLocked()
	}
	r.mu.Unlock()
}

// expire records that the run passed its compute timeout: clients that have been sent nothing stop
// waiting for it.
func (r *recording) expire() {
	r.mu.Lock()
	if !r.expired {
		r.expired = true
		r.notifyLocked()
	}
	r.mu.Unlock()
}

// snapshot is what a reader sees at one moment.
type snapshot struct {
	body         []byte // the whole body recorded so far; never modified afterwards
	flushes      uint64
	flushedAt    int
	flushedEmpty bool
	deadline     time.Time
	deadlines    uint64
	state        recState
	err          error
	expired      bool
	base         int         // body offset of body[0]: bytes before it were dropped from the window
	handoff      int         // body offset from which the leading client is written to directly; -1 when none
	trailer      http.Header // set once the state is recComplete
}

// view returns the recording's current state and a channel closed at its next change (a closed one once
// it has ended: it will not change again).
func (r *recording) view() (snapshot, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	snap := snapshot{body: r.buf[r.bodyAt:len(r.buf):len(r.buf)], flushes: r.flushes, flushedAt: r.flushedAt, flushedEmpty: r.flushedEmpty, state: r.state, err: r.err,
		expired: r.expired, deadline: r.deadline, deadlines: r.deadlines, trailer: r.trailer, base: r.base, handoff: r.handoff}
	if r.state != recLive {
		return snap, closedChan
	}
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return snap, r.changed
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()
