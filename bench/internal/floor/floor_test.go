package floor

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHitReplaysWhatTheMissRecorded(t *testing.T) {
	var runs atomic.Int64
	h := New().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("body of " + r.URL.RawQuery))
	}))
	for i := range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x?a=1", nil))
		if rec.Code != http.StatusTeapot || rec.Body.String() != "body of a=1" || rec.Header().Get("Content-Type") != "text/plain" {
			t.Fatalf("request %d: %d %q %v", i, rec.Code, rec.Body, rec.Header())
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", runs.Load())
	}
	// Another query is another key.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x?a=2", nil))
	if rec.Body.String() != "body of a=2" || runs.Load() != 2 {
		t.Fatalf("other query: %q after %d runs", rec.Body, runs.Load())
	}
}

func TestConcurrentMissesRunTheHandlerOnce(t *testing.T) {
	var runs atomic.Int64
	release := make(chan struct{})
	h := New().Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		<-release
		_, _ = w.Write([]byte("once"))
	}))
	const n = 50
	var started, wg sync.WaitGroup
	started.Add(n)
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() {
			started.Done()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/same", nil))
			bodies[i] = rec.Body.String()
		})
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let the requests reach the singleflight group
	close(release)
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times for %d concurrent requests, want 1", runs.Load(), n)
	}
	for i, b := range bodies {
		if b != "once" {
			t.Fatalf("request %d got %q", i, b)
		}
	}
}

func TestOtherMethodsPassThrough(t *testing.T) {
	var runs atomic.Int64
	c := New()
	h := c.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { runs.Add(1) }))
	for range 2 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/p", nil))
	}
	if runs.Load() != 2 || c.Len() != 0 {
		t.Fatalf("POST: %d runs, %d entries; want 2 and 0", runs.Load(), c.Len())
	}
}

func TestFuncCachesValuesNotErrors(t *testing.T) {
	f := NewFunc[string](100, time.Hour)
	ctx := context.Background()
	var loads int
	load := func() (string, error) { loads++; return "v", nil }
	for range 3 {
		if v, err := f.Do(ctx, "k", load); v != "v" || err != nil {
			t.Fatalf("Do: %q, %v", v, err)
		}
	}
	boom := errors.New("boom")
	for range 2 {
		if _, err := f.Do(ctx, "bad", func() (string, error) { loads++; return "", boom }); !errors.Is(err, boom) {
			t.Fatalf("Do on a failing load: %v", err)
		}
	}
	if loads != 3 {
		t.Fatalf("%d loads, want 1 for the cached key and 2 for the failing one", loads)
	}
}
