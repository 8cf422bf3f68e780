// Package storetest is the contract suite every stampede store should pass: the rules of the root
// package's store.go, each a subtest, run against a real store. A store module's tests call [Run] with
// a way to make the store (and, for a shared store, a second replica of it); the suite detects which
// optional contracts the store offers (BatchStore, TagStore, FencedStore, LeaseStore,
// InvalidationStore, TagInvalidationStore) and runs their rules too.
//
// The suite asserts behaviour, never speed: a rule about expiry waits (up to [Patience]) for an entry
// written with a short TTL to go, and compares the expiry of a ticket with that of an entry written
// after it, so no test depends on how fast the machine is.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// Patience is how long the suite waits for something that must happen (an expiry, an announcement)
// before it calls it hung.
const Patience = time.Minute

// Harness says how to make the stores under test.
type Harness struct {
	// New returns the store under test, empty. Run calls it once and shares the store between the
	// subtests, each of which uses keys and tags of its own.
	New func(t *testing.T) stampede.Store
	// Peer returns a second store over the same data as s, as another replica would have it (its own
	// connections, its own listener), or nil for a store whose data lives in one process.
	Peer func(t *testing.T, s stampede.Store) stampede.Store
}

// Run runs the contract suite on the store h makes.
func Run(t *testing.T, h Harness) {
	s := h.New(t)
	var peer stampede.Store
	if h.Peer != nil {
		peer = h.Peer(t, s)
	}
	if peer == nil {
		peer = s
	}
	st := &suite{s: s, peer: peer}
	t.Run("Store", st.basics)
	t.Run("Values", st.values)
	t.Run("TTL", st.ttl)
	if _, ok := s.(stampede.BatchStore); ok {
		t.Run("BatchGet", st.batch)
	}
	if _, ok := s.(stampede.TagStore); ok {
		t.Run("Tags", st.tags)
	}
	if _, ok := s.(stampede.FencedStore); ok {
		t.Run("Fenced", st.fenced)
		if _, ok := s.(stampede.TagStore); ok {
			t.Run("FencedTags", st.fencedTags)
		}
		t.Run("FencedRandom", st.fencedRandom)
	}
	if _, ok := s.(stampede.LeaseStore); ok {
		t.Run("Leases", st.leases)
	}
	if _, ok := s.(stampede.InvalidationStore); ok {
		t.Run("Invalidations", st.invalidations)
	}
	if _, ok := s.(stampede.TagInvalidationStore); ok {
		t.Run("TagInvalidations", st.tagInvalidations)
	}
}

type suite struct {
	s, peer stampede.Store
}

// key returns a key of the running subtest's own.
func key(t *testing.T, name string) string { return t.Name() + "/" + name }

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Patience)
	t.Cleanup(cancel)
	return ctx
}

func mustGet(t *testing.T, s stampede.Store, k string) ([]byte, bool) {
	t.Helper()
	v, ok, err := s.Get(ctxOf(t), k)
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	return v, ok
}

func mustSet(t *testing.T, s stampede.Store, k string, v []byte, ttl time.Duration) {
	t.Helper()
	if err := s.SetEx(ctxOf(t), k, v, ttl); err != nil {
		t.Fatalf("SetEx(%q): %v", k, err)
	}
}

func wantValue(t *testing.T, s stampede.Store, k string, want []byte) {
	t.Helper()
	v, ok := mustGet(t, s, k)
	switch {
	case want == nil && ok:
		t.Fatalf("Get(%q) = %q, want a miss", k, v)
	case want != nil && !ok:
		t.Fatalf("Get(%q) missed, want %q", k, want)
	case want != nil && !bytes.Equal(v, want):
		t.Fatalf("Get(%q) = %q, want %q", k, v, want)
	}
}

