package stampede

import (
	"net/http"
	"strings"
	"time"
)

// notModified reports whether a request's preconditions (RFC 9110 §13.1.2, §13.1.3) say the client
// already has the response whose validators are etag and lastModified, so it can get a 304 from the
// cache. If-None-Match, when present, decides alone (weak comparison); otherwise If-Modified-Since is
// compared with Last-Modified.
func notModified(r *http.Request, etag, lastModified string) bool {
	if inm := r.Header["If-None-Match"]; inm != nil {
		return etag != "" && etagListMatches(inm, etag)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" || lastModified == "" {
		return false
	}
	since, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	modified, err := http.ParseTime(lastModified)
	if err != nil {
		return false
	}
	return !modified.Truncate(time.Second).After(since)
}

// etagListMatches reports whether any entity tag in the If-None-Match field lines matches etag by weak
// comparison ("*" matches any current representation).
func etagListMatches(lines []string, etag string) bool {
	want := strings.TrimPrefix(etag, "W/")
	for _, line := range lines {
		for tok := range strings.SplitSeq(line, ",") {
			tok = strings.TrimSpace(tok)
			if tok == "*" || strings.TrimPrefix(tok, "W/") == want {
				return true
			}
		}
	}
	return false
}

// notModifiedHeaders are the headers a 304 keeps from the full response (RFC 9110 §15.4.5).
var notModifiedHeaders = [...]string{"Cache-Control", "Content-Location", "Date", "Etag", "Expires", "Vary", "Last-Modified"}
