package stampede_test

// This file covers what Purge and PurgeTag reach (purge.go, tags.go): every key space and every Vary
// variant of a URL, and every tag of a stored response.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// TestPurgeEverySpaceAndVariant: Purge of an admin's request that carries Authorization removes the
// URL's entries in every key space it reaches (the public one, the admin's own, the unkeyed-Authorization
// one) and every Vary variant, through a real server and a memory store.
func TestPurgeEverySpaceAndVariant(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []stampede.Option
	}{
		{"authorization unkeyed, public responses", nil},
		{"authorization a key header", []stampede.Option{stampede.WithHTTPCacheKeyRequestHeaders([]string{"Authorization"})}},
		{"credential key function", []stampede.Option{stampede.WithCredentialKeyFunc(func(r *http.Request) (string, error) {
			return r.Header.Get("Authorization"), nil
		})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Cache-Control", "public, max-age=60")
				w.Header().Set("Vary", "Accept-Language")
				fmt.Fprintf(w, "run %d", n)
			}}
			c := stampede.New(nil, newMem(t), time.Minute, tt.opts...)
			srv, client := newServer(t, c.Handler(o), 8)
			type variant struct{ auth, lang string }
			variants := []variant{{"", "en"}, {"", "fr"}, {"Bearer admin", "en"}, {"Bearer admin", "fr"}}
			fetch := func(v variant) string {
				r := get(t.Context(), client, srv.URL+"/page?x=1", func(r *http.Request) {
					if v.auth != "" {
						r.Header.Set("Authorization", v.auth)
					}
					r.Header.Set("Accept-Language", v.lang)
				})
				require.NoError(t, r.err)
				c.Wait()
				return r.header.Get("X-Cache")
			}
			for _, v := range variants {
				require.Equal(t, "MISS", fetch(v), v)
				require.Equal(t, "HIT", fetch(v), v)
			}
			purge, err := http.NewRequestWithContext(t.Context(), "PURGE", srv.URL+"/page?x=1", nil)
			require.NoError(t, err)
			purge.Host = strings.TrimPrefix(srv.URL, "http://")
			purge.Header.Set("Authorization", "Bearer admin")
			require.NoError(t, c.Purge(t.Context(), purge))
			for _, v := range variants {
				require.Equal(t, "MISS", fetch(v), "after the purge: %v", v)
			}
		})
	}
}

// TestTagsIndexedOrNotStored: a response carrying more tags than can be indexed (or a tag too long to
// index) is shared but not stored, so no stored entry escapes PurgeTag of any of its tags; one within
// the bounds is indexed under every tag.
func TestTagsIndexedOrNotStored(t *testing.T) {
	t.Parallel()
	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name   string
		tags   string
		stored bool
	}{
		{"32 tags", strings.Join(many[:32], ","), true},
		{"32 tags with duplicates", strings.Join(append(many[:32:32], many[:32]...), " "), true},
		{"33 tags", strings.Join(many, ","), false},
		{"a tag of 256 bytes", "a," + strings.Repeat("x", 256), true},
		{"a tag of 257 bytes", "a," + strings.Repeat("x", 257), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := &origin{serve: func(w http.ResponseWriter, r *http.Request, n int64) {
				w.Header().Set("Surrogate-Key", tt.tags)
				fmt.Fprintf(w, "run %d", n)
			}}
			c := stampede.New(nil, newMem(t), time.Minute)
			srv, client := newServer(t, c.Handler(o), 2)
			fetch := func() string {
				r := get(t.Context(), client, srv.URL+"/tagged", nil)
				require.NoError(t, r.err)
				c.Wait()
				return r.header.Get("X-Cache")
			}
			require.Equal(t, "MISS", fetch())
			if !tt.stored {
				require.Equal(t, "MISS", fetch(), "not stored")
				return
			}
			require.Equal(t, "HIT", fetch())
			tags := strings.FieldsFunc(tt.tags, func(r rune) bool { return r == ',' || r == ' ' })
			for _, tag := range []string{tags[0], tags[len(tags)-1]} {
				require.NoError(t, c.PurgeTag(t.Context(), tag))
				require.Equal(t, "MISS", fetch(), "purged by %.20s", tag)
				require.Equal(t, "HIT", fetch())
			}
		})
	}
}