// eventually polls cond until it holds, failing after Patience.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, Patience)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (st *suite) basics(t *testing.T) {
	s := st.s
	k := key(t, "k")
	wantValue(t, s, k, nil)
	mustSet(t, s, k, []byte("one"), time.Hour)
	wantValue(t, s, k, []byte("one"))
	wantValue(t, st.peer, k, []byte("one"))
	mustSet(t, s, k, []byte("two"), time.Hour)
	wantValue(t, s, k, []byte("two"))
	if err := s.Delete(ctxOf(t), k); err != nil {
		t.Fatal(err)
	}
	wantValue(t, s, k, nil)
	wantValue(t, st.peer, k, nil)
	if err := s.Delete(ctxOf(t), k); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	// Keys are opaque: long ones, odd bytes and prefixes of each other are all distinct.
	keys := []string{key(t, "a"), key(t, "a") + "b", key(t, strings.Repeat("long", 300)), key(t, strings.Repeat("long", 300)) + "x",
		key(t, "ünïcode ✓"), key(t, "nul\x00byte"), "\x00" + key(t, "leading-nul"), key(t, "")}
	for i, k := range keys {
		mustSet(t, s, k, []byte(fmt.Sprint(i)), time.Hour)
	}
	for i, k := range keys {
		wantValue(t, s, k, []byte(fmt.Sprint(i)))
	}
}

func (st *suite) values(t *testing.T) {
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"empty", []byte{}},
		{"text", []byte("hello")},
		{"entry magic, truncated", []byte("STMP")},
		{"wrong magic", []byte("XXXX\x01\x00\x00\x00")},
		{"huge declared lengths", append([]byte("STMP\x01"), bytes.Repeat([]byte{0xff}, 32)...)},
		{"compressed magic, garbage", []byte("STZ1\xff\xff\xff\xff\x0f")},
		{"NUL and high bytes", []byte{0, 1, 0xfe, 0xff, 0, 0}},
		{"1 MiB random", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := key(t, "v")
			mustSet(t, st.s, k, tc.value, time.Hour)
			v, ok := mustGet(t, st.s, k)
			if !ok || !bytes.Equal(v, tc.value) {
				t.Fatalf("Get = %d bytes, %v; want the %d bytes written, unchanged", len(v), ok, len(tc.value))
			}
		})
	}
}

func (st *suite) ttl(t *testing.T) {
	short, long := key(t, "short"), key(t, "long")
	mustSet(t, st.s, long, []byte("long"), time.Hour)
	mustSet(t, st.s, short, []byte("short"), 30*time.Millisecond)
	eventually(t, "an entry with a 30 ms TTL expires", func() bool { _, ok := mustGet(t, st.s, short); return !ok })
	wantValue(t, st.s, long, []byte("long"))
	// An overwrite starts a new lifetime.
	mustSet(t, st.s, short, []byte("again"), time.Hour)
	wantValue(t, st.s, short, []byte("again"))
}

func (st *suite) batch(t *testing.T) {
	b := st.s.(stampede.BatchStore)
	ks := []string{key(t, "a"), key(t, "missing"), key(t, "b"), key(t, "a"), key(t, strings.Repeat("x", 600))}
	mustSet(t, st.s, ks[0], []byte("A"), time.Hour)
	mustSet(t, st.s, ks[2], []byte("B"), time.Hour)
	mustSet(t, st.s, ks[4], []byte("X"), time.Hour)
	vals, err := b.BatchGet(ctxOf(t), ks)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("A"), nil, []byte("B"), []byte("A"), []byte("X")}
	if len(vals) != len(want) {
		t.Fatalf("BatchGet returned %d values for %d keys", len(vals), len(ks))
	}
	for i := range want {
		if !bytes.Equal(vals[i], want[i]) || (want[i] == nil) != (vals[i] == nil) {
			t.Fatalf("values[%d] (%q) = %q, want %q", i, ks[i], vals[i], want[i])
		}
	}
	if vals, err := b.BatchGet(ctxOf(t), nil); err != nil || len(vals) != 0 {
		t.Fatalf("BatchGet(nil) = %v, %v", vals, err)
	}
	// Many keys in one call.
	many := make([]string, 1200)
	for i := range many {
		many[i] = key(t, fmt.Sprint("m", i))
		if i%3 == 0 {
			mustSet(t, st.s, many[i], []byte(fmt.Sprint(i)), time.Hour)
		}
	}
	vals, err = b.BatchGet(ctxOf(t), many)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if (i%3 == 0) != (v != nil) || (v != nil && string(v) != fmt.Sprint(i)) {
			t.Fatalf("values[%d] = %q", i, v)
		}
	}
}

