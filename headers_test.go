package stampede

import (
	"net/http"
	"testing"

	"github.com/seed-a1426414/stampede/internal/entry"
)

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

// TestRecordedHeaderDecodes: whatever a handler sets, what is recorded encodes into an entry that
// decodes (names that are not tokens, such as "Trailer:"-prefixed trailers, and values with line breaks
// are left out).
func TestRecordedHeaderDecodes(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	own := http.Header{"Trailer:X-Checksum": {"abc"}, "X-Ok": {"1"}, "Bad Name": {"x"}, "X-Crlf": {"a\r\nb"}, "Set-Cookie2": {"a=b"}}
	got := c.recordedHeader(own)
	if len(got) != 1 || got.Get("X-Ok") != "1" {
		t.Fatalf("recorded %v", got)
	}
	b := entry.Encode(&entry.Entry{Status: 200, Header: got})
	if _, err := entry.Parse(b); err != nil {
		t.Fatal(err)
	}
}
