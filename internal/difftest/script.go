// Package difftest is a differential test harness for HTTP middleware: it decodes arbitrary bytes into a
// script of handler behaviour (writes, flushes, 1xx, header changes, deadlines, hijack, full duplex,
// panics, trailers, Content-Length mismatches), runs the script as a handler, and records what an
// HTTP client observes of the response, so that a test can compare a handler served bare with the same
// handler behind a middleware, over HTTP/1.1, HTTP/2 over TLS and h2c. It knows nothing of the
// middleware it is used on.
package difftest

import (
	"fmt"
	"net/http"
	"strings"
)

// Op is one kind of step of a script.
type Op uint8

// The steps a script is made of. Arg selects among a few values of each (a size, a header, a status).
const (
	OpWrite          Op = iota // write Sizes[Arg] bytes of the body
	OpFlush                    // http.ResponseController.Flush
	OpEarly                    // WriteHeader(103) with the header as it is
	OpSetHeader                // add Fields[Arg] to the header
	OpDelHeader                // remove Fields[Arg]'s name from the header
	OpStatus                   // WriteHeader(Statuses[Arg])
	OpDeadlinePast             // SetWriteDeadline in the past: the rest of the response cannot be written
	OpDeadlineExtend           // SetWriteDeadline an hour ahead (a streaming export's per-row extension)
	OpReadDeadline             // SetReadDeadline an hour ahead, then read the request body
	OpFullDuplex               // EnableFullDuplex, then read the request body
	OpHijack                   // Hijack (only before anything is written): a raw response, or the error as the body
	OpPanic                    // panic: http.ErrAbortHandler when Arg is even, a string otherwise
	OpTrailer                  // set a trailer: "Trailer:"-prefixed when Arg is even, the declared X-Trail otherwise
	OpContentLength            // set Content-Length to the script's body length plus Arg%3-1
	numOps
)

var opNames = [numOps]string{"write", "flush", "early", "set", "del", "status", "deadline-past", "deadline-extend",
	"read-deadline", "full-duplex", "hijack", "panic", "trailer", "content-length"}

// String returns the op's name.
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

// Sizes are the sizes of OpWrite: around net/http's 2 KiB buffer and a 4 KiB body limit a test may set.
var Sizes = [...]int{0, 1, 100, 1500, 2100, 3000, 5000}

// Statuses are the final statuses of OpStatus.
var Statuses = [...]int{200, 201, 203, 204, 301, 304, 404, 410, 500, 503}

// Fields are the header fields of OpSetHeader and OpDelHeader: some make a response unshareable
// (private, no-store, Set-Cookie, an event stream), some are validators, some plain.
var Fields = [...][2]string{
	{"Content-Type", "text/plain; charset=utf-8"},
	{"Content-Type", "text/event-stream"},
	{"Cache-Control", "public, max-age=60"},
	{"Cache-Control", "private"},
	{"Cache-Control", "no-store"},
	{"Set-Cookie", "session=1"},
	{"Etag", `"v1"`},
	{"Last-Modified", "Mon, 07 Dec 2026 10:00:00 GMT"},
	{"X-Custom", "one"},
	{"Vary", "Accept-Encoding"},
	{"Link", "</style.css>; rel=preload"},
	{"Cache-Control", "no-cache"},
	{"Trailer", "X-Trail"},
	{"X-Other", "two"},
	{"Location", "/elsewhere"},
}

// Step is one step of a script.
type Step struct {
	Op  Op
	Arg uint8
}

// String returns the step as "op:arg".
func (s Step) String() string { return fmt.Sprintf("%v:%d", s.Op, s.Arg) }

// Request is how a script's request is made.
type Request uint8

// The requests a script can be served.
const (
	ReqGet     Request = iota // a plain GET
	ReqHead                   // a HEAD
	ReqNoStore                // a GET with Cache-Control: no-store (a cache passes it through)
	ReqBody                   // a GET with a small body, for the steps that read it
	numRequests
)

// Script is a handler behaviour and the request it answers.
type Script struct {
	Request Request
	Steps   []Step
}

// MaxSteps bounds a decoded script's length.
const MaxSteps = 24

// Decode makes a script of any bytes: the first selects the request, then each pair is a step. Every
// input decodes, so a fuzzer explores scripts rather than a format.
func Decode(data []byte) Script {
	var s Script
	if len(data) == 0 {
		return s
	}
	s.Request = Request(data[0] % byte(numRequests))
	data = data[1:]
	for len(data) >= 2 && len(s.Steps) < MaxSteps {
		s.Steps = append(s.Steps, Step{Op: Op(data[0] % byte(numOps)), Arg: data[1]})
		data = data[2:]
	}
	return s
}

// Encode returns bytes that Decode turns into s.
func Encode(s Script) []byte {
	b := []byte{byte(s.Request)}
	for _, st := range s.Steps {
		b = append(b, byte(st.Op), st.Arg)
	}
	return b
}

// String returns the script in a readable form, for failure messages.
func (s Script) String() string {
	parts := make([]string, 0, len(s.Steps)+1)
	parts = append(parts, [...]string{"GET", "HEAD", "GET no-store", "GET with body"}[s.Request])
	for _, st := range s.Steps {
		parts = append(parts, st.String())
	}
	return strings.Join(parts, " ")
}

// BodyLen returns how many body bytes the script's writes add up to.
func (s Script) BodyLen() int {
	n := 0
	for _, st := range s.Steps {
		if st.Op == OpWrite {
			n += Sizes[int(st.Arg)%len(Sizes)]
		}
	}
	return n
}

// NewRequest returns the script's request for url.
func (s Script) NewRequest(url string) *http.Request {
	method := http.MethodGet
	if s.Request == ReqHead {
		method = http.MethodHead
	}
	var body *strings.Reader
	if s.Request == ReqBody {
		body = strings.NewReader("ping")
	}
	var r *http.Request
	if body != nil {
		r, _ = http.NewRequest(method, url, body)
	} else {
		r, _ = http.NewRequest(method, url, nil)
	}
	if s.Request == ReqNoStore {
		r.Header.Set("Cache-Control", "no-store")
	}
	return r
}
