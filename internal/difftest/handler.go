package difftest

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Handler returns a handler that performs s. It behaves the same on every run, so a test can compare
// runs served differently.
func Handler(s Script) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { run(s, w, r) })
}

// run performs s on w. Steps that net/http refuses (a header change after the header was written,
// Content-Length after the body started) are performed anyway: what net/http then does is part of
// what is compared.
func run(s Script, w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	total := s.BodyLen()
	written := 0 // body bytes written so far, for their content
	started := false
	for _, st := range s.Steps {
		switch st.Op {
		case OpWrite:
			n := Sizes[int(st.Arg)%len(Sizes)]
			_, _ = w.Write(BodyBytes(written, n))
			written += n
			started = true
		case OpFlush:
			_ = rc.Flush()
			started = true
		case OpEarly:
			w.WriteHeader(http.StatusEarlyHints)
		case OpSetHeader:
			f := Fields[int(st.Arg)%len(Fields)]
			w.Header().Add(f[0], f[1])
		case OpDelHeader:
			w.Header().Del(Fields[int(st.Arg)%len(Fields)][0])
		case OpStatus:
			w.WriteHeader(Statuses[int(st.Arg)%len(Statuses)])
			started = true
		case OpDeadlinePast:
			_ = rc.SetWriteDeadline(time.Now().Add(-time.Second))
		case OpDeadlineExtend:
			_ = rc.SetWriteDeadline(time.Now().Add(time.Hour))
		case OpReadDeadline:
			_ = rc.SetReadDeadline(time.Now().Add(time.Hour))
			readBody(w, r)
			started = true
		case OpFullDuplex:
			_ = rc.EnableFullDuplex()
			readBody(w, r)
			started = true
		case OpHijack:
			if started {
				continue
			}
			conn, buf, err := rc.Hijack()
			if err != nil {
				_, _ = fmt.Fprintf(w, "hijack: %v\n", err)
				started = true
				continue
			}
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\nX-Hijacked: yes\r\n\r\nhijacked")
			_ = buf.Flush()
			_ = conn.Close()
			return
		case OpPanic:
			if st.Arg%2 == 0 {
				panic(http.ErrAbortHandler)
			}
			panic("difftest: scripted panic")
		case OpTrailer:
			if st.Arg%2 == 0 {
				w.Header().Set(http.TrailerPrefix+"X-Late", "late")
			} else {
				w.Header().Set("X-Trail", "declared")
			}
		case OpContentLength:
			w.Header().Set("Content-Length", strconv.Itoa(total+int(st.Arg%3)-1))
		}
	}
}

// readBody reads the request body and writes what it got, so the client sees whether the read worked.
func readBody(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	_, _ = fmt.Fprintf(w, "read %q err=%v\n", b, err != nil)
}

// BodyBytes returns the n body bytes a script writes from offset off: a position-dependent pattern, so
// a body with bytes lost, repeated or reordered differs from the whole one.
func BodyBytes(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte((off+i)%26)
	}
	if n > 0 && (off+n)%64 == 0 {
		b[n-1] = '\n'
	}
	return b
}
