package stampede_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/seed-a1426414/stampede/backends/memstore"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newMem returns a real memory store with a budget large enough that nothing is evicted in a test.
func newMem(t testing.TB) *memstore.Store {
	t.Helper()
	s, err := memstore.New(256 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// origin is a handler that counts its runs and can hold them at a gate.
type origin struct {
	runs    atomic.Int64
	gate    chan struct{} // when non-nil, each run waits for it to close
	entered chan struct{} // when non-nil, each run sends on it first
	serve   func(w http.ResponseWriter, r *http.Request, run int64)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := o.runs.Add(1)
	if o.entered != nil {
		o.entered <- struct{}{}
	}
	if o.gate != nil {
		<-o.gate
	}
	o.serve(w, r, n)
}

// reply is what a client got.
type reply struct {
	status int
	header http.Header
	body   string
	err    error
}

func get(ctx context.Context, client *http.Client, url string, mod func(*http.Request)) reply {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return reply{err: err}
	}
	if mod != nil {
		mod(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

// serveDirect runs h for req on a recorder and returns it.
func serveDirect(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// newServer starts a real server for h whose client keeps up to n connections.
func newServer(t testing.TB, h http.Handler, n int) (*httptest.Server, *http.Client) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	client := srv.Client()
	tr := client.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = n
	tr.MaxIdleConns = n
	t.Cleanup(tr.CloseIdleConnections)
	return srv, client
}

// logBuffer is a slog handler target that tests can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(l *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// joinCounter counts requests that started waiting on another's run, and signals when n have.
type joinCounter struct {
	n       atomic.Int64
	want    int64
	reached chan struct{}
	once    sync.Once
}

func newJoinCounter(want int64) *joinCounter {
	return &joinCounter{want: want, reached: make(chan struct{})}
}

func (j *joinCounter) hook() {
	if j.n.Add(1) == j.want {
		j.once.Do(func() { close(j.reached) })
	}
}

// closing registers s's Close to run when the test ends, and returns s: a Redis store's Pub/Sub
// subscription (a cache or loader follows its invalidations) lives until the store is closed.
func closing[S interface{ Close() error }](tb testing.TB, s S) S {
	tb.Cleanup(func() { _ = s.Close() })
	return s
}
