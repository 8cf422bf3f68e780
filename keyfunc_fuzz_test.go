package stampede

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// This file holds the properties the key fuzz targets check (docs/behaviour.md §3.1). Each is stated against a model
// of the canonical form written independently of keyfunc.go, so that "equivalent → same key" and
// "different → different key" are both checked, in both directions, on every input.

var fuzzKeyer = &keyer{prefix: "t:1:{"} // no memo: every key is hashed

func queryKey(q string) string {
	r := &http.Request{Method: "GET", Host: "h", URL: &url.URL{Path: "/p", RawQuery: q}}
	return fuzzKeyer.build(r, nil, "", false).s
}

func pathKey(u *url.URL) string {
	r := &http.Request{Method: "GET", Host: "h", URL: u}
	return fuzzKeyer.build(r, nil, "", false).s
}

// modelQuery is the canonical form of a raw query as a list: the non-empty &-separated pieces, each split
// at its first "=", each half decoded as url.ParseQuery decodes it (or the piece kept as sent, and
// flagged, when url.ParseQuery drops it: a half does not decode, or it holds a ";"), sorted stably by name. Two queries are equivalent exactly when their
// lists are equal: parameter order across names does not matter, the order of one name's values does.
func modelQuery(raw string) []string {
	type piece struct {
		name, value string
		raw         bool
	}
	var ps []piece
	for _, s := range strings.Split(raw, "&") {
		if s == "" {
			continue
		}
		name, value, _ := strings.Cut(s, "=")
		p := piece{name: name, value: value, raw: strings.Contains(s, ";")}
		n, err1 := url.QueryUnescape(name)
		v, err2 := url.QueryUnescape(value)
		if !p.raw && err1 == nil && err2 == nil {
			p.name, p.value = n, v
		} else {
			p.raw = true
		}
		ps = append(ps, p)
	}
	slices.SortStableFunc(ps, func(a, b piece) int { return strings.Compare(a.name, b.name) })
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = fmt.Sprintf("%t %q=%q", p.raw, p.name, p.value)
	}
	return out
}

// chooser hands out choices taken from fuzzed bytes, so one input also picks how to rewrite another.
type chooser struct {
	b string
	i int
}

func (c *chooser) next(n int) int {
	if len(c.b) == 0 {
		c.i++
		return c.i % n
	}
	v := int(c.b[c.i%len(c.b)]) + c.i/len(c.b)
	c.i++
	return v % n
}

// reencodeQueryPart returns an encoding of the decoded string s that url.QueryUnescape turns back into s.
func reencodeQueryPart(s string, ch *chooser) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' && ch.next(2) == 0:
			sb.WriteByte('+')
		case isUnreserved(c) && ch.next(3) != 0:
			sb.WriteByte(c)
		case ch.next(2) == 0:
			fmt.Fprintf(&sb, "%%%02X", c)
		default:
			fmt.Fprintf(&sb, "%%%02x", c)
		}
	}
	return sb.String()
}

// equivalentQuery rewrites q into a query with the same canonical form: every part re-encoded another
// way, pieces moved across names (the order within one name kept), empty pieces and "a" vs "a=" varied.
// ok is false when q has a piece url.ParseQuery drops (such pieces are keyed as sent).
func equivalentQuery(q string, ch *chooser) (string, bool) {
	type piece struct{ name, value string }
	var byName = map[string][]piece{}
	var names []string
	for _, s := range strings.Split(q, "&") {
		if s == "" {
			continue
		}
		n, v, _ := strings.Cut(s, "=")
		dn, err1 := url.QueryUnescape(n)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || strings.Contains(s, ";") {
			return "", false
		}
		if _, seen := byName[dn]; !seen {
			names = append(names, dn)
		}
		byName[dn] = append(byName[dn], piece{dn, dv})
	}
	// Interleave the names in a chosen order, keeping each name's values in order.
	var out []string
	for len(names) > 0 {
		i := ch.next(len(names))
		p := byName[names[i]][0]
		byName[names[i]] = byName[names[i]][1:]
		if len(byName[names[i]]) == 0 {
			names = slices.Delete(names, i, i+1)
		}
		s := reencodeQueryPart(p.name, ch)
		if p.value != "" || p.name == "" || ch.next(2) == 0 { // "=" must stay a piece
			s += "=" + reencodeQueryPart(p.value, ch)
		}
		out = append(out, s)
		if ch.next(4) == 0 {
			out = append(out, "") // an empty piece: "a=1&&b=2"
		}
	}
	return strings.Join(out, "&"), true
}

// checkQueryKeys: two raw queries share a key exactly when their canonical forms agree; q1 rewritten
// into an equivalent query keeps its key; q1 with one value changed does not.
func checkQueryKeys(t *testing.T, q1, q2 string) {
	t.Helper()
	k1, k2 := queryKey(q1), queryKey(q2)
	if same := slices.Equal(modelQuery(q1), modelQuery(q2)); same != (k1 == k2) {
		t.Fatalf("queries %q and %q: canonical forms equal %v, keys equal %v\n%q\n%q",
			q1, q2, same, k1 == k2, modelQuery(q1), modelQuery(q2))
	}
	if v1, err1 := url.ParseQuery(q1); err1 == nil {
		if v2, err2 := url.ParseQuery(q2); err2 == nil && (v1.Encode() == v2.Encode()) != (k1 == k2) {
			t.Fatalf("queries %q and %q: r.URL.Query() equal %v, keys equal %v", q1, q2, v1.Encode() == v2.Encode(), k1 == k2)
		}
	}
	ch := &chooser{b: q2}
	if eq, ok := equivalentQuery(q1, ch); ok {
		if queryKey(eq) != k1 {
			t.Fatalf("equivalent queries %q and %q have different keys", q1, eq)
		}
		if q1 != "" {
			if changed := eq + "x"; queryKey(changed) == k1 {
				t.Fatalf("queries %q and %q differ in a value but share a key", q1, changed)
			}
		}
	}
}

// checkPathKeys: two paths share a key exactly when the handler sees the same path in both, decoded
// (r.URL.Path) and as sent (r.URL.RawPath, which routers such as chi route on); a letter whose case is
// flipped changes the key.
func checkPathKeys(t *testing.T, u1, u2 *url.URL) {
	t.Helper()
	k1, k2 := pathKey(u1), pathKey(u2)
	if same := u1.Path == u2.Path && u1.RawPath == u2.RawPath; same != (k1 == k2) {
		t.Fatalf("paths %q and %q: seen alike by the handler %v, keys equal %v", u1.EscapedPath(), u2.EscapedPath(), same, k1 == k2)
	}
	e1 := u1.EscapedPath()
	for i := 0; i < len(e1); i++ {
		if c := e1[i]; ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') && (i < 1 || e1[i-1] != '%') && (i < 2 || e1[i-2] != '%') {
			flipped := e1[:i] + string(c^0x20) + e1[i+1:]
			if uf, err := url.Parse("http://h" + flipped); err == nil && uf.RawQuery == "" && uf.Fragment == "" && pathKey(uf) == k1 {
				t.Fatalf("paths %q and %q differ in case but share a key", e1, flipped)
			}
			break
		}
	}
}

// isUnreserved reports whether c is an unreserved URI character (RFC 3986 §2.3).
func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
