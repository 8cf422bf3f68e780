package stampede

import (
	"context"
	"net/http"
	"net/url"

	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// statusRecorder notes the status a pass-through handler answered, for invalidation.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code < 100 || code > 199) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap returns the client's writer, for http.NewResponseController.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// serveUnsafe passes a request with an unsafe method to the handler and then, when the response is not
// an error, invalidates what is stored for its target URI and for its same-origin Location and
// Content-Location (RFC 9111 §4.4), in this process and, through a store that announces deletions, on
// every replica. The URI is keyed as a GET with the request's own key material (key headers, KeyFunc),
// with and without its Authorization: responses stored under other key material are left alone.
func (c *Cache) serveUnsafe(next http.Handler, w http.ResponseWriter, r *http.Request) {
	sw := &statusRecorder{ResponseWriter: w}
	next.ServeHTTP(sw, r)
	status := sw.status
	if status == 0 {
		status = http.StatusOK // what net/http sends for a handler that wrote nothing
	}
	if !httpcache.Invalidates(r.Method, status) {
		return
	}
	target := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	if r.TLS != nil {
		target.Scheme = "https"
	}
	if target.Host == "" {
		target.Host = r.URL.Host
	}
	uris := append([]*url.URL{target}, httpcache.RelatedURIs(target, w.Header())...)
	ctx := context.WithoutCancel(r.Context())
	for _, u := range uris {
		g := r.Clone(ctx)
		g.Method, g.Body, g.ContentLength = http.MethodGet, http.NoBody, 0
		g.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
		g.Host = u.Host
		c.invalidate(ctx, g)
	}
}

// invalidate drops what is stored for the GET request g, in both key spaces (with and without an unkeyed
// Authorization).
func (c *Cache) invalidate(ctx context.Context, g *http.Request) {
	keys, reason := c.urlKeys(g)
	if reason != "" {
		return
	}
	for _, k := range keys {
		_ = c.drop(ctx, k)
	}
}
