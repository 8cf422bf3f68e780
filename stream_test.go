package stampede_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// The tests in this file pin streaming (docs/behaviour.md §5.5, §5.8): every client of a run is fed from
// its recording at its own pace, so no client stalls another, and the compute timeout bounds how long
// anyone waits for a run. They assert order and outcome, controlled by the test (gates, held sockets),
// never a duration.

// smallBuffers wraps a listener so that every accepted connection has small socket buffers: a client
// that stops reading stops its writer after a few kilobytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// newSmallBufferServer starts a real server for h whose connections have small send buffers.
func newSmallBufferServer(t *testing.T, h http.Handler, conns int) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	client := srv.Client()
	tr := client.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost, tr.MaxIdleConns = conns, conns, conns
	t.Cleanup(tr.CloseIdleConnections)
	return srv, client
}

// stalledClient sends a GET for path on a raw connection with a small receive buffer and never reads
// the response. Closing it ends the stall.
func stalledClient(t testing.TB, srv *httptest.Server, path string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	_, err = fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, srv.Listener.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pattern is n bytes that differ from offset to offset.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// TestSlowLeaderDoesNotStallWaiters: the first request for a cold key comes from a client that never
// reads an 8 MB response (more than the socket buffers hold); a client that joins its run gets the
// whole body, byte for byte, while the slow client is still connected and has read nothing.
func TestSlowLeaderDoesNotStallWaiters(t *testing.T) {
	body := pattern(8 << 20)
	c := stampede.New(nil, newMem(t), time.Minute)
	joins := newJoinCounter(1)
	stampede.SetJoinHook(c, joins.hook)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		for off := 0; off < len(body); off += 32 << 10 {
			_, _ = w.Write(body[off : off+32<<10])
		}
	}}
	srv, client := newServer(t, c.Handler(o), 4)
	slow := stalledClient(t, srv, "/big")
	<-entered
	got := make(chan reply, 1)
	go func() { got <- get(t.Context(), client, srv.URL+"/big", nil) }()
	<-joins.reached
	close(gate)
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, "COALESCED", r.header.Get("X-Cache"))
	assert.True(t, bytes.Equal(body, []byte(r.body)), "the joining client gets the handler's bytes")
	assert.EqualValues(t, 1, o.runs.Load())
	slow.Close()
	c.Wait()
}

// TestNonReadersStallOnlyThemselves: 1,000 requests on one cold key, 100 of which never read: the other
// 900 get the whole body while the 100 are still connected, stalled.
func TestNonReadersStallOnlyThemselves(t *testing.T) {
	const total, stalled = 1000, 100
	body := pattern(256 << 10)
	c := stampede.New(nil, newMem(t), time.Minute)
	joins := newJoinCounter(total - 1)
	stampede.SetJoinHook(c, joins.hook)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}}
	srv, client := newSmallBufferServer(t, c.Handler(o), total)
	results := make(chan reply, total)
	go func() { results <- get(t.Context(), client, srv.URL+"/k", nil) }()
	<-entered
	for range stalled {
		stalledClient(t, srv, "/k")
	}
	for range total - stalled - 1 {
		go func() { results <- get(t.Context(), client, srv.URL+"/k", nil) }()
	}
	<-joins.reached
	close(gate)
	for range total - stalled {
		r := <-results
		require.NoError(t, r.err)
		assert.True(t, bytes.Equal(body, []byte(r.body)))
	}
	assert.EqualValues(t, 1, o.runs.Load())
	c.Wait()
}

