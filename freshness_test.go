package stampede

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// TestFreshnessOf pins how a response's lifetime, stale windows and store TTL are decided (RFC 9111
// §4.2.1, §4.2.2, RFC 5861, and the options).
func TestFreshnessOf(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type want struct{ lifetime, swr, sie, keep, store time.Duration }
	tests := []struct {
		name   string
		opts   []Option
		status int
		header http.Header
		want   want
	}{
		{"handler ttl is the heuristic", nil, 200, http.Header{}, want{lifetime: time.Minute, store: time.Minute}},
		{"no heuristic for a 500", nil, 500, http.Header{}, want{}},
		{"explicit freshness stores any status", nil, 500, cc("max-age=60"), want{lifetime: time.Minute, store: time.Minute}},
		{"302 with max-age", nil, 302, cc("max-age=5"), want{lifetime: 5 * time.Second, store: 5 * time.Second}},
		{"public makes a 500 heuristically cacheable", nil, 500, cc("public"), want{lifetime: time.Minute, store: time.Minute}},
		{"s-maxage wins", nil, 200, cc("max-age=10, s-maxage=20"), want{lifetime: 20 * time.Second, store: 20 * time.Second}},
		{"max-age overrides up", nil, 200, cc("max-age=3600"), want{lifetime: time.Hour, store: time.Hour}},
		{"invalid max-age is stale", nil, 200, cc("max-age=soon"), want{}},
		{"Expires - Date", nil, 200, http.Header{"Date": {httpDate(now)}, "Expires": {httpDate(now.Add(30 * time.Second))}},
			want{lifetime: 30 * time.Second, store: 30 * time.Second}},
		{"Expires: 0 is stale", nil, 200, http.Header{"Expires": {"0"}}, want{}},
		{"cap", []Option{WithMaxAgePolicy(MaxAgeCap)}, 200, cc("max-age=3600"), want{lifetime: time.Minute, store: time.Minute}},
		{"cap down", []Option{WithMaxAgePolicy(MaxAgeCap)}, 200, cc("max-age=5"), want{lifetime: 5 * time.Second, store: 5 * time.Second}},
		{"ignore", []Option{WithMaxAgePolicy(MaxAgeIgnore)}, 200, cc("max-age=5, stale-while-revalidate=9"), want{lifetime: time.Minute, store: time.Minute}},
		{"max-age=0 without validator not kept", nil, 200, cc("max-age=0"), want{}},
		{"max-age=0 with validator kept for revalidation", nil, 200, http.Header{"Cache-Control": {"max-age=0"}, "Etag": {`"a"`}},
			want{keep: DefaultKeep, store: DefaultKeep}},
		{"keep option", []Option{WithKeep(time.Hour)}, 200, http.Header{"Last-Modified": {httpDate(now)}}, want{lifetime: time.Minute, keep: time.Hour, store: time.Minute + time.Hour}},
		{"stale windows from options", []Option{WithStaleWhileRevalidate(time.Second), WithStaleIfError(time.Hour)}, 200, http.Header{},
			want{lifetime: time.Minute, swr: time.Second, sie: time.Hour, store: time.Minute + time.Hour}},
		{"stale windows from the response", []Option{WithStaleWhileRevalidate(time.Second)}, 200, cc("stale-while-revalidate=30, stale-if-error=600"),
			want{lifetime: time.Minute, swr: 30 * time.Second, sie: 10 * time.Minute, store: 11 * time.Minute}},
		{"must-revalidate: no configured stale windows", []Option{WithStaleWhileRevalidate(time.Second), WithStaleIfError(time.Hour)}, 200, cc("must-revalidate"),
			want{lifetime: time.Minute, store: time.Minute}},
		{"must-revalidate keeps its own stale-if-error", nil, 200, cc("must-revalidate, stale-if-error=5, stale-while-revalidate=5"),
			want{lifetime: time.Minute, sie: 5 * time.Second, store: time.Minute + 5*time.Second}},
		{"age counts against the lifetime", nil, 200, http.Header{"Cache-Control": {"max-age=60"}, "Age": {"50"}},
			want{lifetime: time.Minute, store: 10 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := New(nil, nil, time.Minute, tt.opts...)
			d, targeted := httpcache.ResponseDirectives(tt.header, c.cfg.targets)
			f := c.freshnessOf(tt.status, tt.header, &d, targeted, now, now)
			got := want{f.lifetime, f.swr, f.sie, f.keep, f.storeTTL}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func cc(s string) http.Header { return http.Header{"Cache-Control": {s}} }

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

func TestXFetchProbability(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_000_000, 0)
	v := entry.View{StoredAt: t0, Lifetime: 10 * time.Second, ComputeTime: 100 * time.Millisecond}
	count := func(at time.Duration) int {
		n := 0
		for range 10_000 {
			if xfetch(v.FreshUntil(), v.ComputeTime, t0.Add(at), 1) {
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
	if xfetch(v.FreshUntil(), v.ComputeTime, t0, 0) {
		t.Fatal("beta 0 turns it off")
	}
}

func TestHitHeadersOneAlloc(t *testing.T) {
	c := New(nil, nil, 0)
	h := http.Header{}
	n := testing.AllocsPerRun(100, func() { clear(h); c.formatHitHeaders(h, 42, 17, statusHit) })
	if n > 1 {
		t.Fatalf("Age + Cache-Status cost %v allocations, want 1", n)
	}
	if h.Get("Age") != "42" || h.Get("Cache-Status") != "stampede; hit; ttl=17" {
		t.Fatalf("got Age=%q Cache-Status=%q", h.Get("Age"), h.Get("Cache-Status"))
	}
}

// TestParsedOnce: an in-process store's entry is parsed once; its hits come from the annotation attached
// to it, cost no parse and no allocation for Age and Cache-Status within a second; new bytes under the
// same key are parsed (and checksummed) again.
func TestParsedOnce(t *testing.T) {
	store, err := memstore.New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := New(nil, store, time.Minute)
	ctx := context.Background()
	now := time.Unix(1_000_000, 0)
	b := entry.Encode(&entry.Entry{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x"), StoredAt: now, Lifetime: time.Minute})
	_ = store.SetEx(ctx, "k", b, time.Minute)
	get := func() (entry.View, *viewSlot, error) {
		got, _, _ := c.storeGet(ctx, "k")
		return c.parseStored("k", got.b, got.slot)
	}
	v1, slot, err := get()
	if err != nil || slot == nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = get() }); n != 0 {
		t.Fatalf("a hit on an annotated entry allocates %v times", n)
	}
	v2, slot2, _ := get()
	if slot2 != slot || v2.Status != v1.Status || string(v2.Body) != "x" {
		t.Fatal("the same bytes must come with their annotation")
	}
	h := http.Header{}
	c.setHitHeaders(h, &v2, now.Add(3*time.Second), statusHit, slot)
	if n := testing.AllocsPerRun(100, func() { clear(h); c.setHitHeaders(h, &v2, now.Add(3*time.Second), statusHit, slot) }); n != 0 {
		t.Fatalf("cached hit headers allocate %v times", n)
	}
	if h.Get("Age") != "3" || h.Get("Cache-Status") != "stampede; hit; ttl=57" {
		t.Fatalf("got Age=%q Cache-Status=%q", h.Get("Age"), h.Get("Cache-Status"))
	}
	corrupt := bytes.Clone(b)
	corrupt[len(corrupt)-1] ^= 1
	_ = store.SetEx(ctx, "k", corrupt, time.Minute)
	if _, _, err := get(); err == nil {
		t.Fatal("new bytes are checksummed")
	}
}

func TestVariantKeySharesSlot(t *testing.T) {
	t.Parallel()
	c := New(nil, nil, 0)
	primary, _, _ := c.key(mustRequest(t, "/v"))
	gen := []byte("0123456789abcdef")
	v := variantKeyFor(primary, gen, []string{"Accept-Language"}, http.Header{"Accept-Language": {"de"}})
	tag := func(s string) string { return s[strings.IndexByte(s, '{') : strings.IndexByte(s, '}')+1] }
	if tag(v.s) != tag(primary.s) || v.s == primary.s {
		t.Fatalf("variant %q must share the hash tag of %q and differ from it", v.s, primary.s)
	}
	w := variantKeyFor(primary, gen, []string{"Accept-Language"}, http.Header{"Accept-Language": {"fr"}})
	if w.s == v.s {
		t.Fatal("different values, different variants")
	}
	if x := variantKeyFor(primary, []byte("another-generati"), []string{"Accept-Language"}, http.Header{"Accept-Language": {"de"}}); x.s == v.s {
		t.Fatal("a new index generation must key its variants apart from the old ones")
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
