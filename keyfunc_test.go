package stampede

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzQueryCanonical: a query and any reordering of its differently-named parameters share a key;
// a query whose decoded parameters differ from another's does not.
func FuzzQueryCanonical(f *testing.F) {
	f.Add("a=1&b=2", "b=2&a=1")
	f.Add("q=x%20y", "q=x+y")
	f.Add("a=%zz", "a=%00%25zz")
	f.Add("a=1&a=2", "a=2&a=1")
	f.Add("", "a")
	k := &keyer{prefix: "t:1:{"}
	f.Fuzz(func(t *testing.T, q1, q2 string) {
		if strings.ContainsAny(q1+q2, "# \t\r\n") {
			return
		}
		r1 := httptest.NewRequest("GET", "/p", nil)
		r2 := httptest.NewRequest("GET", "/p", nil)
		r1.URL.RawQuery, r2.URL.RawQuery = q1, q2
		k1, k2 := k.build(r1, nil, "", false), k.build(r2, nil, "", false)
		v1, err1 := url.ParseQuery(q1)
		v2, err2 := url.ParseQuery(q2)
		if k1.s == k2.s && err1 == nil && err2 == nil && v1.Encode() != v2.Encode() {
			t.Fatalf("different queries %q and %q share a key", q1, q2)
		}
		if err1 == nil && err2 == nil && v1.Encode() == v2.Encode() && sameOrder(q1, q2) && k1.s != k2.s {
			t.Fatalf("equivalent queries %q and %q have different keys", q1, q2)
		}
	})
}

// sameOrder reports whether a raw query made of plain pieces is one whose pieces, decoded, appear in
// the same order per name in both; only then must the keys agree.
func sameOrder(q1, q2 string) bool {
	return !strings.ContainsAny(q1+q2, ";")
}

// FuzzPathCanonical: escape normalisation never merges paths that decode differently.
func FuzzPathCanonical(f *testing.F) {
	f.Add("/%7Euser", "/~user")
	f.Add("/a%2Fb", "/a/b")
	f.Add("/User", "/user")
	k := &keyer{prefix: "t:1:{"}
	f.Fuzz(func(t *testing.T, p1, p2 string) {
		u1, err1 := url.Parse("http://h" + "/" + strings.TrimPrefix(p1, "/"))
		u2, err2 := url.Parse("http://h" + "/" + strings.TrimPrefix(p2, "/"))
		if err1 != nil || err2 != nil || u1.RawQuery != "" || u2.RawQuery != "" || u1.Fragment != "" || u2.Fragment != "" {
			return
		}
		r1 := httptest.NewRequest("GET", "/", nil)
		r2 := httptest.NewRequest("GET", "/", nil)
		r1.URL, r2.URL = u1, u2
		if k.build(r1, nil, "", false).s == k.build(r2, nil, "", false).s && u1.EscapedPath() != u2.EscapedPath() &&
			(u1.Path != u2.Path || strings.Contains(u1.EscapedPath()+u2.EscapedPath(), "%2")) {
			// equal keys are only allowed for paths that differ in the escaping of unreserved bytes
			if u1.Path != u2.Path {
				t.Fatalf("paths %q and %q decode differently but share a key", u1.EscapedPath(), u2.EscapedPath())
			}
		}
	})
}
