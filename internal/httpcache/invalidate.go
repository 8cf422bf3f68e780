package httpcache

import (
	"net/http"
	"net/url"
	"strings"
)

// Safe reports whether method is safe (RFC 9110 §9.2.1), so that its responses invalidate nothing.
func Safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Invalidates reports whether a response with status to a request with method makes a cache drop
// what it stored for the target URI (RFC 9111 §4.4): a non-error response (2xx or 3xx) to an unsafe
// method, including methods the cache does not know.
func Invalidates(method string, status int) bool {
	return !Safe(method) && status >= 200 && status < 400
}

// RelatedURIs returns the URIs, besides the target, whose stored responses such a response also
// invalidates (RFC 9111 §4.4): its Location and Content-Location, resolved against the target, when
// they have the target's scheme and host (a cache must not invalidate other origins on the word of one).
func RelatedURIs(target *url.URL, h http.Header) []*url.URL {
	var out []*url.URL
	for _, name := range [...]string{"Location", "Content-Location"} {
		v := strings.TrimSpace(first(h[name]))
		if v == "" {
			continue
		}
		u, err := target.Parse(v)
		if err != nil || !strings.EqualFold(u.Scheme, target.Scheme) || !strings.EqualFold(u.Host, target.Host) {
			continue
		}
		u.Fragment, u.RawFragment = "", ""
		out = append(out, u)
	}
	return out
}
