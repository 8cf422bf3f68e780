package stampede

import (
	"net/http"
	"strings"

	"github.com/seed-a1426414/stampede/internal/httpcache"
)

// recordedHeader returns the fields of own (the handler's own response fields) that may be recorded for
// other clients and the store: every field but the hop-by-hop ones and those the Connection field names
// (RFC 9110 §7.6.1), Set-Cookie and Set-Cookie2, the never-store list, and anything the entry format
// could not hold (a name that is not a token, such as a "Trailer:"-prefixed trailer, or a value with
// CR, LF or NUL). What it returns always encodes into an entry that decodes.
func (c *config) recordedHeader(own http.Header) http.Header {
	out := make(http.Header, len(own))
	connection := own["Connection"]
	for name, values := range own {
		if !c.recordable(name, connection) {
			continue
		}
		ok := true
		for _, v := range values {
			ok = ok && httpcache.ValidFieldValue(v)
		}
		if ok && len(values) > 0 {
			out[name] = values
		}
	}
	return out
}

// recordable reports whether a response field may be recorded for other clients.
func (c *config) recordable(name string, connection []string) bool {
	if !httpcache.ValidToken(name) || httpcache.HopByHop(name, connection) || strings.HasPrefix(name, "Proxy-") ||
		name == "Set-Cookie" || name == "Set-Cookie2" {
		return false
	}
	for _, n := range c.neverStore {
		if p, ok := strings.CutSuffix(n, "*"); ok {
			if strings.HasPrefix(name, p) {
				return false
			}
		} else if n == name {
			return false
		}
	}
	return true
}
