package httpcache

import (
	"net/http"
	"reflect"
	"testing"
)

func valid(n int64) Delta { return Delta{Seconds: n, State: Valid} }

var invalid = Delta{State: Invalid}

// TestParseCacheControl pins RFC 9111 §5.2: case-insensitive names, both argument forms, quoted commas,
// duplicates, malformed arguments.
func TestParseCacheControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  Directives
	}{
		{"empty", nil, Directives{}},
		{"max-age", []string{"max-age=60"}, Directives{MaxAge: valid(60)}},
		{"case-insensitive name", []string{"Max-Age=60, PUBLIC"}, Directives{MaxAge: valid(60), Public: true}},
		{"quoted argument", []string{`max-age="60"`}, Directives{MaxAge: valid(60)}},
		{"whitespace", []string{" max-age = 60 ,no-cache "}, Directives{MaxAge: valid(60), NoCache: true}},
		{"two lines", []string{"max-age=60", "s-maxage=10"}, Directives{MaxAge: valid(60), SMaxAge: valid(10)}},
		{"duplicate, same value", []string{"max-age=60, max-age=60"}, Directives{MaxAge: valid(60)}},
		{"duplicate, conflicting: stale", []string{"max-age=60", "max-age=10"}, Directives{MaxAge: invalid}},
		{"negative: invalid", []string{"max-age=-1"}, Directives{MaxAge: invalid}},
		{"decimal: invalid", []string{"max-age=1.5"}, Directives{MaxAge: invalid}},
		{"no argument: invalid", []string{"max-age"}, Directives{MaxAge: invalid}},
		{"empty argument: invalid", []string{"max-age="}, Directives{MaxAge: invalid}},
		{"huge: 2^31", []string{"max-age=99999999999999999999999"}, Directives{MaxAge: valid(MaxDelta)}},
		{"qualified private keeps private", []string{`private="set-cookie, x-user", max-age=5`},
			Directives{Private: true, PrivateFields: []string{"Set-Cookie", "X-User"}, MaxAge: valid(5)}},
		{"qualified no-cache", []string{`no-cache="x-a"`}, Directives{NoCache: true, NoCacheFields: []string{"X-A"}}},
		{"unknown directives ignored", []string{"foo, bar=1, baz=\"a,b\", max-age=3"}, Directives{MaxAge: valid(3)}},
		{"prefix of a name is not the name", []string{"no-storey, privately, max-ages=4"}, Directives{}},
		{"revalidation directives", []string{"must-revalidate, proxy-revalidate, must-understand, no-store, immutable, no-transform"},
			Directives{MustRevalidate: true, ProxyRevalidate: true, MustUnderstand: true, NoStore: true, Immutable: true, NoTransform: true}},
		{"stale extensions (RFC 5861)", []string{"stale-while-revalidate=30, stale-if-error=600"},
			Directives{StaleWhileRevalidate: valid(30), StaleIfError: valid(600)}},
		{"request directives", []string{"max-stale, min-fresh=5, only-if-cached"},
			Directives{MaxStaleAny: true, MinFresh: valid(5), OnlyIfCached: true}},
		{"max-stale with argument", []string{"max-stale=10"}, Directives{MaxStale: valid(10)}},
		{"escaped quote in a quoted string", []string{`foo="a\",b", max-age=1`}, Directives{MaxAge: valid(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := ParseCacheControl(tt.lines)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCacheControl(%q)\n got %+v\nwant %+v", tt.lines, got, tt.want)
			}
		})
	}
}

