package stampede

import (
	"crypto/sha256"
	_ "embed" // the stats page
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// statsPage is the HTML page StatsHandler serves: self-contained, with its script and style inline, so it
// works without network access beyond the JSON it polls.
//
//go:embed statspage.html
var statsPage []byte

// statsPageCSP allows exactly the page's own inline script and style, and requests to its own origin:
// nothing else loads, even if a cache name smuggled markup into the page.
var statsPageCSP = "default-src 'none'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; " +
	"script-src " + inlineHash(statsPage, "script") + "; style-src " + inlineHash(statsPage, "style")

// inlineHash returns the CSP source expression for the contents of the first <tag> element of page.
func inlineHash(page []byte, tag string) string {
	s := string(page)
	start := strings.Index(s, "<"+tag+">")
	end := strings.Index(s, "</"+tag+">")
	if start < 0 || end < start {
		panic("stampede: stats page has no <" + tag + "> element")
	}
	sum := sha256.Sum256([]byte(s[start+len(tag)+2 : end]))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// statsResponse is the JSON StatsHandler serves.
type statsResponse struct {
	Time   time.Time  `json:"time"`
	UnixMs int64      `json:"time_unix_ms"` // Time in milliseconds, for scripts
	Caches []Snapshot `json:"caches"`
}

// StatsHandler returns a handler that reports the Snapshot of each source, in the order given: caches
// ([Cache.Snapshot]), loaders ([Loader.Snapshot]) and [Stampede]s alike, each with its Kind.
//
// It serves JSON when the request asks for it, with ?format=json or an Accept header that names
// application/json before text/html: {"time": ..., "time_unix_ms": ..., "caches": [snapshot, ...]}.
// Otherwise it serves an HTML page that shows each cache's counters, rates and a live chart of the
// hit ratio and handler runs per second, refreshed by polling the JSON every second. The page needs no
// external assets, so it works offline; mount it wherever you like, for example at /debug/stampede.
//
// The handler has no access control of its own: cache names and traffic figures are for operators, so
// serve it on an internal listener or behind authentication. It panics if a source is nil.
func StatsHandler(sources ...StatsSource) http.Handler {
	for _, c := range sources {
		if isNil(c) {
			panic("stampede: StatsHandler expects non-nil caches")
		}
	}
	caches := append([]StatsSource(nil), sources...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Vary", "Accept")
		if !wantsJSON(r) {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", statsPageCSP)
			if r.Method != http.MethodHead {
				_, _ = w.Write(statsPage)
			}
			return
		}
		now := time.Now()
		resp := statsResponse{Time: now, UnixMs: now.UnixMilli(), Caches: make([]Snapshot, len(caches))}
		for i, c := range caches {
			resp.Caches[i] = c.Snapshot()
		}
		h.Set("Content-Type", "application/json")
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp)
	})
}

// wantsJSON reports whether r asks for JSON: ?format=json, or an Accept header whose first listed type
// among application/json and text/html (ignoring those refused with q=0) is application/json.
func wantsJSON(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return true
	case "html":
		return false
	}
	for _, accept := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(accept, ",") {
			mediaType, params, _ := strings.Cut(part, ";")
			if refused(params) {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(mediaType)) {
			case "application/json":
				return true
			case "text/html":
				return false
			}
		}
	}
	return false
}

// refused reports whether media-type parameters carry q=0.
func refused(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(name, "q") {
			v := strings.TrimRight(strings.TrimSpace(value), "0")
			return v == "" || v == "0." || v == "0"
		}
	}
	return false
}
