package stampede

// This file checks keyfunc.go against what a handler can see (docs/behaviour.md §3.1): a differential
// fuzz test over generated request targets, parsed as net/http's server parses them, that two requests
// share a key only when the handler's view of them is identical.

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// viewRouters are the routers whose view of a request is compared: chi's route parameters and pattern,
// and http.ServeMux's pattern values (or the redirect it answers instead, for a path it cleans).
var viewChi, viewMux = func() (http.Handler, http.Handler) {
	chiView := func(w http.ResponseWriter, r *http.Request) {
		rc := chi.RouteContext(r.Context())
		fmt.Fprintf(w, "%q %q %q", rc.RoutePattern(), rc.URLParams.Keys, rc.URLParams.Values)
	}
	cr := chi.NewRouter()
	for _, p := range []string{"/", "/{a}", "/{a}/{b}", "/x/{id}/*", "/s/{slug:[a-z-]+}", "/{a}/{b}/{c}"} {
		cr.Get(p, chiView)
	}
	muxView := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q %q %q %q %q", r.Pattern, r.PathValue("a"), r.PathValue("b"), r.PathValue("c"), r.PathValue("rest"))
	}
	mux := http.NewServeMux()
	for _, p := range []string{"GET /{$}", "GET /{a}", "GET /{a}/{b}", "GET /{a}/{b}/{c}", "GET /r/x/y/z/{rest...}"} {
		mux.HandleFunc(p, muxView)
	}
	return cr, mux
}()

// handlerView is everything a handler can see of r's target: the path decoded and as sent, the query
// as r.URL.Query() gives it, chi's route and http.ServeMux's pattern values.
func handlerView(r *http.Request) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "path=%q raw=%q query=", r.URL.Path, r.URL.RawPath)
	q := r.URL.Query()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range q {
			if !yield(n) {
				return
			}
		}
	})
	for _, n := range names {
		fmt.Fprintf(&sb, "%q:%q ", n, q[n])
	}
	for _, h := range []http.Handler{viewChi, viewMux} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r.Clone(r.Context()))
		loc, _, _ := strings.Cut(rec.Header().Get("Location"), "?") // a redirect repeats the query as sent
		fmt.Fprintf(&sb, " | %d %q %s", rec.Code, loc, rec.Body.String())
	}
	return sb.String()
}

// parseTarget parses target as net/http's server parses a request line; nil when it refuses it.
func parseTarget(target string) *http.Request {
	if strings.ContainsAny(target, " \r\n") {
		return nil
	}
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
	if err != nil {
		return nil
	}
	return r
}

