package stampede_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// TestHandlerWithKeyNil: a nil key function is Handler, as in go-chi/stampede (whose Handler is
// HandlerWithKey(..., nil)); every shape of key function builds, anything else panics at build time.
func TestHandlerWithKeyNil(t *testing.T) {
	var runs atomic.Int64
	h := stampede.HandlerWithKey(nil, newMem(t), time.Minute, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		runs.Add(1)
		_, _ = w.Write([]byte("page"))
	}))
	srv, client := newServer(t, h, 2)
	first := get(t.Context(), client, srv.URL+"/p", nil)
	second := get(t.Context(), client, srv.URL+"/p", nil)
	require.NoError(t, first.err)
	assert.Equal(t, "MISS", first.header.Get("X-Cache"))
	// The first run's store write may still be on its way (it runs after the response): the second
	// request then joins that run instead of reading the store. Either way the handler ran once.
	assert.Contains(t, []string{"HIT", "COALESCED"}, second.header.Get("X-Cache"))
	assert.Equal(t, int64(1), runs.Load())

	tests := []struct {
		name    string
		keyFunc any
	}{
		{"nil KeyFunc", stampede.KeyFunc(nil)},
		{"KeyFunc", stampede.KeyFunc(func(*http.Request) (string, error) { return "", nil })},
		{"string literal", func(*http.Request) (string, error) { return "", nil }},
		{"CacheKeyFunc", stampede.CacheKeyFunc(func(*http.Request) (uint64, error) { return 1, nil })},
		{"uint64 literal", func(*http.Request) (uint64, error) { return 1, nil }},
		{"CredentialKeyFunc", stampede.PerCredential(func(*http.Request) (uint64, error) { return 1, nil })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.NotPanics(t, func() { stampede.HandlerWithKey(nil, nil, time.Minute, tc.keyFunc) })
		})
	}
	assert.PanicsWithValue(t, "stampede: a key function must be a KeyFunc, a CredentialKeyFunc, a CacheKeyFunc or nil, got string",
		func() { stampede.HandlerWithKey(nil, nil, time.Minute, "tenant") })
}

// TestCredentialKeyFunc: go-chi/stampede's with-key example, a key function over the method and the
// Authorization token, made a CredentialKeyFunc with PerCredential. A second request with the same
// token waits for the first and is answered from its run, then from the store; a request with another
// token never gets that page (docs/behaviour.md §2.3).
func TestCredentialKeyFunc(t *testing.T) {
	customCacheKeyFunc := stampede.PerCredential(func(r *http.Request) (uint64, error) {
		token := r.Header.Get("Authorization")
		return stampede.StringToHash(r.Method, strings.ToLower(strings.ToLower(token))), nil
	})
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	o := &origin{serve: func(w http.ResponseWriter, r *http.Request, run int64) {
		if run == 1 {
			entered <- struct{}{}
			<-gate
		}
		w.WriteHeader(200)
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	}}
	c := stampede.New(nil, newMem(t), 5*time.Second, stampede.WithCredentialKeyFunc(customCacheKeyFunc),
		stampede.WithHTTPCacheKeyRequestBody(false))
	joins := newJoinCounter(1)
	stampede.SetJoinHook(c, joins.hook)
	srv, client := newServer(t, c.Handler(o), 4)
	as := func(token string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", token) }
	}
	firstDone := make(chan reply, 1)
	go func() { firstDone <- get(context.Background(), client, srv.URL+"/me", as("Bar")) }()
	<-entered
	secondDone := make(chan reply, 1)
	go func() { secondDone <- get(context.Background(), client, srv.URL+"/me", as("Bar")) }()
	<-joins.reached
	close(gate)
	first, second := <-firstDone, <-secondDone
	c.Wait()
	assert.Equal(t, "Bar", first.body)
	assert.Equal(t, "MISS", first.header.Get("X-Cache"))
	assert.Equal(t, "Bar", second.body)
	assert.Equal(t, "COALESCED", second.header.Get("X-Cache"), "the second request is answered by the first's run")
	third := get(context.Background(), client, srv.URL+"/me", as("Bar"))
	assert.Equal(t, "HIT", third.header.Get("X-Cache"), "and later ones from the store")
	foo := get(context.Background(), client, srv.URL+"/me", as("Foo"))
	assert.Equal(t, "Foo", foo.body, "another credential gets its own page")
	assert.Equal(t, "MISS", foo.header.Get("X-Cache"))
	assert.Equal(t, int64(2), o.runs.Load())

	// The same function without the promise: a request with Authorization is not shared (§2.3).
	plain := stampede.HandlerWithKey(nil, newMem(t), 5*time.Second, func(r *http.Request) (uint64, error) {
		return stampede.StringToHash(r.Method, r.Header.Get("Authorization")), nil
	})(o)
	srv2, client2 := newServer(t, plain, 2)
	for range 2 {
		r := get(context.Background(), client2, srv2.URL+"/me", as("Bar"))
		assert.NotEqual(t, "HIT", r.header.Get("X-Cache"))
	}
	// A later WithKeyFunc drops the promise with the function it replaces.
	replaced := stampede.New(nil, newMem(t), time.Minute, stampede.WithCredentialKeyFunc(customCacheKeyFunc),
		stampede.WithKeyFunc(func(*http.Request) (string, error) { return "tenant", nil }))
	srv3, client3 := newServer(t, replaced.Handler(o), 2)
	get(context.Background(), client3, srv3.URL+"/me", as("Bar"))
	replaced.Wait()
	r := get(context.Background(), client3, srv3.URL+"/me", as("Foo"))
	assert.Equal(t, "Foo", r.body)
}

// TestStringToHash: go-chi's helpers hash their arguments written one after the other.
func TestStringToHash(t *testing.T) {
	assert.Equal(t, stampede.StringToHash("ab", "c"), stampede.StringToHash("a", "bc"))
	assert.NotEqual(t, stampede.StringToHash("a"), stampede.StringToHash("b"))
	assert.Equal(t, uint64(0), stampede.StringToHash())
	assert.Equal(t, stampede.StringToHash("abc"), stampede.BytesToHash([]byte("a"), []byte("bc")))
	assert.Equal(t, uint64(0), stampede.BytesToHash())
	assert.Equal(t, fmt.Sprint(stampede.DefaultCacheTTL), "1m0s")
}
