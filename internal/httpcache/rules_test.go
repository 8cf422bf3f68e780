package httpcache

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"
)

// TestShare pins RFC 9111 §3 (no-store, private, must-understand), §3.5 (Authorization), §3.3 (206),
// RFC 9110 §12.5.5 (Vary: *) and the cookie rule.
func TestShare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		header http.Header
		auth   bool
		want   Reason
	}{
		{"plain", 200, http.Header{}, false, OK},
		{"500 is shareable", 500, http.Header{}, false, OK},
		{"private", 200, http.Header{"Cache-Control": {"private"}}, false, ReasonPrivate},
		{"qualified private", 200, http.Header{"Cache-Control": {`private="x"`}}, false, ReasonPrivate},
		{"no-store", 200, http.Header{"Cache-Control": {"no-store"}}, false, ReasonNoStore},
		{"must-understand overrides no-store for an understood status", 200, http.Header{"Cache-Control": {"no-store, must-understand, max-age=5"}}, false, OK},
		{"must-understand with an unknown status", 299, http.Header{"Cache-Control": {"no-store, must-understand"}}, false, ReasonStatus},
		{"set-cookie", 200, http.Header{"Set-Cookie": {"a=b"}}, false, ReasonSetCookie},
		{"set-cookie2", 200, http.Header{"Set-Cookie2": {"a=b"}}, false, ReasonSetCookie},
		{"vary star", 200, http.Header{"Vary": {"Accept, *"}}, false, ReasonVaryStar},
		{"partial", 206, http.Header{}, false, ReasonPartial},
		{"authorization", 200, http.Header{"Cache-Control": {"max-age=5"}}, true, ReasonAuthorization},
		{"authorization + public", 200, http.Header{"Cache-Control": {"public"}}, true, OK},
		{"authorization + s-maxage", 200, http.Header{"Cache-Control": {"s-maxage=5"}}, true, OK},
		{"authorization + must-revalidate", 200, http.Header{"Cache-Control": {"must-revalidate"}}, true, OK},
		{"informational", 103, http.Header{}, false, ReasonStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ParseCacheControl(tt.header["Cache-Control"])
			if got := Share(tt.status, tt.header, &d, tt.auth); got != tt.want {
				t.Errorf("Share = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVaryValue pins RFC 9111 §4.1: list fields normalise, every other field matches exactly.
func TestVaryValue(t *testing.T) {
	t.Parallel()
	same := []struct {
		name string
		a, b http.Header
		hdr  string
	}{
		{"accept-language spacing", http.Header{"Accept-Language": {"en, fr"}}, http.Header{"Accept-Language": {"en,fr"}}, "Accept-Language"},
		{"accept split over lines", http.Header{"Accept": {"text/html", "application/json"}}, http.Header{"Accept": {"text/html, application/json"}}, "Accept"},
		{"accept-encoding is a set", http.Header{"Accept-Encoding": {"gzip, br"}}, http.Header{"Accept-Encoding": {"BR,gzip"}}, "Accept-Encoding"},
		{"accept parameters", http.Header{"Accept": {"text/html; q=0.5"}}, http.Header{"Accept": {"text/html;q=0.5"}}, "Accept"},
		{"empty list members", http.Header{"Accept": {"a,,b,"}}, http.Header{"Accept": {"a, b"}}, "Accept"},
	}
	for _, tt := range same {
		if a, b := VaryValue(tt.a, tt.hdr), VaryValue(tt.b, tt.hdr); a != b {
			t.Errorf("%s: %q != %q", tt.name, a, b)
		}
	}
	differ := []struct {
		name string
		a, b http.Header
		hdr  string
	}{
		{"non-list keeps a leading comma", http.Header{"X-Tenant": {",acme"}}, http.Header{"X-Tenant": {"acme"}}, "X-Tenant"},
		{"non-list keeps lines", http.Header{"X-Tenant": {"", "acme"}}, http.Header{"X-Tenant": {"acme"}}, "X-Tenant"},
		{"non-list keeps spaces", http.Header{"X-Tenant": {"a b"}}, http.Header{"X-Tenant": {"ab"}}, "X-Tenant"},
		{"absent vs empty", http.Header{}, http.Header{"X-Tenant": {""}}, "X-Tenant"},
		{"accept-language order matters", http.Header{"Accept-Language": {"en, fr"}}, http.Header{"Accept-Language": {"fr, en"}}, "Accept-Language"},
		{"case of a non-list value", http.Header{"X-Tenant": {"Acme"}}, http.Header{"X-Tenant": {"acme"}}, "X-Tenant"},
	}
	for _, tt := range differ {
		if a, b := VaryValue(tt.a, tt.hdr), VaryValue(tt.b, tt.hdr); a == b {
			t.Errorf("%s: both %q", tt.name, a)
		}
	}
	names, star := VaryNames(http.Header{"Vary": {"accept-encoding, Accept-Language", "ACCEPT-ENCODING"}})
	if star || !reflect.DeepEqual(names, []string{"Accept-Encoding", "Accept-Language"}) {
		t.Errorf("VaryNames = %q, %v", names, star)
	}
}

// TestEvaluate pins RFC 9110 §13.2.2's order of preconditions and the comparison functions of §8.8.3.2.
func TestEvaluate(t *testing.T) {
	t.Parallel()
	lm := t0.Add(-time.Hour)
	v := Validators{ETag: `"abc"`, LastModified: lm, HasLastModified: true}
	weak := Validators{ETag: `W/"abc"`, LastModified: lm, HasLastModified: true}
	tests := []struct {
		name string
		h    http.Header
		v    Validators
		want Precondition
	}{
		{"none", http.Header{}, v, Proceed},
		{"inm match", http.Header{"If-None-Match": {`"x", "abc"`}}, v, NotModified},
		{"inm weak match", http.Header{"If-None-Match": {`W/"abc"`}}, v, NotModified},
		{"inm star", http.Header{"If-None-Match": {"*"}}, v, NotModified},
		{"inm no match", http.Header{"If-None-Match": {`"x"`}}, v, Proceed},
		{"inm decides alone", http.Header{"If-None-Match": {`"x"`}, "If-Modified-Since": {httpDate(t0)}}, v, Proceed},
		{"ims not modified", http.Header{"If-Modified-Since": {httpDate(lm)}}, v, NotModified},
		{"ims modified", http.Header{"If-Modified-Since": {httpDate(lm.Add(-time.Second))}}, v, Proceed},
		{"ims invalid", http.Header{"If-Modified-Since": {"yesterday"}}, v, Proceed},
		{"if-match ok", http.Header{"If-Match": {`"abc"`}}, v, Proceed},
		{"if-match fails", http.Header{"If-Match": {`"x"`}}, v, Failed},
		{"if-match weak never matches", http.Header{"If-Match": {`W/"abc"`}}, weak, Failed},
		{"ius fails", http.Header{"If-Unmodified-Since": {httpDate(lm.Add(-time.Minute))}}, v, Failed},
		{"ius ok", http.Header{"If-Unmodified-Since": {httpDate(lm)}}, v, Proceed},
		{"ius without last-modified ignored", http.Header{"If-Unmodified-Since": {httpDate(lm.Add(-time.Minute))}}, Validators{ETag: `"abc"`}, Proceed},
	}
	for _, tt := range tests {
		if got := Evaluate(tt.h, tt.v); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// RFC 9111 §4.3.2: without Last-Modified, If-Modified-Since is evaluated against Date, else the
	// time stored.
	noLM := ResponseValidators(http.Header{"Date": {httpDate(lm)}}, t0)
	if Evaluate(http.Header{"If-Modified-Since": {httpDate(lm)}}, noLM) != NotModified {
		t.Error("If-Modified-Since against Date")
	}
}

// TestIfRange pins RFC 9110 §13.1.5.
func TestIfRange(t *testing.T) {
	t.Parallel()
	lm := t0.Add(-time.Hour)
	v := Validators{ETag: `"abc"`, LastModified: lm, HasLastModified: true}
	for _, tt := range []struct {
		val  string
		want bool
	}{{`"abc"`, true}, {`"x"`, false}, {`W/"abc"`, false}, {httpDate(lm), true}, {httpDate(lm.Add(time.Second)), false}, {"junk", false}} {
		if got := IfRangeMatches(http.Header{"If-Range": {tt.val}}, v); got != tt.want {
			t.Errorf("If-Range %q = %v, want %v", tt.val, got, tt.want)
		}
	}
	if !IfRangeMatches(http.Header{}, v) {
		t.Error("absent If-Range must match")
	}
}

// TestParseRange pins RFC 9110 §14.1.2 and §14.2.
func TestParseRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		size  int64
		kind  RangeKind
		r     ByteRange
	}{
		{"bytes=0-9", 100, OneRange, ByteRange{0, 9}},
		{"bytes=90-", 100, OneRange, ByteRange{90, 99}},
		{"bytes=-10", 100, OneRange, ByteRange{90, 99}},
		{"bytes=-1000", 100, OneRange, ByteRange{0, 99}},
		{"bytes=50-1000", 100, OneRange, ByteRange{50, 99}},
		{"Bytes = 1-2", 100, OneRange, ByteRange{1, 2}},
		{"bytes=100-", 100, Unsatisfiable, ByteRange{}},
		{"bytes=-0", 100, Unsatisfiable, ByteRange{}},
		{"bytes=0-0", 0, Unsatisfiable, ByteRange{}},
		{"bytes=5-1", 100, WholeBody, ByteRange{}},
		{"bytes=a-b", 100, WholeBody, ByteRange{}},
		{"items=0-1", 100, WholeBody, ByteRange{}},
		{"bytes=0-1,5-6", 100, WholeBody, ByteRange{}},
		{"bytes=200-300,400-", 100, Unsatisfiable, ByteRange{}},
		{"bytes=", 100, WholeBody, ByteRange{}},
		{"", 100, WholeBody, ByteRange{}},
		{"bytes=99999999999999999999999-", 100, Unsatisfiable, ByteRange{}},
	}
	for _, tt := range tests {
		kind, r := ParseRange(tt.value, tt.size)
		if kind != tt.kind || r != tt.r {
			t.Errorf("ParseRange(%q, %d) = %v %+v; want %v %+v", tt.value, tt.size, kind, r, tt.kind, tt.r)
		}
	}
	if got := (ByteRange{0, 9}).ContentRange(100); got != "bytes 0-9/100" {
		t.Errorf("ContentRange = %q", got)
	}
}

// FuzzParseRange checks that a satisfiable range always lies inside the body.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=7-", "bytes=1-2,3-4", "bytes=9-1", "bytes=-0"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, s string, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		kind, r := ParseRange(s, size)
		if kind == OneRange && (r.First < 0 || r.Last >= size || r.First > r.Last) {
			t.Fatalf("ParseRange(%q, %d) = %+v outside the body", s, size, r)
		}
	})
}

