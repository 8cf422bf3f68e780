package stampede_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/seed-a1426414/stampede"
)

// TestNonCanonicalHeaderNames: a handler that writes header names in another case (they reach the wire
// as written, and clients read them case-insensitively) is classified exactly as with canonical names.
func TestNonCanonicalHeaderNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  func(h http.Header, user string)
	}{
		{"set-cookie", func(h http.Header, user string) { h["set-cookie"] = []string{"session=" + user} }},
		{"cache-control private", func(h http.Header, _ string) { h["cache-control"] = []string{"private"} }},
		{"CACHE-CONTROL no-store", func(h http.Header, _ string) { h["CACHE-CONTROL"] = []string{"no-store"} }},
		{"vary", func(h http.Header, _ string) { h["vary"] = []string{"X-User"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := stampede.New(nil, newMem(t), time.Minute)
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				u := r.Header.Get("X-User")
				tt.set(w.Header(), u)
				fmt.Fprintf(w, "page for %s", u)
			}))
			as := func(user string) *httptest.ResponseRecorder {
				r := httptest.NewRequest("GET", "/me", nil)
				r.Header.Set("X-User", user)
				return serveDirect(h, r)
			}
			as("alice")
			c.Wait()
			bob := as("bob")
			assert.Equal(t, "page for bob", bob.Body.String())
			assert.NotContains(t, bob.Header().Values("Set-Cookie"), "session=alice")
		})
	}
}
