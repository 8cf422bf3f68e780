package stampede

import (
	"fmt"
	"strings"
	"testing"
)

// modelDirectiveNames splits a Cache-Control field line into its directives' names, lower-cased, with a
// small state machine written independently of nextDirective: commas inside a quoted string (where a
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

func hasName(lines []string, want ...string) bool {
	for _, line := range lines {
		for _, n := range modelDirectiveNames(line) {
			for _, w := range want {
				if n == w {
					return true
				}
			}
		}
	}
	return false
}

// render writes cc back as a field line.
func (cc cacheControl) render() string {
	var parts []string
	for _, f := range []struct {
		on   bool
		name string
	}{{cc.noStore, "no-store"}, {cc.noCache, "no-cache"}, {cc.private, "private"}, {cc.public, "public"},
		{cc.mustRevalidate, "must-revalidate"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	for _, f := range []struct {
		v    int64
		name string
	}{{cc.maxAge, "max-age"}, {cc.sMaxAge, "s-maxage"}, {cc.staleWhileRevalidate, "stale-while-revalidate"},
		{cc.staleIfError, "stale-if-error"}} {
		if f.v >= 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.v))
		}
	}
	return strings.Join(parts, ", ")
}

func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// checkCacheControl is the fuzz property of the Cache-Control parser for two field lines s and t:
//   - a sharing directive is seen exactly when a directive of that name is present (no substring or
//     prefix matches, no comma inside quotes splitting a directive);
//   - durations are -1 (absent) or non-negative;
//   - directives accumulate across lines: nothing on a later line can take back private or no-store, and
//     an unterminated quote on one line cannot hide a directive on the next;
//   - names are case-insensitive;
//   - the parsed value rendered back to a line parses to itself.
func checkCacheControl(t *testing.T, s, u string) {
	t.Helper()
	lines := []string{s, u}
	cc := parseCacheControl(lines)
	for _, f := range []struct {
		got   bool
		names []string
	}{
		{cc.private, []string{"private"}}, {cc.noStore, []string{"no-store"}}, {cc.noCache, []string{"no-cache"}},
		{cc.public, []string{"public"}}, {cc.mustRevalidate, []string{"must-revalidate", "proxy-revalidate"}},
	} {
		if want := hasName(lines, f.names...); f.got != want {
			t.Fatalf("%q: %s parsed as %v, want %v", lines, f.names[0], f.got, want)
		}
	}
	if cc.maxAge < -1 || cc.sMaxAge < -1 || cc.staleIfError < -1 || cc.staleWhileRevalidate < -1 {
		t.Fatalf("negative duration from %q: %+v", lines, cc)
	}
	one := parseCacheControl([]string{s})
	if (one.private && !cc.private) || (one.noStore && !cc.noStore) {
		t.Fatalf("a later line took back private/no-store: %q", lines)
	}
	if !parseCacheControl([]string{s, "private"}).private || !parseCacheControl([]string{s, "no-store"}).noStore {
		t.Fatalf("a directive on its own line after %q was not seen", s)
	}
	if got := parseCacheControl([]string{upperASCII(s), upperASCII(u)}); got != cc {
		t.Fatalf("upper-casing %q changed the result:\n got %+v\nwant %+v", lines, got, cc)
	}
	if got := parseCacheControl([]string{cc.render()}); got != cc {
		t.Fatalf("%q rendered as %q parses to %+v, want %+v", lines, cc.render(), got, cc)
	}
}
