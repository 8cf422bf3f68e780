package stampede_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// stallingStore is the real memory store with one fault injected: the first Get whose key matches
// returns what the store held at that moment, but only after the test lets it go. It reproduces a slow
// store (Redis) whose answer is stale by the time it arrives.
type stallingStore struct {
	*memstore.Store
	stalled chan struct{} // closed when the stalled Get has read the store
	release chan struct{} // the stalled Get returns once this is closed
	armed   chan struct{} // holds one token: the next Get stalls
}

func (s *stallingStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, ok, err := s.Store.Get(ctx, key)
	select {
	case <-s.armed:
		close(s.stalled)
		<-s.release
	default:
	}
	return b, ok, err
}

// TestStaleLookupDoesNotReload: a request whose store look-up missed, but answered only after another
// run stored the response and finished, must not run the handler again (SPEC §5.2).
func TestStaleLookupDoesNotReload(t *testing.T) {
	t.Parallel()
	store := &stallingStore{Store: newMem(t), stalled: make(chan struct{}), release: make(chan struct{}),
		armed: make(chan struct{}, 1)}
	c := stampede.New(nil, store, time.Minute)
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, _ int64) { _, _ = w.Write([]byte("once")) }}
	h := c.Handler(o)

	store.armed <- struct{}{}
	slow := make(chan *httptest.ResponseRecorder, 1)
	go func() { slow <- serveDirect(h, httptest.NewRequest("GET", "/k", nil)) }()
	<-store.stalled // the slow request has seen an empty store

	first := serveDirect(h, httptest.NewRequest("GET", "/k", nil)) // leads a run, stores, finishes
	c.Wait()
	assert.Equal(t, "MISS", first.Header().Get("X-Cache"))

	close(store.release) // the slow request now learns "miss", which is no longer true
	got := <-slow
	assert.Equal(t, "once", got.Body.String())
	assert.Equal(t, "HIT", got.Header().Get("X-Cache"))
	assert.EqualValues(t, 1, o.runs.Load(), "the handler must not run twice")
}
