package stampede_test

// The cache's 304/412/200 decisions on stored entries (deliver.go's answerPrecondition, through
// internal/httpcache.Evaluate) against http.ServeContent's for the same validators and the same
// generated If-None-Match, If-Modified-Since, If-Match and If-Unmodified-Since values (§9.1).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/internal/difftest"
)

// condModTime is the representation's modification time.
var condModTime = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// condETags are the response's entity tags ("" for none) and condTags the request's list members.
var (
	condETags = []string{"", `"v1"`, `W/"v1"`}
	condTags  = []string{`"v1"`, `W/"v1"`, `"v2"`, `*`, `"v1", "v2"`, `"v2" , W/"v1"`, ``, `v1`, `"v1`}
	condDates = []string{
		condModTime.Format(http.TimeFormat),
		condModTime.Add(-time.Second).Format(http.TimeFormat),
		condModTime.Add(time.Second).Format(http.TimeFormat),
		condModTime.Add(time.Hour).Format(time.RFC850),
		condModTime.Format(time.ANSIC),
		"yesterday",
		"",
	}
)

// condCase is one response's validators and one request's preconditions ("" for an absent field,
// except that the empty members of condTags and condDates are sent as empty fields).
type condCase struct {
	etag              int // index in condETags
	lastModified      bool
	inm, ims, im, ius int // index + 1 in condTags / condDates; 0: absent
}

// decodeCond makes a case of any bytes.
func decodeCond(b []byte) condCase {
	at := func(i int) int {
		if i < len(b) {
			return int(b[i])
		}
		return 0
	}
	return condCase{
		etag:         at(0) % len(condETags),
		lastModified: at(1)%2 == 1,
		inm:          at(2) % (len(condTags) + 1),
		ims:          at(3) % (len(condDates) + 1),
		im:           at(4) % (len(condTags) + 1),
		ius:          at(5) % (len(condDates) + 1),
	}
}

func (c condCase) path() string {
	return fmt.Sprintf("/c/%d/%t", c.etag, c.lastModified)
}

func (c condCase) request(base string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, base+c.path(), nil)
	set := func(name string, i int, values []string) {
		if i > 0 {
			r.Header[name] = []string{values[i-1]}
		}
	}
	set("If-None-Match", c.inm, condTags)
	set("If-Modified-Since", c.ims, condDates)
	set("If-Match", c.im, condTags)
	set("If-Unmodified-Since", c.ius, condDates)
	return r
}

func (c condCase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ETag %q, Last-Modified %t;", condETags[c.etag], c.lastModified)
	for _, f := range []struct {
		name   string
		i      int
		values []string
	}{{"If-None-Match", c.inm, condTags}, {"If-Modified-Since", c.ims, condDates}, {"If-Match", c.im, condTags}, {"If-Unmodified-Since", c.ius, condDates}} {
		if f.i > 0 {
			fmt.Fprintf(&b, " %s: %q", f.name, f.values[f.i-1])
		}
	}
	return b.String()
}

// condHandler serves the same representation with http.ServeContent, validators as the path says.
func condHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/") // "", "c", etag, lastModified
		i, _ := strconv.Atoi(parts[2])
		if tag := condETags[i]; tag != "" {
			w.Header().Set("Etag", tag)
		}
		w.Header().Set("Cache-Control", "public, max-age=600")
		var mod time.Time
		if parts[3] == "true" {
			mod = condModTime
		}
		http.ServeContent(w, r, "", mod, strings.NewReader("representation"))
	})
}

// condEnv is a bare ServeContent server and the same behind a cache whose entries are warm.
type condEnv struct {
	bareURL, cachedURL string
	bare, cached       *http.Client
}

func newCondEnv(tb testing.TB) *condEnv {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := stampede.New(logger, newMem(tb), time.Minute)
	tb.Cleanup(c.Close)
	env := &condEnv{}
	env.bareURL, env.bare = difftest.Start(tb, difftest.HTTP1, condHandler())
	env.cachedURL, env.cached = difftest.Start(tb, difftest.HTTP1, c.Handler(condHandler()))
	for i := range condETags {
		for _, lm := range []bool{false, true} {
			warm := condCase{etag: i, lastModified: lm}
			o := difftest.Observe(context.Background(), env.cached, warm.request(env.cachedURL))
			if o.Status != http.StatusOK {
				tb.Fatalf("warming %s: status %d", warm.path(), o.Status)
			}
		}
	}
	c.Wait()
	return env
}

// check compares the two answers to c: status, and the body of a 200.
func (env *condEnv) check(c condCase) string {
	ctx := context.Background()
	want := difftest.Observe(ctx, env.bare, c.request(env.bareURL))
	got := difftest.Observe(ctx, env.cached, c.request(env.cachedURL))
	if want.Status != got.Status || (want.Status == http.StatusOK && string(want.Body) != string(got.Body)) {
		return fmt.Sprintf("%s: ServeContent %d, cache %d", c, want.Status, got.Status)
	}
	return ""
}

// condAllowed reports the documented differences: with no Last-Modified, the cache evaluates
// If-Modified-Since against the response's Date (RFC 9111 §4.3.2), which ServeContent ignores.
func condAllowed(c condCase) bool {
	return !c.lastModified && c.ims > 0 && c.inm == 0
}

// TestConditionalDifferential runs every combination of the generated values.
func TestConditionalDifferential(t *testing.T) {
	env := newCondEnv(t)
	n, diffs := 0, 0
	for etag := range condETags {
		for _, lm := range []bool{false, true} {
			for inm := range len(condTags) + 1 {
				for ims := range len(condDates) + 1 {
					for _, im := range []int{0, 3} { // absent, or a list that does not match "v1" strongly
						for _, ius := range []int{0, 2} { // absent, or a second before Last-Modified
							c := condCase{etag: etag, lastModified: lm, inm: inm, ims: ims, im: im, ius: ius}
							if condAllowed(c) {
								continue
							}
							n++
							if d := env.check(c); d != "" {
								diffs++
								if diffs <= 20 {
									t.Error(d)
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases, %d differences", n, diffs)
}

// FuzzConditional is TestConditionalDifferential driven by the fuzzer.
func FuzzConditional(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 9111))
	for range 16 {
		b := make([]byte, 6)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		f.Add(b)
	}
	env := newCondEnv(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c := decodeCond(b)
		if condAllowed(c) {
			return
		}
		if d := env.check(c); d != "" {
			t.Error(d)
		}
	})
}