func (st *suite) tags(t *testing.T) {
	ts := st.s.(stampede.TagStore)
	ctx := ctxOf(t)
	tag, other := key(t, "tag"), key(t, "other")
	a, b, c := key(t, "a"), key(t, "b"), key(t, "c")
	for _, k := range []string{a, b, c} {
		mustSet(t, st.s, k, []byte(k), time.Hour)
	}
	if err := ts.TagKeys(ctx, a, []string{tag}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := ts.TagKeys(ctx, b, []string{tag, other, tag}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := ts.TagKeys(ctx, c, []string{other}, time.Hour); err != nil {
		t.Fatal(err)
	}
	n, err := st.peer.(stampede.TagStore).PurgeTag(ctx, tag)
	if err != nil || n != 2 {
		t.Fatalf("PurgeTag = %d, %v; want 2", n, err)
	}
	wantValue(t, st.s, a, nil)
	wantValue(t, st.s, b, nil)
	wantValue(t, st.s, c, []byte(c))
	if n, err := ts.PurgeTag(ctx, tag); err != nil || n != 0 {
		t.Fatalf("PurgeTag again = %d, %v; want 0 (the tag was forgotten)", n, err)
	}
	if n, err := ts.PurgeTag(ctx, key(t, "never used")); err != nil || n != 0 {
		t.Fatalf("PurgeTag of an unknown tag = %d, %v", n, err)
	}
	if n, err := ts.PurgeTag(ctx, other); err != nil || n != 1 { // b is gone already
		t.Fatalf("PurgeTag(other) = %d, %v; want 1", n, err)
	}
}

func (st *suite) fenced(t *testing.T) {
	f, pf := st.s.(stampede.FencedStore), st.peer.(stampede.FencedStore)
	ctx := ctxOf(t)
	set := func(k, ticket, wk, v string) bool {
		t.Helper()
		ok, err := f.SetFenced(ctx, k, ticket, wk, []byte(v), time.Hour, nil)
		if err != nil {
			t.Fatalf("SetFenced(%q): %v", k, err)
		}
		return ok
	}
	ticket := func(k string, ttl time.Duration) string {
		t.Helper()
		tk, err := f.Ticket(ctx, k, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}

	t.Run("valid ticket writes, and again", func(t *testing.T) {
		k := key(t, "k")
		tk := ticket(k, time.Hour)
		if !set(k, tk, k, "1") || !set(k, tk, k, "2") {
			t.Fatal("a live ticket did not write")
		}
		wantValue(t, st.s, k, []byte("2"))
		// A ticket of key fences writes of other keys (a variant) too.
		if !set(k, tk, k+"#variant", "v") {
			t.Fatal("a live ticket did not write its variant")
		}
		wantValue(t, st.s, k+"#variant", []byte("v"))
	})
	t.Run("ticket taken before Invalidate never writes", func(t *testing.T) {
		k := key(t, "k")
		before := ticket(k, time.Hour)
		if err := pf.Invalidate(ctx, k); err != nil { // through the other replica
			t.Fatal(err)
		}
		if set(k, before, k, "stale") {
			t.Fatal("a ticket taken before Invalidate wrote")
		}
		if set(k, before, k+"#variant", "stale") {
			t.Fatal("a ticket taken before Invalidate wrote another key")
		}
		wantValue(t, st.s, k, nil)
		after := ticket(k, time.Hour)
		if !set(k, after, k, "fresh") {
			t.Fatal("a ticket taken after Invalidate did not write")
		}
		wantValue(t, st.s, k, []byte("fresh"))
		if err := f.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
		wantValue(t, st.s, k, nil)
	})
	t.Run("Delete revokes too", func(t *testing.T) {
		k := key(t, "k")
		before := ticket(k, time.Hour)
		if err := st.s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if set(k, before, k, "stale") {
			t.Fatal("a ticket taken before Delete wrote")
		}
	})
	t.Run("tickets of other keys are untouched", func(t *testing.T) {
		k, other := key(t, "k"), key(t, "other")
		tk := ticket(other, time.Hour)
		if err := f.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
		if !set(other, tk, other, "ok") {
			t.Fatal("Invalidate of one key revoked another key's ticket")
		}
	})
	t.Run("expired ticket does not write", func(t *testing.T) {
		k, canary := key(t, "k"), key(t, "canary")
		tk := ticket(k, 20*time.Millisecond)
		// The canary, written after the ticket with the same TTL, is gone only once the ticket expired.
		mustSet(t, st.s, canary, []byte("c"), 20*time.Millisecond)
		eventually(t, "the canary expires", func() bool { _, ok := mustGet(t, st.s, canary); return !ok })
		if set(k, tk, k, "late") {
			t.Fatal("an expired ticket wrote")
		}
	})
	t.Run("a ticket of another key does not write", func(t *testing.T) {
		k, other := key(t, "k"), key(t, "other")
		tk := ticket(other, time.Hour)
		if set(k, tk, k, "x") {
			t.Fatal("a ticket of another key wrote")
		}
	})
	t.Run("garbage ticket", func(t *testing.T) {
		k := key(t, "k")
		for _, bad := range []string{"", "x", "t", "t1", "t1.", "t.1", "tx.y", "l-1.q", strings.Repeat("9", 100)} {
			ok, err := f.SetFenced(ctx, k, bad, k, []byte("x"), time.Hour, nil)
			if ok {
				t.Fatalf("ticket %q wrote (err %v)", bad, err)
			}
		}
		wantValue(t, st.s, k, nil)
	})
}

func (st *suite) fencedTags(t *testing.T) {
	f := st.s.(stampede.FencedStore)
	ts := st.peer.(stampede.TagStore)
	ctx := ctxOf(t)
	set := func(k, ticket string, tags ...string) bool {
		t.Helper()
		ok, err := f.SetFenced(ctx, k, ticket, k, []byte("v"), time.Hour, tags)
		if err != nil {
			t.Fatalf("SetFenced(%q): %v", k, err)
		}
		return ok
	}
	ticket := func(k string) string {
		t.Helper()
		tk, err := f.Ticket(ctx, k, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	purge := func(tag string) int {
		t.Helper()
		n, err := ts.PurgeTag(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("tags recorded before the purge", func(t *testing.T) {
		k, tag := key(t, "k"), key(t, "tag")
		tk := ticket(k)
		if !set(k, tk, tag) {
			t.Fatal("first write refused")
		}
		if n := purge(tag); n != 1 {
			t.Fatalf("PurgeTag deleted %d entries, want 1", n)
		}
		wantValue(t, st.s, k, nil)
		if set(k, tk, tag) {
			t.Fatal("a ticket taken before the purge wrote under the purged tag")
		}
		wantValue(t, st.s, k, nil)
	})
	t.Run("tags recorded after the purge", func(t *testing.T) {
		k, tag := key(t, "k"), key(t, "tag")
		tk := ticket(k) // the run starts; it learns its tags only when its response comes
		purge(tag)
		if set(k, tk, "unrelated-"+tag, tag) {
			t.Fatal("a ticket taken before the purge wrote under the purged tag")
		}
		wantValue(t, st.s, k, nil)
		// The same ticket may still write without the purged tag.
		if !set(k, tk, "unrelated-"+tag) {
			t.Fatal("a write without the purged tag was refused")
		}
	})
	t.Run("ticket taken after the purge writes", func(t *testing.T) {
		k, tag := key(t, "k"), key(t, "tag")
		purge(tag)
		tk := ticket(k)
		if !set(k, tk, tag) {
			t.Fatal("a ticket taken after the purge was refused")
		}
		wantValue(t, st.s, k, []byte("v"))
		if n := purge(tag); n != 1 {
			t.Fatalf("second purge deleted %d, want 1", n)
		}
		wantValue(t, st.s, k, nil)
	})
	t.Run("purge revokes the members' tickets", func(t *testing.T) {
		k, tag := key(t, "k"), key(t, "tag")
		tk := ticket(k)
		if !set(k, tk, tag) {
			t.Fatal("first write refused")
		}
		purge(tag)
		if set(k, tk) { // even untagged: the purge invalidated k, which revokes its tickets
			t.Fatal("a ticket of a purged member wrote")
		}
	})
	t.Run("purge revokes the ticket of a write under another key", func(t *testing.T) {
		k, tag := key(t, "{k}"), key(t, "tag")
		wk := k + "~variant"
		tk := ticket(k)
		ok, err := f.SetFenced(ctx, k, tk, wk, []byte("v"), time.Hour, []string{tag})
		if err != nil || !ok {
			t.Fatalf("a variant's write = %v, %v", ok, err)
		}
		purge(tag)
		wantValue(t, st.s, wk, nil)
		if ok, err := f.SetFenced(ctx, k, tk, k, []byte("index"), time.Hour, nil); err != nil || ok {
			t.Fatalf("a write with the ticket of a purged variant = %v, %v; want refused", ok, err)
		}
	})
	if ls, ok := st.s.(stampede.LeaseStore); ok {
		t.Run("lease token, tags recorded after the purge", func(t *testing.T) {
			k, tag := key(t, "k"), key(t, "tag")
			tok, held, err := ls.TryLease(ctx, k, time.Hour)
			if err != nil || !held {
				t.Fatalf("TryLease = %v, %v", held, err)
			}
			purge(tag)
			if set(k, tok, tag) {
				t.Fatal("a lease taken before the purge wrote under the purged tag")
			}
			if err := ls.Release(ctx, k, tok, "miss"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func (st *suite) leases(t *testing.T) {
	ls, pl := st.s.(stampede.LeaseStore), st.peer.(stampede.LeaseStore)
	ctx := ctxOf(t)
	try := func(l stampede.LeaseStore, k string, d time.Duration) (string, bool) {
		t.Helper()
		tok, held, err := l.TryLease(ctx, k, d)
		if err != nil {
			t.Fatal(err)
		}
		return tok, held
	}
	wait := func(l stampede.LeaseStore, k string) <-chan string {
		ch := make(chan string, 1)
		go func() {
			o, err := l.WaitRelease(ctx, k)
			if err != nil {
				o = "error: " + err.Error()
			}
			ch <- o
		}()
		return ch
	}

	t.Run("one holder", func(t *testing.T) {
		k := key(t, "k")
		tok, held := try(ls, k, time.Hour)
		if !held {
			t.Fatal("first TryLease not held")
		}
		if _, held := try(pl, k, time.Hour); held {
			t.Fatal("a second replica took a held lease")
		}
		if err := pl.Release(ctx, k, "l0.0", "stored"); err != nil { // not the holder's token
			t.Fatal(err)
		}
		if _, held := try(pl, k, time.Hour); held {
			t.Fatal("a Release with the wrong token freed the lease")
		}
		if err := ls.Release(ctx, k, tok, "stored"); err != nil {
			t.Fatal(err)
		}
		if _, held := try(pl, k, time.Hour); !held {
			t.Fatal("the lease was not free after Release")
		}
	})
	t.Run("release wakes the waiters of every replica", func(t *testing.T) {
		k := key(t, "k")
		heardBy(t, k, []stampede.LeaseStore{pl, ls}, "stored", func(tok string) {
			if err := ls.Release(ctx, k, tok, "stored"); err != nil {
				t.Fatal(err)
			}
		}, ls)
	})
	t.Run("no lease is gone", func(t *testing.T) {
		if o := <-wait(pl, key(t, "never")); o != "gone" {
			t.Fatalf("WaitRelease without a lease = %q, want gone", o)
		}
	})
	t.Run("expiry wakes the waiters", func(t *testing.T) {
		k := key(t, "k")
		if _, held := try(ls, k, 50*time.Millisecond); !held {
			t.Fatal("not held")
		}
		if o := <-wait(pl, k); o != "gone" {
			t.Fatalf("WaitRelease on an expiring lease = %q, want gone", o)
		}
		if _, held := try(pl, k, time.Hour); !held {
			t.Fatal("an expired lease could not be taken over")
		}
	})
	t.Run("Invalidate revokes the lease and wakes waiters with miss", func(t *testing.T) {
		k := key(t, "k")
		var tok string
		heardBy(t, k, []stampede.LeaseStore{pl}, "miss", func(tk string) {
			tok = tk
			if err := pl.(stampede.FencedStore).Invalidate(ctx, k); err != nil {
				t.Fatal(err)
			}
		}, ls)
		if ok, err := ls.(stampede.FencedStore).SetFenced(ctx, k, tok, k, []byte("x"), time.Hour, nil); ok || err != nil {
			t.Fatalf("the revoked lease's token wrote: %v, %v", ok, err)
		}
		if _, held := try(pl, k, time.Hour); !held {
			t.Fatal("the lease was not free after Invalidate")
		}
	})
	t.Run("token writes while held, not after expiry", func(t *testing.T) {
		k, canary := key(t, "k"), key(t, "canary")
		f := ls.(stampede.FencedStore)
		tok, held := try(ls, k, time.Hour)
		if !held {
			t.Fatal("not held")
		}
		if ok, err := f.SetFenced(ctx, k, tok, k, []byte("held"), time.Hour, nil); !ok || err != nil {
			t.Fatalf("the holder's write = %v, %v", ok, err)
		}
		if err := ls.Release(ctx, k, tok, "stored"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := f.SetFenced(ctx, k, tok, k, []byte("released"), time.Hour, nil); ok {
			t.Fatal("a released lease's token wrote")
		}
		tok, held = try(ls, k, 20*time.Millisecond)
		if !held {
			t.Fatal("not held")
		}
		mustSet(t, st.s, canary, []byte("c"), 20*time.Millisecond)
		eventually(t, "the canary expires", func() bool { _, ok := mustGet(t, st.s, canary); return !ok })
		if ok, _ := f.SetFenced(ctx, k, tok, k, []byte("late"), time.Hour, nil); ok {
			t.Fatal("an expired lease's token wrote")
		}
		wantValue(t, st.s, k, []byte("held"))
	})
	if legacy, ok := st.s.(interface {
		SetExFenced(ctx context.Context, key string, value []byte, ttl time.Duration, token string) (bool, error)
	}); ok {
		t.Run("SetExFenced", func(t *testing.T) {
			k := key(t, "k")
			tok, held := try(ls, k, time.Hour)
			if !held {
				t.Fatal("not held")
			}
			if ok, err := legacy.SetExFenced(ctx, k, []byte("v"), time.Hour, tok); !ok || err != nil {
				t.Fatalf("SetExFenced = %v, %v", ok, err)
			}
			wantValue(t, st.s, k, []byte("v"))
			if err := st.peer.(stampede.FencedStore).Invalidate(ctx, k); err != nil {
				t.Fatal(err)
			}
			if ok, _ := legacy.SetExFenced(ctx, k, []byte("v"), time.Hour, tok); ok {
				t.Fatal("SetExFenced wrote after Invalidate")
			}
		})
	}
}

// heardBy takes k's lease on holder, starts a WaitRelease on each of waiters, lets end release (or
// revoke) the lease, and checks that every waiter returns want. A waiter that looked only after the
// lease was gone returns "gone" (it cannot tell), so the round is tried again with a longer pause
// before end, until every waiter was waiting in time; any other answer fails the test.
func heardBy(t *testing.T, k string, waiters []stampede.LeaseStore, want string, end func(token string), holder stampede.LeaseStore) {
	t.Helper()
	ctx := ctxOf(t)
	for attempt := 1; attempt <= 40; attempt++ {
		tok, held, err := holder.TryLease(ctx, k, time.Hour)
		if err != nil || !held {
			t.Fatalf("TryLease = %v, %v", held, err)
		}
		got := make(chan string, len(waiters))
		for _, w := range waiters {
			go func() {
				o, err := w.WaitRelease(ctx, k)
				if err != nil {
					o = "error: " + err.Error()
				}
				got <- o
			}()
		}
		time.Sleep(time.Duration(attempt) * 5 * time.Millisecond) // not synchronisation: see above
		end(tok)
		late := false
		for range waiters {
			switch o := <-got; o {
			case want:
			case "gone":
				late = true
			default:
				t.Fatalf("WaitRelease = %q, want %q", o, want)
			}
		}
		if !late {
			return
		}
	}
	t.Fatalf("no round in which every waiter was waiting before the lease ended")
}

func (st *suite) invalidations(t *testing.T) {
	var mu sync.Mutex
	heard := map[string]int{}
	stop := st.peer.(stampede.InvalidationStore).Invalidations(func(k string) {
		mu.Lock()
		heard[k]++
		mu.Unlock()
	})
	defer stop()
	ctx := ctxOf(t)
	k, tagged, tag := key(t, "k"), key(t, "tagged"), key(t, "tag")
	mustSet(t, st.s, k, []byte("v"), time.Hour)
	// The subscription may take a moment to start listening: announce until heard.
	eventually(t, "Delete is announced to another replica", func() bool {
		if err := st.s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return heard[k] > 0
	})
	if f, ok := st.s.(stampede.FencedStore); ok {
		before := heardOf(&mu, heard, k)
		if err := f.Invalidate(ctx, k); err != nil {
			t.Fatal(err)
		}
		eventually(t, "Invalidate is announced", func() bool { return heardOf(&mu, heard, k) > before })
	}
	if ts, ok := st.s.(stampede.TagStore); ok {
		mustSet(t, st.s, tagged, []byte("v"), time.Hour)
		if err := ts.TagKeys(ctx, tagged, []string{tag}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.PurgeTag(ctx, tag); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a purged tag's keys are announced", func() bool { return heardOf(&mu, heard, tagged) > 0 })
	}
	// After stop, nothing more is heard: a second subscription, still on, hears the key, the first
	// does not.
	stop()
	var mu2 sync.Mutex
	heard2 := map[string]int{}
	stop2 := st.peer.(stampede.InvalidationStore).Invalidations(func(k string) {
		mu2.Lock()
		heard2[k]++
		mu2.Unlock()
	})
	defer stop2()
	after := key(t, "after-stop")
	eventually(t, "the second subscription hears a Delete", func() bool {
		if err := st.s.Delete(ctx, after); err != nil {
			t.Fatal(err)
		}
		return heardOf(&mu2, heard2, after) > 0
	})
	if n := heardOf(&mu, heard, after); n != 0 {
		t.Fatalf("heard %d announcements after stop", n)
	}
}

func heardOf(mu *sync.Mutex, heard map[string]int, k string) int {
	mu.Lock()
	defer mu.Unlock()
	return heard[k]
}

func (st *suite) tagInvalidations(t *testing.T) {
	var mu sync.Mutex
	heard := map[string]int{}
	stop := st.peer.(stampede.TagInvalidationStore).TagInvalidations(func(tag string) {
		mu.Lock()
		heard[tag]++
		mu.Unlock()
	})
	defer stop()
	ts := st.s.(stampede.TagStore)
	tag := key(t, "tag")
	eventually(t, "PurgeTag is announced to another replica", func() bool {
		if _, err := ts.PurgeTag(ctxOf(t), tag); err != nil {
			t.Fatal(err)
		}
		return heardOf(&mu, heard, tag) > 0
	})
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
