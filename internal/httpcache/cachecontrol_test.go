package httpcache

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
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
	cdn := []string{CDNCacheControl}
	own := []string{"Stampede-Cache-Control", CDNCacheControl}
	tests := []struct {
		name         string
		header       http.Header
		targets      []string
		wantMaxAge   Delta
		wantTargeted bool
	}{
		{"cache-control only", http.Header{"Cache-Control": {"max-age=1"}}, cdn, valid(1), false},
		{"cdn wins", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2"}}, cdn, valid(2), true},
		{"no targets: cdn ignored", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2"}}, nil, valid(1), false},
		{"own field wins", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2"}, "Stampede-Cache-Control": {"max-age=3"}},
			own, valid(3), true},
		{"invalid own field falls to cdn", http.Header{"Cdn-Cache-Control": {"max-age=2"}, "Stampede-Cache-Control": {"MAX-AGE"}},
			own, valid(2), true},
		{"invalid cdn falls to cache-control", http.Header{"Cache-Control": {"max-age=1"}, "Cdn-Cache-Control": {"max-age=2,"}}, cdn, valid(1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, targeted := ResponseDirectives(tt.header, tt.targets)
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

// modelDirectiveNames splits a Cache-Control field line into its directives' names, lower-cased, with a
// small state machine written independently of nextListItem: commas inside a quoted string (where a
// backslash escapes the next byte) do not separate directives.
func modelDirectiveNames(line string) []string {
	var names []string
	var cur strings.Builder
	quoted, escaped := false, false
	flush := func() {
		name, _, _ := strings.Cut(cur.String(), "=")
		names = append(names, strings.ToLower(strings.TrimSpace(name)))
		cur.Reset()
	}
	for _, c := range []byte(line) {
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			flush()
			continue
		}
		cur.WriteByte(c)
	}
	flush()
	return names
}

func hasName(lines []string, want string) bool {
	for _, line := range lines {
		if slices.Contains(modelDirectiveNames(line), want) {
			return true
		}
	}
	return false
}

// render writes d back as a field line.
func render(d Directives) string {
	var parts []string
	for _, f := range []struct {
		on   bool
		name string
	}{{d.NoStore, "no-store"}, {d.Public, "public"}, {d.MustRevalidate, "must-revalidate"},
		{d.ProxyRevalidate, "proxy-revalidate"}, {d.MustUnderstand, "must-understand"}, {d.NoTransform, "no-transform"},
		{d.Immutable, "immutable"}, {d.OnlyIfCached, "only-if-cached"}, {d.MaxStaleAny, "max-stale"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	for _, f := range []struct {
		on     bool
		fields []string
		name   string
	}{{d.NoCache, d.NoCacheFields, "no-cache"}, {d.Private, d.PrivateFields, "private"}} {
		switch {
		case f.on && len(f.fields) > 0:
			parts = append(parts, f.name+`="`+strings.Join(f.fields, ", ")+`"`)
		case f.on:
			parts = append(parts, f.name)
		}
	}
	for _, f := range []struct {
		d    Delta
		name string
	}{{d.MaxAge, "max-age"}, {d.SMaxAge, "s-maxage"}, {d.StaleWhileRevalidate, "stale-while-revalidate"},
		{d.StaleIfError, "stale-if-error"}, {d.MinFresh, "min-fresh"}, {d.MaxStale, "max-stale"}} {
		switch f.d.State {
		case Valid:
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.d.Seconds))
		case Invalid:
			parts = append(parts, f.name+"=invalid")
		}
	}
	return strings.Join(parts, ", ")
}

// FuzzParseCacheControl is the property of the Cache-Control parser for two field lines a and b:
//   - a sharing directive is seen exactly when a directive of that name is present (no substring or
//     prefix matches, no comma inside quotes splitting a directive);
//   - deltas are in range;
//   - directives accumulate across lines: nothing on a later line can take back private or no-store, and
//     an unterminated quote on one line cannot hide a directive on the next;
//   - names are case-insensitive;
//   - the parsed value rendered back to a line parses to itself.
func FuzzParseCacheControl(f *testing.F) {
	f.Add(`public, max-age=60, private="a,b"`, "")
	f.Add(`no-store`, "")
	f.Add(`"unterminated, max-age=1`, "private")
	f.Add(`private="a\",no-store", s-maxage=5`, "PUBLIC")
	f.Add(`x-private, privateer, no-storex`, `max-age=1, max-age="2"`)
	f.Add(`must-revalidate,,, ,stale-while-revalidate=99999999999999999999`, `proxy-revalidate`)
	f.Fuzz(func(t *testing.T, a, b string) {
		lines := []string{a, b}
		d := ParseCacheControl(lines)
		for _, c := range []struct {
			got  bool
			name string
		}{{d.Private, "private"}, {d.NoStore, "no-store"}, {d.NoCache, "no-cache"}, {d.Public, "public"},
			{d.MustRevalidate, "must-revalidate"}, {d.ProxyRevalidate, "proxy-revalidate"}} {
			if want := hasName(lines, c.name); c.got != want {
				t.Fatalf("%q: %s parsed as %v, want %v", lines, c.name, c.got, want)
			}
		}
		for _, dl := range []Delta{d.MaxAge, d.SMaxAge, d.StaleIfError, d.StaleWhileRevalidate, d.MinFresh, d.MaxStale} {
			if dl.State > Invalid || dl.Seconds < 0 || dl.Seconds > MaxDelta {
				t.Fatalf("bad delta %+v from %q", dl, lines)
			}
		}
		one := ParseCacheControl([]string{a})
		if (one.Private && !d.Private) || (one.NoStore && !d.NoStore) {
			t.Fatalf("a later line took back private/no-store: %q", lines)
		}
		if !ParseCacheControl([]string{a, "private"}).Private || !ParseCacheControl([]string{a, "no-store"}).NoStore {
			t.Fatalf("a directive on its own line after %q was not seen", a)
		}
		if got := ParseCacheControl([]string{strings.ToUpper(a), strings.ToUpper(b)}); !sameDirectives(got, d) {
			t.Fatalf("upper-casing %q changed the result:\n got %+v\nwant %+v", lines, got, d)
		}
		if got := ParseCacheControl([]string{render(d)}); !sameDirectives(got, d) {
			t.Fatalf("%q rendered as %q parses to %+v, want %+v", lines, render(d), got, d)
		}
	})
}

// sameDirectives compares two parses, field names included but not their order or duplicates.
func sameDirectives(a, b Directives) bool {
	norm := func(s []string) []string {
		s = slices.Clone(s)
		slices.Sort(s)
		return slices.Compact(s)
	}
	a.NoCacheFields, b.NoCacheFields = norm(a.NoCacheFields), norm(b.NoCacheFields)
	a.PrivateFields, b.PrivateFields = norm(a.PrivateFields), norm(b.PrivateFields)
	return reflect.DeepEqual(a, b)
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
