package stampede_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

// The leak matrix: who may see whose page. Alice's request runs the handler; Bob, with other
// credentials, asks for the same URL either while Alice's run is in flight (he waits on it) or after it
// finished. The origin names the requesting user in the body, so any leak is visible. For each cell the
// expectation is computed from docs/behaviour.md, not observed:
//
//   - §4, §5.6: private, no-store and Set-Cookie responses are never shared: Bob gets his own page, and
//     the key goes hit-for-pass (BYPASS) for later requests;
//   - §4, §6 (Vary): a response that varies on X-User is replayed only to requests with the same
//     X-User; Bob's differs, so he gets his own page (BYPASS as a waiter, MISS later: the stored entry
//     does not match him, so he runs the handler);
//   - §2.3: with Authorization (not keyed), only public, s-maxage or must-revalidate responses are
//     shared; anything else is treated like private;
//   - otherwise the response is shareable and Bob gets Alice's page: public and s-maxage always, and a
//     plain max-age response when the credential is a Cookie or nothing at all. Cookie is not part of the
//     key and does not by itself prevent sharing: keying it (or Vary: Cookie, or private) is the user's
//     job (SECURITY.md). The "plain" column is not in issue 7's list; it is here to show exactly that.

type leakCredential struct {
	name string
	set  func(r *http.Request, user string) // nil: the request carries no credential
	// keyed: the cache keys on the credential with a CredentialKeyFunc (§2.3), so Alice and Bob never
	// share a key: Bob never waits on Alice's run, and runs his own.
	keyed bool
}

var leakCredentials = []leakCredential{
	{"authorization", func(r *http.Request, user string) { r.Header.Set("Authorization", "Bearer "+user) }, false},
	{"authorization-keyed", func(r *http.Request, user string) { r.Header.Set("Authorization", "Bearer "+user) }, true},
	{"cookie", func(r *http.Request, user string) { r.Header.Set("Cookie", "session="+user) }, false},
	{"none", nil, false},
}

// credentialKey is the key function of the keyed column: the Authorization token, as go-chi's with-key
// example keys it.
var credentialKey = stampede.PerCredential(func(r *http.Request) (uint64, error) {
	return stampede.StringToHash(r.Method, r.Header.Get("Authorization")), nil
})

type leakResponse struct {
	name string
	mark func(h http.Header, user string)
}

var leakResponses = []leakResponse{
	{"private", func(h http.Header, _ string) { h.Set("Cache-Control", "private, max-age=60") }},
	{"no-store", func(h http.Header, _ string) { h.Set("Cache-Control", "no-store") }},
	{"set-cookie", func(h http.Header, user string) {
		h.Set("Cache-Control", "max-age=60")
		h.Set("Set-Cookie", "seen="+user)
	}},
	{"vary", func(h http.Header, _ string) { h.Set("Cache-Control", "max-age=60"); h.Set("Vary", "X-User") }},
	{"public", func(h http.Header, _ string) { h.Set("Cache-Control", "public, max-age=60") }},
	{"s-maxage", func(h http.Header, _ string) { h.Set("Cache-Control", "s-maxage=60") }},
	{"plain", func(h http.Header, _ string) { h.Set("Cache-Control", "max-age=60") }},
}

// leakExpect is what docs/behaviour.md says Bob receives in a cell: Alice's page (shared) or his own, the X-Cache
// marker that says why, and whether Alice's response is in the store afterwards.
type leakExpect struct {
	shared bool
	xcache string
	stored bool
}

func expectLeak(cred, resp string, waiter bool) leakExpect {
	unshareable := resp == "private" || resp == "no-store" || resp == "set-cookie" ||
		(cred == "authorization" && resp != "public" && resp != "s-maxage") // §2.3
	switch {
	case cred == "authorization-keyed":
		// Bob's key is his own: he runs the handler himself whatever the response; Alice's page is
		// stored (under her key) when it is shareable, Authorization being keyed (§2.3, §4).
		return leakExpect{xcache: "MISS", stored: resp != "private" && resp != "no-store" && resp != "set-cookie"}
	case unshareable && waiter:
		return leakExpect{xcache: "BYPASS"} // §5.6: Bob runs the handler himself
	case unshareable:
		return leakExpect{xcache: "BYPASS"} // §5.6: hit-for-pass
	case resp == "vary" && waiter:
		return leakExpect{xcache: "BYPASS", stored: true} // the waiter's X-User does not match
	case resp == "vary":
		return leakExpect{xcache: "MISS", stored: true} // the stored entry does not match Bob: he runs it
	case waiter:
		return leakExpect{shared: true, xcache: "COALESCED", stored: true}
	default:
		return leakExpect{shared: true, xcache: "HIT", stored: true}
	}
}

// leakOrigin names the requesting user: from the credential when there is one, else from X-User.
func leakOrigin(resp leakResponse, entered chan<- struct{}, gate <-chan struct{}) http.Handler {
	var runs atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 { // hold Alice's run until Bob waits on it (the gate is nil for "later" cells)
			entered <- struct{}{}
			if gate != nil {
				<-gate
			}
		}
		user := r.Header.Get("X-User")
		if a := r.Header.Get("Authorization"); a != "" {
			user = strings.TrimPrefix(a, "Bearer ")
		} else if c, err := r.Cookie("session"); err == nil {
			user = c.Value
		}
		resp.mark(w.Header(), user)
		fmt.Fprintf(w, "page for %s", user)
	})
}