// TestWaitersGetEachChunkAsWritten: a handler writes ten chunks, each released by the test; every
// client, the leading one included, has received chunk k before chunk k+1 is released, and every body
// is the handler's bytes.
func TestWaitersGetEachChunkAsWritten(t *testing.T) {
	t.Parallel()
	const chunks, clients = 10, 6
	chunk := func(k int) []byte { return bytes.Repeat([]byte{byte('a' + k)}, 1000+k) }
	c := stampede.New(nil, newMem(t), time.Minute)
	joins := newJoinCounter(clients - 1)
	stampede.SetJoinHook(c, joins.hook)
	entered := make(chan struct{}, 1)
	release := make([]chan struct{}, chunks)
	for k := range release {
		release[k] = make(chan struct{})
	}
	o := &origin{entered: entered, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for k := range chunks {
			<-release[k]
			_, _ = w.Write(chunk(k))
			_ = http.NewResponseController(w).Flush()
		}
	}}
	srv, client := newServer(t, c.Handler(o), clients)
	bodies := make(chan io.ReadCloser, clients)
	open := func() {
		resp, err := client.Get(srv.URL + "/chunks")
		if !assert.NoError(t, err) {
			bodies <- io.NopCloser(bytes.NewReader(nil))
			return
		}
		bodies <- resp.Body
	}
	go open()
	<-entered
	for range clients - 1 {
		go open()
	}
	<-joins.reached
	close(release[0]) // the header and the first chunk go out together
	var open_ []io.ReadCloser
	for range clients {
		open_ = append(open_, <-bodies)
	}
	for k := range chunks {
		if k > 0 {
			close(release[k])
		}
		for i, b := range open_ {
			got := make([]byte, len(chunk(k)))
			_, err := io.ReadFull(b, got)
			require.NoError(t, err, "client %d, chunk %d", i, k)
			require.Equal(t, chunk(k), got, "client %d, chunk %d", i, k)
		}
	}
	for _, b := range open_ {
		rest, err := io.ReadAll(b)
		assert.NoError(t, err)
		assert.Empty(t, rest)
		b.Close()
	}
	c.Wait()
}

// TestComputeTimeoutReleasesWaiters: a handler that ignores its context and blocks on a gate the test
// holds shut. Once the compute timeout passes, the requests waiting on the run are released to run the
// handler themselves (or, with a stale entry and stale-if-error, get it), and a later request is
// served without joining the stuck run, all while the gate is still shut.
func TestComputeTimeoutReleasesWaiters(t *testing.T) {
	t.Parallel()
	for _, withStale := range []bool{false, true} {
		t.Run(fmt.Sprint("stale=", withStale), func(t *testing.T) {
			t.Parallel()
			clock := newFakeClock()
			c := stampede.New(nil, newMem(t), time.Minute, stampede.WithClock(clock.Now),
				stampede.WithComputeTimeout(50*time.Millisecond), stampede.WithStaleIfError(time.Hour))
			joins := newJoinCounter(2)
			stampede.SetJoinHook(c, joins.hook)
			gate := make(chan struct{})
			entered := make(chan struct{}, 1)
			var stuck atomic.Bool
			var runs atomic.Int64
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				n := runs.Add(1)
				if stuck.CompareAndSwap(true, false) {
					entered <- struct{}{}
					<-gate // ignores its context
				}
				w.Header().Set("Cache-Control", "max-age=10")
				fmt.Fprint(w, "run ", n)
			})
			srv, client := newServer(t, c.Handler(h), 8)
			fetch := func() reply { return get(context.Background(), client, srv.URL+"/slow", nil) }
			if withStale {
				require.Equal(t, "run 1", fetch().body)
				c.Wait()
				clock.Advance(time.Minute)
			}
			stuck.Store(true)
			leader := make(chan reply, 1)
			go func() { leader <- fetch() }()
			<-entered
			waiters := make(chan reply, 2)
			for range 2 {
				go func() { waiters <- fetch() }()
			}
			<-joins.reached
			for range 2 {
				w := <-waiters // released by the compute timeout, gate still shut
				require.NoError(t, w.err)
				assert.Contains(t, w.header.Get("Cache-Status"), "compute-timeout")
				if withStale {
					assert.Equal(t, "run 1", w.body, "the stale entry")
					assert.Equal(t, "HIT", w.header.Get("X-Cache"))
				} else {
					assert.Equal(t, "BYPASS", w.header.Get("X-Cache"), "ran the handler itself")
				}
			}
			later := fetch() // does not join the stuck run
			require.NoError(t, later.err)
			assert.NotEqual(t, "COALESCED", later.header.Get("X-Cache"))
			close(gate)
			require.NoError(t, (<-leader).err)
			c.Wait()
		})
	}
}

