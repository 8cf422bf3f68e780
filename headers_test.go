package stampede

import (
	"net/http"
	"testing"
)

func TestParseCacheControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want cacheControl
	}{
		{"empty", nil, cacheControl{maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
		{"mixed", []string{`Public, MAX-AGE=60, s-maxage="30"`, "stale-while-revalidate=5,stale-if-error=600"},
			cacheControl{public: true, maxAge: 60, sMaxAge: 30, staleWhileRevalidate: 5, staleIfError: 600}},
		{"qualified private with comma", []string{`private="Set-Cookie, X-A", max-age=5`},
			cacheControl{private: true, maxAge: 5, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
		{"bad numbers ignored", []string{"max-age=-1, s-maxage=abc, no-store, no-cache, must-revalidate"},
			cacheControl{noStore: true, noCache: true, mustRevalidate: true, maxAge: -1, sMaxAge: -1, staleWhileRevalidate: -1, staleIfError: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := parseCacheControl(tt.in); got != tt.want {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	f.Add(`public, max-age=60, private="a,b"`, "")
	f.Add(`no-store`, "")
	f.Add(`"unterminated, max-age=1`, "private")
	f.Add(`private="a\",no-store", s-maxage=5`, "PUBLIC")
	f.Add(`x-private, privateer, no-storex`, `max-age=1, max-age="2"`)
	f.Add(`must-revalidate,,, ,stale-while-revalidate=99999999999999999999`, `proxy-revalidate`)
	f.Fuzz(func(t *testing.T, s, u string) {
		checkCacheControl(t, s, u)
	})
}

func TestRecordable(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	for name, want := range map[string]bool{
		"Content-Type": true, "Etag": true, "Set-Cookie": false, "Connection": false, "Transfer-Encoding": false,
		"Access-Control-Allow-Origin": false, "X-Ratelimit-Remaining": false, "Proxy-Foo": false, "X-Hop": false,
		"Keep-Alive": false, "Upgrade": false, "Trailer": false, "Te": false,
	} {
		if got := c.recordable(name, []string{"x-hop"}); got != want {
			t.Errorf("recordable(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestVaryValueNormalises(t *testing.T) {
	t.Parallel()
	a := http.Header{"Accept-Encoding": {"gzip,br"}}
	b := http.Header{"Accept-Encoding": {"gzip, br"}}
	c := http.Header{"Accept-Encoding": {"gzip", "br"}}
	if varyValue(a, "Accept-Encoding") != varyValue(b, "Accept-Encoding") ||
		varyValue(b, "Accept-Encoding") != varyValue(c, "Accept-Encoding") {
		t.Fatal("trivially different lists must match")
	}
}