// TestLeakMatrix: (credential) × (response) × (waiter or later) × (memory or Redis store). For each cell,
// Bob receives exactly what docs/behaviour.md allows: Alice's page only where the response is shareable.
func TestLeakMatrix(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	stores := []struct {
		name string
		new  func(t *testing.T) stampede.Store
	}{
		{"memory", func(t *testing.T) stampede.Store { return newMem(t) }},
		{"redis", func(t *testing.T) stampede.Store {
			return closing(t, redisstore.New(redisClient(t, srv.Addr(), 4), redisstore.WithTimeout(2*time.Second)))
		}},
	}
	type cell struct {
		name     string
		cred     leakCredential
		resp     leakResponse
		waiter   bool
		newStore func(t *testing.T) stampede.Store
		want     leakExpect
		prefix   string // isolates the cells that share the Redis server
	}
	var cells []cell
	for _, cred := range leakCredentials {
		for _, resp := range leakResponses {
			for _, waiter := range []bool{true, false} {
				for _, st := range stores {
					timing := "later"
					if waiter {
						timing = "waiter"
					}
					cells = append(cells, cell{
						name: fmt.Sprintf("%s/%s/%s/%s", cred.name, resp.name, timing, st.name),
						cred: cred, resp: resp, waiter: waiter, newStore: st.new,
						want:   expectLeak(cred.name, resp.name, waiter),
						prefix: fmt.Sprintf("leak%d", len(cells)),
					})
				}
			}
		}
	}
	require.Len(t, cells, 4*7*2*2)
	for _, tc := range cells {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := tc.newStore(t)
			opts := []stampede.Option{stampede.WithKeyPrefix(tc.prefix)}
			if tc.cred.keyed {
				opts = append(opts, stampede.WithCredentialKeyFunc(credentialKey))
			}
			c := stampede.New(nil, store, time.Minute, opts...)
			joined := make(chan struct{}, 4)
			stampede.SetJoinHook(c, func() { joined <- struct{}{} }) // never blocks: at most Bob joins
			entered := make(chan struct{}, 1)
			var gate chan struct{}
			if tc.waiter {
				gate = make(chan struct{})
			}
			s, client := newServer(t, c.Handler(leakOrigin(tc.resp, entered, gate)), 4)
			as := func(user string) func(*http.Request) {
				return func(r *http.Request) {
					r.Header.Set("X-User", user)
					if tc.cred.set != nil {
						tc.cred.set(r, user)
					}
				}
			}

			var alice, bob reply
			if tc.waiter {
				aliceDone, bobDone := make(chan reply), make(chan reply)
				go func() { aliceDone <- get(t.Context(), client, s.URL+"/me", as("alice")) }()
				<-entered // Alice's run is in the handler
				go func() { bobDone <- get(t.Context(), client, s.URL+"/me", as("bob")) }()
				if tc.cred.keyed {
					bob = <-bobDone // another key: Bob runs the handler while Alice's run is held
					close(gate)
					alice = <-aliceDone
				} else {
					<-joined // Bob waits on Alice's run
					close(gate)
					alice, bob = <-aliceDone, <-bobDone
				}
			} else {
				alice = get(t.Context(), client, s.URL+"/me", as("alice"))
				c.Wait()
				bob = get(t.Context(), client, s.URL+"/me", as("bob"))
			}
			c.Wait()
			require.NoError(t, alice.err)
			require.NoError(t, bob.err)

			assert.Equal(t, "page for alice", alice.body)
			assert.Equal(t, "MISS", alice.header.Get("X-Cache"))
			wantBody := "page for bob"
			if tc.want.shared {
				wantBody = "page for alice"
			}
			assert.Equal(t, wantBody, bob.body, "what Bob receives")
			assert.Equal(t, tc.want.xcache, bob.header.Get("X-Cache"))
			for _, cookie := range bob.header.Values("Set-Cookie") {
				assert.NotContains(t, cookie, "alice", "Alice's cookie reached Bob")
			}
			if tc.resp.name == "set-cookie" {
				assert.Equal(t, []string{"seen=bob"}, bob.header.Values("Set-Cookie"), "Bob's own cookie")
			}

			// What the store holds afterwards: nothing for an unshareable response, and never a page
			// with a cookie in it.
			probe, _ := http.NewRequest("GET", s.URL+"/me", nil)
			as("alice")(probe)
			b, found, err := store.Get(t.Context(), stampede.StoreKey(c, probe))
			require.NoError(t, err)
			assert.Equal(t, tc.want.stored, found, "entry stored")
			if found {
				e, err := entry.Decode(b)
				require.NoError(t, err)
				assert.NotContains(t, e.Header, "Set-Cookie")
				if tc.resp.name != "vary" { // a varying response may be stored behind an index entry
					assert.True(t, slices.Contains([]string{"page for alice", "page for bob"}, string(e.Body)), "%q", e.Body)
				}
			}
		})
	}
}