// blockingWriter is a ResponseWriter whose Write blocks until released: a client that does not read.
type blockingWriter struct {
	header  http.Header
	release <-chan struct{}
	wrote   chan struct{}
	once    sync.Once
}

func (b *blockingWriter) Header() http.Header { return b.header }
func (b *blockingWriter) WriteHeader(int)     {}
func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.wrote) })
	<-b.release
	return len(p), nil
}

// TestWaiterMemory: 10,000 waiters stalled on one 8 MiB body hold the body once, plus a small constant
// each (about 1 KiB: its delivery state and its copy of the header values; its goroutine's stack is not
// heap). The constant is measured against the same 10,000 requests, writers and goroutines parked
// without the middleware, reported, and bounded at 4 KiB.
func TestWaiterMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const waiters, size = 10_000, 8 << 20
	body := pattern(size)
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	park := func(withMiddleware bool) int64 {
		c := stampede.New(nil, nil, 0) // coalesce only: nothing else holds the body
		joins := newJoinCounter(waiters)
		stampede.SetJoinHook(c, joins.hook)
		entered, gate, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
		h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(size))
			close(entered)
			<-gate
			_, _ = w.Write(body[:size/2])
			<-release
			_, _ = w.Write(body[size/2:])
		}))
		writers := make([]*blockingWriter, waiters+1)
		requests := make([]*http.Request, waiters+1)
		for i := range writers {
			writers[i] = &blockingWriter{header: http.Header{}, release: release, wrote: make(chan struct{})}
			requests[i] = httptest.NewRequest("GET", "/m", nil)
		}
		base := heap()
		var wg sync.WaitGroup
		serve := func(i int) {
			defer wg.Done()
			if withMiddleware {
				h.ServeHTTP(writers[i], requests[i])
				return
			}
			_, _ = writers[i].Write(nil) // parked, holding the same objects
		}
		wg.Add(1)
		go serve(0)
		if withMiddleware {
			<-entered
		}
		for i := 1; i <= waiters; i++ {
			wg.Add(1)
			go serve(i)
		}
		if withMiddleware {
			<-joins.reached
			close(gate)
		}
		for _, w := range writers {
			<-w.wrote
		}
		held := heap() - base
		close(release)
		wg.Wait()
		return held
	}
	bare, with := int64(park(false)), int64(park(true))
	held := with - bare
	t.Logf("10,000 waiters on an 8 MiB body: %.1f MiB held by the middleware: the body and %d bytes per waiter",
		float64(held)/(1<<20), (held-size)/waiters)
	assert.Less(t, held, int64(size+waiters*4096), "the body once, plus at most 4 KiB per waiter")
}

// TestPanicMidStreamCutsClients: a handler that panics after 1 MB of a 2 MB body, with waiters attached:
// every client that was sent part of it is cut off, none is sent a short body as whole, nothing is
// stored.
func TestPanicMidStreamCutsClients(t *testing.T) {
	t.Parallel()
	const size, clients = 2 << 20, 4
	body := pattern(size)
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute)
	joins := newJoinCounter(clients - 1)
	stampede.SetJoinHook(c, joins.hook)
	entered, gate, panicNow := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	firstHalf := make(chan struct{}, clients)
	o := &origin{entered: entered, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		<-gate
		_, _ = w.Write(body[:size/2])
		_ = http.NewResponseController(w).Flush()
		<-panicNow
		panic("mid-stream")
	}}
	srv := httptest.NewUnstartedServer(c.Handler(o))
	srv.Config.ErrorLog = discardLog()
	srv.Start()
	t.Cleanup(srv.Close)
	client := srv.Client()
	results := make(chan error, clients)
	fetch := func() {
		resp, err := client.Get(srv.URL + "/p")
		if err != nil {
			firstHalf <- struct{}{}
			results <- err
			return
		}
		defer resp.Body.Close()
		got := make([]byte, size/2)
		_, err = io.ReadFull(resp.Body, got)
		firstHalf <- struct{}{}
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		results <- err
	}
	go fetch()
	<-entered
	for range clients - 1 {
		go fetch()
	}
	<-joins.reached
	close(gate)
	for range clients {
		<-firstHalf // every client holds the first half: now the handler panics
	}
	close(panicNow)
	for range clients {
		assert.Error(t, <-results, "a client cut off mid-body sees an error, never a short body as whole")
	}
	c.Wait()
	assert.Zero(t, store.Len())
}

