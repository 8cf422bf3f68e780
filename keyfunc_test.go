package stampede

import (
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
	f.Add("q=a+b&r=%7E", "r=~&q=a%20b")
	f.Add("a=1;b=2", "a=1&b=2")
	f.Add("a%zz=b+c", "a%zz=b%20c")
	f.Add("a%3D1=2", "a=1%3D2")
	f.Fuzz(func(t *testing.T, q1, q2 string) {
		checkQueryKeys(t, q1, q2)
	})
}

// FuzzPathCanonical: two paths share a key exactly when the handler sees the same path in both.
func FuzzPathCanonical(f *testing.F) {
	f.Add("/%7Euser", "/~user")
	f.Add("/a%2Fb", "/a/b")
	f.Add("/User", "/user")
	f.Add("/a%2fb", "/a%2Fb")
	f.Add("/%41%42c", "/ABc")
	f.Add("/caf%C3%A9", "/caf%c3%a9")
	f.Add("/%25", "/%2525")
	f.Fuzz(func(t *testing.T, p1, p2 string) {
		u1, err1 := url.Parse("http://h" + "/" + strings.TrimPrefix(p1, "/"))
		u2, err2 := url.Parse("http://h" + "/" + strings.TrimPrefix(p2, "/"))
		if err1 != nil || err2 != nil || u1.RawQuery != "" || u2.RawQuery != "" || u1.Fragment != "" || u2.Fragment != "" {
			return
		}
		checkPathKeys(t, u1, u2)
	})
}