// TestFreshen pins RFC 9111 §3.2: the 304's fields replace the stored ones, but for hop-by-hop ones,
// Age and those describing the stored representation.
func TestFreshen(t *testing.T) {
	t.Parallel()
	stored := http.Header{"Etag": {`"a"`}, "Content-Type": {"text/plain"}, "Content-Length": {"5"}, "X-Old": {"1"},
		"Content-Encoding": {"gzip"}}
	merged := Freshen(stored, http.Header{"Etag": {`"b"`}, "X-Old": {"2"}, "X-New": {"3"}, "Content-Length": {"0"},
		"Connection": {"X-Hop"}, "X-Hop": {"h"}, "Keep-Alive": {"5"}, "Age": {"3"}, "Content-Encoding": {"br"},
		"Content-Md5": {"x"}, "Content-Type": {"text/html"}})
	want := http.Header{"Etag": {`"a"`}, "Content-Type": {"text/html"}, "Content-Length": {"5"}, "X-Old": {"2"}, "X-New": {"3"},
		"Content-Encoding": {"gzip"}}
	if !reflect.DeepEqual(merged, want) {
		t.Errorf("merged %v, want %v", merged, want)
	}
	if stored["X-Old"][0] != "1" {
		t.Error("Freshen modified the stored header")
	}
}

// TestInvalidation pins RFC 9111 §4.4.
func TestInvalidation(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		method string
		status int
		want   bool
	}{{"POST", 200, true}, {"PUT", 204, true}, {"DELETE", 303, true}, {"PATCH", 201, true}, {"FOO", 200, true},
		{"POST", 404, false}, {"POST", 500, false}, {"GET", 200, false}, {"HEAD", 200, false}, {"OPTIONS", 200, false}} {
		if got := Invalidates(tt.method, tt.status); got != tt.want {
			t.Errorf("Invalidates(%s, %d) = %v", tt.method, tt.status, got)
		}
	}
	target, _ := url.Parse("http://example.com/a/b")
	got := RelatedURIs(target, http.Header{"Location": {"/c"}, "Content-Location": {"http://other.example/d"}})
	if len(got) != 1 || got[0].String() != "http://example.com/c" {
		t.Errorf("RelatedURIs = %v", got)
	}
	got = RelatedURIs(target, http.Header{"Location": {"d#frag"}, "Content-Location": {"HTTP://EXAMPLE.COM/e"}})
	if len(got) != 2 || got[0].String() != "http://example.com/a/d" || got[1].Path != "/e" {
		t.Errorf("RelatedURIs = %v", got)
	}
}