// rewriteTarget returns a variant of target that often has the same key: bytes percent-encoded or
// decoded, hex digits in the other case, "+", "%20" and "%2B" swapped, ";" and "%3B" and "&" swapped,
// query pieces moved, empty pieces added, "a" and "a=" swapped, dot segments and empty segments added.
func rewriteTarget(target string, ch *chooser) string {
	path, query, hasQuery := strings.Cut(target, "?")
	var sb strings.Builder
	rewrite := func(s string, inQuery bool) {
		for i := 0; i < len(s); i++ {
			c := s[i]
			op := ch.next(12)
			switch {
			case op == 0 && c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
				sb.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2])) // decode
				i += 2
			case op == 1 && c == '%' && i+2 < len(s):
				hex := s[i : i+3]
				if lower := strings.ToLower(hex); lower != hex {
					sb.WriteString(lower)
				} else {
					sb.WriteString(strings.ToUpper(hex))
				}
				i += 2
			case op == 2 && c != '/' && c != '?' && c != '&' && c != '=':
				fmt.Fprintf(&sb, "%%%02X", c) // encode
			case op == 3 && inQuery && c == '+':
				sb.WriteString([]string{"%20", "%2B"}[ch.next(2)])
			case op == 3 && inQuery && c == ';':
				sb.WriteString([]string{"%3B", "&", "%3b"}[ch.next(3)])
			case op == 3 && inQuery && c == '&':
				sb.WriteString([]string{";", "&&", "%26"}[ch.next(3)])
			case op == 4 && inQuery && c == '=' && (i+1 == len(s) || s[i+1] == '&'):
				// "a=" becomes "a"
			case op == 4 && inQuery && c == '&':
				sb.WriteString("=&")
			case op == 5 && !inQuery && c == '/':
				sb.WriteString([]string{"/./", "//", "/x/../"}[ch.next(3)])
			default:
				sb.WriteByte(c)
			}
		}
	}
	rewrite(path, false)
	if hasQuery {
		sb.WriteByte('?')
		pieces := strings.Split(query, "&")
		if len(pieces) > 1 && ch.next(2) == 0 {
			i, j := ch.next(len(pieces)), ch.next(len(pieces))
			pieces[i], pieces[j] = pieces[j], pieces[i]
		}
		rewrite(strings.Join(pieces, "&"), true)
	}
	return sb.String()
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// FuzzKeyView is the differential test of "one key, one handler view": for a generated target and
// variants of it, every two requests that share a key must look the same to the handler (path, raw
// path, query, chi's route parameters, http.ServeMux's pattern values). Keys are computed with the
// memo, as served, and without it, and must agree.
func FuzzKeyView(f *testing.F) {
	for _, s := range []string{
		"/search?q=shoes;size=9", "/search?q=shoes%3Bsize=9", "/a/b?x=1&x=2&y=", "/caf%C3%A9/%2F?q=a+b%2B",
		"/a/./b/../c?q=%zz", "/x/1/rest?a&a=&b=1;2", "/ü?ü=ü", "/%7Euser//p?q=+", "/s/a-b?%3B=%26&;", "/?a=1&&b",
		"/x/%2F/y?q=%25", "/A/b%2fc?q=a%2Bb+c", "/a/b/c?=&=x", "/p?a=%E2%82%AC;b=%E2",
	} {
		f.Add(s, []byte{1, 7, 2, 9, 3})
	}
	// Found by make fuzz: "/x/../ü" is redirected by ServeMux with the raw query in it, so
	// "?0\xbc=\xc3%BC" and "?0\xbc=ü" must not share a key there (cleanPath).
	f.Add("/ü?0\xbc=ü", []byte("29c"))
	memoKeyer := &keyer{prefix: "t:1:{", memo: newKeyMemo()}
	f.Fuzz(func(t *testing.T, target string, ops []byte) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		views := map[string]string{} // key -> view
		targets := map[string]string{}
		ch := &chooser{b: string(ops)}
		for i := 0; i < 24; i++ {
			tg := target
			if i > 0 {
				tg = rewriteTarget(target, ch)
			}
			r := parseTarget(tg)
			if r == nil {
				continue
			}
			k := memoKeyer.build(r, nil, "", false).s
			if k2 := fuzzKeyer.build(r, nil, "", false).s; k2 != k {
				t.Fatalf("%q: key %s with the memo, %s without", tg, k, k2)
			}
			v := handlerView(r)
			if prev, ok := views[k]; ok && prev != v {
				t.Fatalf("%q and %q share a key but the handler sees them differently:\n%s\n%s", targets[k], tg, prev, v)
			}
			views[k], targets[k] = v, tg
		}
	})
}

// TestKeyViewSemicolon is the reported case: Go drops a query piece with a raw ";", so
// "?q=shoes;size=9" and "?q=shoes%3Bsize=9" are different requests to the handler.
func TestKeyViewSemicolon(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"raw semicolon vs encoded", "/search?q=shoes;size=9", "/search?q=shoes%3Bsize=9", false},
		{"raw semicolon vs ampersand", "/search?q=shoes;size=9", "/search?q=shoes&size=9", false},
		{"encodings of one query", "/search?q=shoes%3Bsize%3D9", "/search?q=shoes%3bsize%3d9", true},
		{"plus vs %20", "/search?q=a+b", "/search?q=a%20b", true},
		{"plus vs %2B", "/search?q=a+b", "/search?q=a%2Bb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ra, rb := parseTarget(tt.a), parseTarget(tt.b)
			ka, kb := fuzzKeyer.build(ra, nil, "", false), fuzzKeyer.build(rb, nil, "", false)
			if (ka.s == kb.s) != tt.same {
				t.Fatalf("%q and %q: same key %v, want %v", tt.a, tt.b, ka.s == kb.s, tt.same)
			}
			if tt.same && handlerView(ra) != handlerView(rb) {
				t.Fatalf("the handler sees %q and %q differently", tt.a, tt.b)
			}
		})
	}
}
