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

// TestWithoutXCache: with WithoutXCache no response carries X-Cache, whatever its outcome, and every
// one still carries Cache-Status; without the option each carries both.
func TestWithoutXCache(t *testing.T) {
	t.Parallel()
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("off=%v", off), func(t *testing.T) {
			t.Parallel()
			var opts []stampede.Option
			if off {
				opts = append(opts, stampede.WithoutXCache())
			}
			c := stampede.New(nil, newMem(t), time.Minute, opts...)
			h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/private" {
					w.Header().Set("Cache-Control", "private")
				}
				fmt.Fprint(w, "body")
			}))
			for _, step := range []struct{ method, path, want string }{
				{"GET", "/a", "MISS"}, {"GET", "/a", "HIT"}, {"POST", "/a", "BYPASS"},
				{"GET", "/private", "MISS"}, {"GET", "/private", "BYPASS"},
			} {
				rec := serveDirect(h, httptest.NewRequest(step.method, step.path, nil))
				c.Wait()
				want := step.want
				if off {
					want = ""
				}
				assert.Equal(t, want, rec.Header().Get("X-Cache"), "%s %s", step.method, step.path)
				assert.NotEmpty(t, rec.Header().Get("Cache-Status"), "%s %s", step.method, step.path)
				assert.Equal(t, "body", rec.Body.String())
			}
		})
	}
}
