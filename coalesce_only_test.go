package stampede_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// TestCoalesceOnlyModes: a nil store, ttl == 0 and WithSkipCache(true) coalesce
// concurrent requests but store nothing (docs/behaviour.md §1); a nil logger means slog.Default.
func TestCoalesceOnlyModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		build func(store *memstore.Store) *stampede.Cache
	}{
		{"nil store", func(*memstore.Store) *stampede.Cache { return stampede.New(nil, nil, time.Minute) }},
		{"ttl zero", func(s *memstore.Store) *stampede.Cache { return stampede.New(nil, s, 0) }},
		{"WithTTL(0)", func(s *memstore.Store) *stampede.Cache { return stampede.New(nil, s, time.Minute, stampede.WithTTL(0)) }},
		{"skip cache", func(s *memstore.Store) *stampede.Cache {
			return stampede.New(nil, s, time.Minute, stampede.WithSkipCache(true))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newMem(t)
			c := tt.build(store)
			joins := newJoinCounter(2)
			stampede.SetJoinHook(c, joins.hook)
			entered := make(chan struct{}, 4)
			gate := make(chan struct{})
			o := &origin{entered: entered, serve: func(w http.ResponseWriter, _ *http.Request, n int64) {
				if n == 1 {
					<-gate
				}
				fmt.Fprintf(w, "run %d", n)
			}}
			h := c.Handler(o)
			results := make(chan *httptest.ResponseRecorder, 3)
			go func() { results <- serveDirect(h, httptest.NewRequest("GET", "/k", nil)) }()
			<-entered
			for range 2 {
				go func() { results <- serveDirect(h, httptest.NewRequest("GET", "/k", nil)) }()
			}
			<-joins.reached
			close(gate)
			for range 3 {
				assert.Equal(t, "run 1", (<-results).Body.String(), "concurrent requests share one run")
			}
			c.Wait()
			later := serveDirect(h, httptest.NewRequest("GET", "/k", nil))
			assert.Equal(t, "run 2", later.Body.String(), "nothing was stored")
			assert.Equal(t, "MISS", later.Header().Get("X-Cache"))
			assert.Zero(t, store.Len())
		})
	}
}

// TestHitForPassWindowEnds: after an unshareable response the key passes straight to the handler for the
// pass window (default 10 s, docs/behaviour.md §5.6), and is coalesced and cached again afterwards.
func TestHitForPassWindowEnds(t *testing.T) {
	t.Parallel()
	var private atomic.Bool
	private.Store(true)
	o := &origin{serve: func(w http.ResponseWriter, _ *http.Request, n int64) {
		if private.Load() {
			w.Header().Set("Cache-Control", "private")
		}
		fmt.Fprintf(w, "run %d", n)
	}}
	_, clock, do, _ := freshServer(t, o)
	assert.Equal(t, "MISS", do("/p").header.Get("X-Cache"))
	clock.Advance(9 * time.Second)
	assert.Equal(t, "BYPASS", do("/p").header.Get("X-Cache"), "inside the window")
	private.Store(false)
	assert.Equal(t, "BYPASS", do("/p").header.Get("X-Cache"), "still inside the window")
	clock.Advance(2 * time.Second)
	assert.Equal(t, "MISS", do("/p").header.Get("X-Cache"), "the window is over")
	assert.Equal(t, "HIT", do("/p").header.Get("X-Cache"))
}

// TestTypedNilStorePanics: a typed nil store (a nil pointer in the interface) is a configuration mistake
// that would panic on the first request; every constructor refuses it at once, with a message starting
// "stampede: ". An untyped nil still means coalesce only.
func TestTypedNilStorePanics(t *testing.T) {
	t.Parallel()
	var bytes *memstore.Store
	var values *memstore.Values[string]
	var anyValues *memstore.Values[any]
	load := func(context.Context, string) (string, error) { return "", nil }
	for name, build := range map[string]func(){
		"New":                   func() { stampede.New(nil, bytes, time.Minute) },
		"Handler":               func() { stampede.Handler(nil, bytes, time.Minute) },
		"NewStampede":           func() { stampede.NewStampede[string](nil, values) },
		"NewLoader, WithStore":  func() { stampede.NewLoader("l", load, stampede.WithStore(bytes)) },
		"NewLoader, WithValues": func() { stampede.NewLoader("l", load, stampede.WithValues(anyValues)) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				msg, _ := recover().(string)
				assert.True(t, strings.HasPrefix(msg, "stampede: "), "panic = %q", msg)
				assert.Contains(t, msg, "nil *memstore.")
			}()
			build()
		})
	}
}