// TestLeaderLeavesMidStream: the leading client disconnects after the first part of the body; the run
// goes on, the waiters get the whole body, and it is stored.
func TestLeaderLeavesMidStream(t *testing.T) {
	t.Parallel()
	body := pattern(1 << 20)
	store := newMem(t)
	c := stampede.New(nil, store, time.Minute)
	joins := newJoinCounter(2)
	stampede.SetJoinHook(c, joins.hook)
	entered, rest := make(chan struct{}, 1), make(chan struct{})
	o := &origin{entered: entered, serve: func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body[:1000])
		_ = http.NewResponseController(w).Flush()
		<-rest
		_, _ = w.Write(body[1000:])
	}}
	srv, client := newServer(t, c.Handler(o), 4)
	ctx, cancel := context.WithCancel(t.Context())
	leaderGone := make(chan struct{})
	go func() {
		defer close(leaderGone)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/l", nil)
		resp, err := client.Do(req)
		if !assert.NoError(t, err) {
			return
		}
		_, _ = io.ReadFull(resp.Body, make([]byte, 1000))
		cancel()
		resp.Body.Close()
	}()
	<-entered
	waiters := make(chan reply, 2)
	for range 2 {
		go func() { waiters <- get(t.Context(), client, srv.URL+"/l", nil) }()
	}
	<-joins.reached
	<-leaderGone
	close(rest)
	for range 2 {
		r := <-waiters
		require.NoError(t, r.err)
		assert.True(t, bytes.Equal(body, []byte(r.body)))
	}
	c.Wait()
	assert.Equal(t, 1, store.Len(), "stored although its leading client left")
	assert.Equal(t, "HIT", get(t.Context(), client, srv.URL+"/l", nil).header.Get("X-Cache"))
}

// TestHeadWaiters: HEAD requests collapsed onto a run get the header only, the same Content-Length.
func TestHeadWaiters(t *testing.T) {
	t.Parallel()
	c := stampede.New(nil, newMem(t), time.Minute)
	joins := newJoinCounter(2)
	stampede.SetJoinHook(c, joins.hook)
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	o := &origin{entered: entered, gate: gate, serve: func(w http.ResponseWriter, r *http.Request, _ int64) {
		assert.Equal(t, "GET", r.Method, "a HEAD leader runs the handler as GET")
		w.Header().Set("Content-Length", "5")
		fmt.Fprint(w, "hello")
	}}
	srv, client := newServer(t, c.Handler(o), 4)
	head := func() (*http.Response, []byte, error) {
		resp, err := client.Head(srv.URL + "/h")
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	type res struct {
		resp *http.Response
		body []byte
		err  error
	}
	out := make(chan res, 3)
	go func() { r, b, err := head(); out <- res{r, b, err} }()
	<-entered
	for range 2 {
		go func() { r, b, err := head(); out <- res{r, b, err} }()
	}
	<-joins.reached
	close(gate)
	for range 3 {
		r := <-out
		require.NoError(t, r.err)
		assert.Empty(t, r.body)
		assert.Equal(t, "5", r.resp.Header.Get("Content-Length"))
	}
	c.Wait()
	assert.Equal(t, "hello", get(t.Context(), client, srv.URL+"/h", nil).body, "the GET entry was filled")
	assert.EqualValues(t, 1, o.runs.Load())
}

// discardLog is a server error log that drops what it is given (aborted responses are expected).
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
