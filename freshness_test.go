package stampede

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/internal/entry"
)

func TestFreshnessFor(t *testing.T) {
	t.Parallel()
	cc := func(s string) cacheControl { return parseCacheControl([]string{s}) }
	tests := []struct {
		name   string
		opts   []Option
		status int
		cc     string
		want   freshness
	}{
		{"handler ttl", nil, 200, "", freshness{ttl: time.Minute}},
		{"uncacheable status", nil, 500, "max-age=60", freshness{}},
		{"s-maxage wins", nil, 200, "max-age=10, s-maxage=20", freshness{ttl: 20 * time.Second}},
		{"max-age overrides up", nil, 200, "max-age=3600", freshness{ttl: time.Hour}},
		{"cap", []Option{WithMaxAgePolicy(MaxAgeCap)}, 200, "max-age=3600", freshness{ttl: time.Minute}},
		{"cap down", []Option{WithMaxAgePolicy(MaxAgeCap)}, 200, "max-age=5", freshness{ttl: 5 * time.Second}},
		{"ignore", []Option{WithMaxAgePolicy(MaxAgeIgnore)}, 200, "max-age=5, stale-while-revalidate=9", freshness{ttl: time.Minute}},
		{"max-age=0 not kept", nil, 200, "max-age=0", freshness{}},
		{"no-cache kept for revalidation", nil, 200, "no-cache", freshness{ttl: time.Minute, noCache: true}},
		{"stale windows from options", []Option{WithStaleWhileRevalidate(time.Second), WithStaleIfError(time.Hour)}, 200, "",
			freshness{ttl: time.Minute, swr: time.Second, sie: time.Hour}},
		{"stale windows from response", []Option{WithStaleWhileRevalidate(time.Second)}, 200, "stale-while-revalidate=30, stale-if-error=600",
			freshness{ttl: time.Minute, swr: 30 * time.Second, sie: 10 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(nil, nil, time.Minute, tt.opts...)
			if got := c.freshnessFor(tt.status, cc(tt.cc)); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := (freshness{ttl: time.Minute, swr: time.Second, sie: time.Hour}).storeTTL(); got != time.Hour+time.Minute {
		t.Fatalf("storeTTL = %v", got)
	}
}

func TestEntryState(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000, 0)
	v := entry.View{StoredAt: t0, TTL: 10 * time.Second, StaleWhileRevalidate: 5 * time.Second, StaleIfError: 60 * time.Second}
	for _, tc := range []struct {
		at   time.Duration
		want state
	}{{0, stateFresh}, {9 * time.Second, stateFresh}, {10 * time.Second, stateStaleSWR}, {14 * time.Second, stateStaleSWR},
		{15 * time.Second, stateStaleIfErr}, {69 * time.Second, stateStaleIfErr}, {70 * time.Second, stateExpired}} {
		if got := entryState(&v, t0.Add(tc.at)); got != tc.want {
			t.Errorf("at %v: got %v want %v", tc.at, got, tc.want)
		}
	}
	nc := entry.View{StoredAt: t0, TTL: 10 * time.Second, Flags: entry.FlagNoCache}
	if entryState(&nc, t0) != stateStaleIfErr {
		t.Error("a no-cache entry is never fresh: it is revalidated before use")
	}
}

func TestXFetchProbability(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000, 0)
	v := entry.View{StoredAt: t0, TTL: 10 * time.Second, ComputeTime: 100 * time.Millisecond}
	count := func(at time.Duration) int {
		n := 0
		for range 10_000 {
			if xfetch(&v, t0.Add(at), 1) {
				n++
			}
		}
		return n
	}
	early, near := count(time.Second), count(10*time.Second-50*time.Millisecond)
	// P(refresh) = exp(-(expiry-now)/delta): ~e^-90 at 1 s, ~e^-0.5 = 0.61 at 50 ms before expiry.
	if early != 0 || near < 5000 || near > 7000 {
		t.Fatalf("early=%d near=%d of 10000", early, near)
	}
	if xfetch(&v, t0, 0) {
		t.Fatal("beta 0 turns it off")
	}
}

func TestHitHeadersOneAlloc(t *testing.T) {
	c := New(nil, nil, 0)
	h := http.Header{}
	n := testing.AllocsPerRun(100, func() { c.setHitHeaders(h, 42*time.Second, 17*time.Second, statusHit) })
	if n > 1 {
		t.Fatalf("Age + Cache-Status cost %v allocations, want 1", n)
	}
	if h.Get("Age") != "42" || h.Get("Cache-Status") != "stampede; hit; ttl=17" {
		t.Fatalf("got Age=%q Cache-Status=%q", h.Get("Age"), h.Get("Cache-Status"))
	}
}

func TestNotModified(t *testing.T) {
	t.Parallel()
	lm := "Mon, 02 Jan 2006 15:04:05 GMT"
	tests := []struct {
		name       string
		hdr        map[string]string
		etag, last string
		want       bool
	}{
		{"etag match", map[string]string{"If-None-Match": `"a"`}, `"a"`, "", true},
		{"weak etag match", map[string]string{"If-None-Match": `W/"a"`}, `"a"`, "", true},
		{"list", map[string]string{"If-None-Match": `"x", "a"`}, `"a"`, "", true},
		{"star", map[string]string{"If-None-Match": `*`}, `"a"`, "", true},
		{"no match", map[string]string{"If-None-Match": `"b"`}, `"a"`, lm, false},
		{"inm wins over ims", map[string]string{"If-None-Match": `"b"`, "If-Modified-Since": lm}, `"a"`, lm, false},
		{"ims equal", map[string]string{"If-Modified-Since": lm}, "", lm, true},
		{"ims older", map[string]string{"If-Modified-Since": "Mon, 02 Jan 2006 15:04:04 GMT"}, "", lm, false},
		{"no validators", map[string]string{"If-None-Match": `"a"`}, "", "", false},
		{"garbage date", map[string]string{"If-Modified-Since": "yesterday"}, "", lm, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := http.NewRequest("GET", "/", nil)
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			if got := notModified(r, tt.etag, tt.last); got != tt.want {
				t.Fatalf("got %v want %v", got, tt.want)
			}
		})
	}
}

func TestVariantKeySharesSlot(t *testing.T) {
	t.Parallel()
	c := New(nil, nil, 0)
	primary, _, _ := c.key(mustRequest(t, "/v"))
	v := variantKeyFor(primary, []string{"Accept-Language"}, http.Header{"Accept-Language": {"de"}})
	tag := func(s string) string { return s[strings.IndexByte(s, '{') : strings.IndexByte(s, '}')+1] }
	if tag(v.s) != tag(primary.s) || v.s == primary.s {
		t.Fatalf("variant %q must share the hash tag of %q and differ from it", v.s, primary.s)
	}
	w := variantKeyFor(primary, []string{"Accept-Language"}, http.Header{"Accept-Language": {"fr"}})
	if w.s == v.s {
		t.Fatal("different values, different variants")
	}
}

func mustRequest(t *testing.T, target string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("GET", "http://h"+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