// TestParseTargeted pins RFC 9213 §2.1: a Structured Fields Dictionary; an invalid one is ignored.
func TestParseTargeted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		lines  []string
		want   Directives
		wantOK bool
	}{
		{"integer", []string{"max-age=60"}, Directives{MaxAge: valid(60)}, true},
		{"booleans and integers", []string{"no-store, s-maxage=5"}, Directives{NoStore: true, SMaxAge: valid(5)}, true},
		{"string argument for private", []string{`private="x-user"`}, Directives{Private: true, PrivateFields: []string{"X-User"}}, true},
		{"quoted delta is not an integer: invalid", []string{`max-age="60"`}, Directives{MaxAge: invalid}, true},
		{"negative integer: invalid", []string{"max-age=-5"}, Directives{MaxAge: invalid}, true},
		{"decimal: invalid", []string{"max-age=5.5"}, Directives{MaxAge: invalid}, true},
		{"parameters are dropped", []string{"max-age=60;foo=bar, public"}, Directives{MaxAge: valid(60), Public: true}, true},
		{"later duplicate wins", []string{"max-age=60, max-age=5"}, Directives{MaxAge: valid(5)}, true},
		{"two lines are one dictionary", []string{"max-age=60", "public"}, Directives{MaxAge: valid(60), Public: true}, true},
		{"upper-case key: not a dictionary", []string{"Max-Age=60"}, Directives{}, false},
		{"trailing comma: not a dictionary", []string{"max-age=60,"}, Directives{}, false},
		{"garbage", []string{"max-age=60 junk"}, Directives{}, false},
		{"empty: ignored", []string{""}, Directives{}, false},
		{"unterminated string", []string{`private="x`}, Directives{}, false},
		{"inner list", []string{"private=(a b), max-age=3"}, Directives{Private: true, MaxAge: valid(3)}, true},
		{"boolean false still counts for no-store", []string{"no-store=?0, public=?0, max-age=2"}, Directives{NoStore: true, MaxAge: valid(2)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseTargeted(tt.lines)
			if ok != tt.wantOK || (ok && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("ParseTargeted(%q) = %+v, %v; want %+v, %v", tt.lines, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// TestResponseDirectives pins RFC 9213 §2.2: the cache's own field, then CDN-Cache-Control, then
// Cache-Control; an invalid targeted field falls through to the next.
func TestResponseDirectives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		header       http.Header
		target       string
		wantMaxAge   Delta
		wantTargeted bool
	}{
		{"cache-control only", http.Header{"Cache-Control": {"max-age=1"}}, "", valid(1), false},
		{"cdn wins", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2"}}, "", valid(2), true},
		{"own field wins", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2"}, "Stampede-Cache-Control": {"max-age=3"}},
			"Stampede-Cache-Control", valid(3), true},
		{"invalid own field falls to cdn", http.Header{"Cdn-Cache-Control": {"max-age=2"}, "Stampede-Cache-Control": {"MAX-AGE"}},
			"Stampede-Cache-Control", valid(2), true},
		{"invalid cdn falls to cache-control", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2,"}}, "", valid(1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, targeted := ResponseDirectives(tt.header, tt.target)
			if d.MaxAge != tt.wantMaxAge || targeted != tt.wantTargeted {
				t.Errorf("got max-age %+v targeted %v; want %+v %v", d.MaxAge, targeted, tt.wantMaxAge, tt.wantTargeted)
			}
		})
	}
}

func TestParseDeltaSeconds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{{"0", 0, true}, {"007", 7, true}, {"2147483648", MaxDelta, true}, {"99999999999999999999", MaxDelta, true},
		{"", 0, false}, {"+1", 0, false}, {"1 ", 0, false}, {"0x10", 0, false}} {
		got, ok := ParseDeltaSeconds(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDeltaSeconds(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzParseCacheControl checks the parser never panics, that a directive's state is always one of the
// three, and that adding a line can never take back private or no-store (a later line must not make a
// private response shareable).
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="a,b", max-age=1`, "no-store", `x="\"", s-maxage=9`, "max-age=1, max-age=2"} {
		f.Add(s, "public")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		d1 := ParseCacheControl([]string{a})
		d2 := ParseCacheControl([]string{a, b})
		if d1.Private && !d2.Private || d1.NoStore && !d2.NoStore {
			t.Fatalf("a second line took back private/no-store: %q + %q", a, b)
		}
		for _, d := range []Delta{d2.MaxAge, d2.SMaxAge, d2.StaleIfError, d2.StaleWhileRevalidate} {
			if d.State > Invalid || d.Seconds < 0 || d.Seconds > MaxDelta {
				t.Fatalf("bad delta %+v from %q", d, a)
			}
		}
	})
}

// FuzzParseTargeted checks the Structured Fields parser never panics and never yields a negative or
// oversized delta.
func FuzzParseTargeted(f *testing.F) {
	for _, s := range []string{"max-age=60", `private="x", no-store`, "a=(1 2);b, c=?1", "max-age=5.5", `s="\\"`, "*x=:aGk=:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseTargeted([]string{s})
		if !ok {
			return
		}
		for _, dl := range []Delta{d.MaxAge, d.SMaxAge, d.StaleIfError, d.StaleWhileRevalidate} {
			if dl.Seconds < 0 || dl.Seconds > MaxDelta {
				t.Fatalf("bad delta %+v from %q", dl, s)
			}
		}
	})
}
