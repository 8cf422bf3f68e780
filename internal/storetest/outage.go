package storetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// Server is a database server a test may stop: internal/sqltest's Server.
type Server interface {
	Pause()
	Resume()
	Kill()
	Restart()
}

// RunOutage checks that s fails open while its server srv is paused and while it is killed: every call
// returns an error (errors.Is(err, timeout) for a paused server, whose connections stay open and
// silent) instead of hanging, the middleware in front of s answers every request from its handler,
// and once the server is back, s works again. s must be bounded by a short timeout of its own; how
// long the calls take is measured by the benchmarks, not asserted here: a call that has not returned
// after Patience is reported as hung.
func RunOutage(t *testing.T, s stampede.Store, srv Server, timeout error) {
	ctx := context.Background()
	k := key(t, "k")
	mustSet(t, s, k, []byte("v"), time.Hour)
	var runs atomic.Int64
	cache := stampede.New(slog.New(slog.DiscardHandler), s, time.Hour, stampede.WithKeyPrefix(fmt.Sprint("outage", time.Now().UnixNano())))
	front := httptest.NewServer(cache.Handler(counting(&runs)))
	defer front.Close()
	defer cache.Wait()

	calls := map[string]func() error{
		"Get":    func() error { _, _, err := s.Get(ctx, k); return err },
		"SetEx":  func() error { return s.SetEx(ctx, k, []byte("v"), time.Hour) },
		"Delete": func() error { return s.Delete(ctx, k) },
	}
	if b, ok := s.(stampede.BatchStore); ok {
		calls["BatchGet"] = func() error { _, err := b.BatchGet(ctx, []string{k, k + "2"}); return err }
	}
	if f, ok := s.(stampede.FencedStore); ok {
		calls["Ticket"] = func() error { _, err := f.Ticket(ctx, k, time.Hour); return err }
		calls["SetFenced"] = func() error {
			_, err := f.SetFenced(ctx, k, "t0.1", k, []byte("v"), time.Hour, []string{"tag"})
			return err
		}
		calls["Invalidate"] = func() error { return f.Invalidate(ctx, k) }
	}
	if ts, ok := s.(stampede.TagStore); ok {
		calls["PurgeTag"] = func() error { _, err := ts.PurgeTag(ctx, "tag"); return err }
	}
	if l, ok := s.(stampede.LeaseStore); ok {
		calls["TryLease"] = func() error { _, _, err := l.TryLease(ctx, k, time.Hour); return err }
	}

	expectFailures := func(t *testing.T, wantTimeout bool) {
		for name, call := range calls {
			err := returns(t, name, call)
			if err == nil {
				t.Errorf("%s succeeded while the server is down", name)
				continue
			}
			if wantTimeout && !errorsIs(err, timeout) {
				t.Errorf("%s: %v, want an error wrapping %v", name, err, timeout)
			}
		}
		// The middleware answers from its handler: no request fails.
		for i := range 5 {
			resp, err := http.Get(front.URL + fmt.Sprint("/down/", i))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("a request failed while the store was down: %d", resp.StatusCode)
			}
		}
	}
	recovered := func(t *testing.T) {
		eventually(t, "the store works again", func() bool {
			return s.SetEx(ctx, k, []byte("back"), time.Hour) == nil
		})
		for name, call := range calls {
			eventually(t, name+" works again", func() bool { return call() == nil })
		}
	}

	t.Run("paused", func(t *testing.T) {
		srv.Pause()
		resumed := false
		defer func() {
			if !resumed {
				srv.Resume()
			}
		}()
		expectFailures(t, true)
		srv.Resume()
		resumed = true
		recovered(t)
	})
	t.Run("killed", func(t *testing.T) {
		srv.Kill()
		expectFailures(t, false)
		srv.Restart()
		recovered(t)
	})
}

// returns runs call and returns its error, failing the test if it has not returned after Patience.
func returns(t *testing.T, name string, call func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		return err
	case <-time.After(Patience):
		t.Fatalf("%s hung: no answer after %v", name, Patience)
		return nil
	}
}
