package stampede_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

type statsJSON struct {
	Time   time.Time           `json:"time"`
	UnixMs int64               `json:"time_unix_ms"`
	Caches []stampede.Snapshot `json:"caches"`
}

// TestStatsHandlerNegotiation: JSON for ?format=json or an Accept header preferring it, HTML otherwise.
func TestStatsHandlerNegotiation(t *testing.T) {
	t.Parallel()
	h := stampede.StatsHandler(stampede.New(nil, nil, 0))
	tests := []struct {
		name, target, accept string
		json                 bool
	}{
		{"browser", "/debug/stampede", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"no accept", "/debug/stampede", "", false},
		{"format=json", "/debug/stampede?format=json", "text/html", true},
		{"format=html", "/debug/stampede?format=html", "application/json", false},
		{"accept json", "/debug/stampede", "application/json", true},
		{"accept json first", "/debug/stampede", "application/json, text/html", true},
		{"accept html first", "/debug/stampede", "text/html, application/json", false},
		{"json refused", "/debug/stampede", "application/json;q=0, text/html", false},
		{"json refused q=0.000", "/debug/stampede", "Application/JSON; q=0.000", false},
		{"json with low q", "/debug/stampede", "application/json;q=0.1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := serveDirect(h, req)
			require.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			assert.Equal(t, "Accept", rec.Header().Get("Vary"))
			if tt.json {
				assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
				var got statsJSON
				require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
				assert.Len(t, got.Caches, 1)
			} else {
				assert.Equal(t, "text/html; charset=utf-8", rec.Header().Get("Content-Type"))
				assert.Contains(t, rec.Body.String(), "<title>stampede stats</title>")
			}
		})
	}
}

// TestStatsHandlerJSON: the JSON holds each cache's Snapshot, in order, field for field.
func TestStatsHandlerJSON(t *testing.T) {
	t.Parallel()
	store := newMem(t)
	products := stampede.New(nil, store, time.Minute, stampede.WithName("products"))
	users := stampede.New(nil, nil, 0, stampede.WithName("users"))
	h := products.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "p") }))
	for range 3 {
		serveDirect(h, newGet("/p"))
		products.Wait()
	}
	serveDirect(h, httptest.NewRequest(http.MethodPost, "/p", nil))
	store.CleanUp() // the store's byte count settles, so two snapshots agree

	before := time.Now()
	rec := serveDirect(stampede.StatsHandler(products, users), newGet("/?format=json"))
	var got statsJSON
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	assert.WithinRange(t, got.Time, before, time.Now())
	assert.Equal(t, got.Time.UnixMilli(), got.UnixMs)
	require.Len(t, got.Caches, 2)
	want := products.Snapshot()
	require.NotNil(t, want.Memory)
	assert.Same(t, store, want.Memory.Store)
	want.Memory.Store = nil // the store itself is not in the JSON
	assert.Equal(t, want, got.Caches[0], "nothing ran since: the snapshots are equal")
	assert.Equal(t, users.Snapshot(), got.Caches[1])
	assert.Equal(t, counts{Requests: 4, Misses: 1, Runs: 1, Hits: 2, Passes: 1,
		PassReasons: reasonCounts("method", 1), Unshareable: map[string]uint64{}}, countsOf(got.Caches[0]))
	assert.NotNil(t, got.Caches[0].Memory)
	assert.Nil(t, got.Caches[1].Memory)

	// Field names are the documented snake_case ones.
	var raw struct {
		Caches []map[string]any `json:"caches"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	for _, name := range []string{"name", "requests", "hits", "stale_hits", "misses", "coalesced", "abandoned",
		"passes", "pass_reasons", "runs", "failures", "panics", "handler_time_ns", "avg_handler_time_ns",
		"handler_time_histogram", "unshareable", "store_get_errors", "store_set_errors", "breaker_open",
		"breaker_trips", "memory", "hit_rate", "miss_rate", "load_failure_rate", "collapse_ratio"} {
		assert.Contains(t, raw.Caches[0], name)
	}
}

// TestStatsHandlerPage: the page is self-contained, and its CSP admits exactly its inline script and
// style.
func TestStatsHandlerPage(t *testing.T) {
	t.Parallel()
	rec := serveDirect(stampede.StatsHandler(), newGet("/"))
	page := rec.Body.String()
	for _, external := range []string{"src=", "href=", "url(", "@import", "//cdn", "<link"} {
		assert.NotContains(t, page, external, "the page must load nothing from elsewhere")
	}
	csp := rec.Header().Get("Content-Security-Policy")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "connect-src 'self'")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`).FindStringSubmatch(page)
		require.NotNil(t, m, tag)
		sum := sha256.Sum256([]byte(m[1]))
		assert.Contains(t, csp, tag+"-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
}

// TestStatsHandlerMethods: only GET and HEAD; HEAD has no body.
func TestStatsHandlerMethods(t *testing.T) {
	t.Parallel()
	h := stampede.StatsHandler(stampede.New(nil, nil, 0))
	rec := serveDirect(h, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("")))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
	for _, target := range []string{"/", "/?format=json"} {
		rec = serveDirect(h, httptest.NewRequest(http.MethodHead, target, nil))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Zero(t, rec.Body.Len())
	}
	assert.PanicsWithValue(t, "stampede: StatsHandler expects non-nil caches", func() { stampede.StatsHandler(nil) })
}
