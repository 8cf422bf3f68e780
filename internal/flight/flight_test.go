package flight

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
)

func spec(s string) Spec[string] {
	h := fnv.New64a()
	h.Write([]byte(s))
	return Spec[string]{Key: s, Hash: h.Sum64()}
}

// inShard returns the spec of s with its hash moved into the shard of other's.
func inShard(s string, other Spec[string]) Spec[string] {
	sp := spec(s)
	sp.Hash = sp.Hash&^(NumShards-1) | other.Hash&(NumShards-1)
	return sp
}

func TestRunPublishesAndForgets(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	k := spec("a")
	f, leader, retry := g.Acquire(k, g.Epoch(k.Hash))
	if !leader || retry != NoRetry {
		t.Fatalf("first acquire: leader=%v retry=%v", leader, retry)
	}
	w, leader, _ := g.Acquire(k, g.Epoch(k.Hash))
	if leader || w != f {
		t.Fatal("second acquire must join the first flight")
	}
	persisted := make(chan struct{})
	proceed := make(chan struct{})
	v := g.Run(f, func() (int, func()) {
		return 7, func() { close(persisted); <-proceed }
	})
	if v != 7 {
		t.Fatalf("run returned %d", v)
	}
	if got, err := w.Wait(context.Background()); got != 7 || err != nil {
		t.Fatalf("waiter got %d, %v", got, err)
	}
	<-persisted
	if g.Lookup(k.Key, k.Hash) != f || g.Live() != 1 {
		t.Fatal("the flight must stay until its persist step returns")
	}
	close(proceed)
	g.Wait()
	if g.Lookup(k.Key, k.Hash) != nil || g.Live() != 0 {
		t.Fatal("the flight must be forgotten after persisting")
	}
}

func TestEpochRetry(t *testing.T) {
	t.Parallel()
	k := spec("k")
	other := inShard("other", k)

	var g Group[string, int]
	before := g.Epoch(k.Hash)
	f, _, _ := g.Acquire(other, g.Epoch(other.Hash))
	g.Run(f, func() (int, func()) { return 1, nil })
	if _, leader, retry := g.Acquire(k, before); !leader || retry != NoRetry {
		t.Fatalf("an unrelated key finishing must not force a retry: leader=%v retry=%v", leader, retry)
	}

	var d Group[string, int]
	before = d.Epoch(k.Hash)
	f, _, _ = d.Acquire(k, before)
	d.Run(f, func() (int, func()) { return 1, nil })
	if _, leader, retry := d.Acquire(k, before); leader || retry != RetryKey {
		t.Fatalf("the same key finishing since the look-up must force a retry: leader=%v retry=%v", leader, retry)
	}

	// More unrelated flights finish than the shard remembers: it cannot tell, and says so.
	var e Group[string, int]
	before = e.Epoch(k.Hash)
	for i := range recentLen + 1 {
		f, _, _ := e.Acquire(inShard(fmt.Sprint("other", i), k), NoEpoch)
		e.Run(f, func() (int, func()) { return 1, nil })
	}
	if _, leader, retry := e.Acquire(k, before); leader || retry != RetryUnknown {
		t.Fatalf("past what the shard remembers: leader=%v retry=%v, want RetryUnknown", leader, retry)
	}
}

func TestPanicAndGoexit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		load    func() (int, func())
		wantErr func(error) bool
	}{
		{"panic", func() (int, func()) { panic("boom") }, func(err error) bool {
			var p *Panic
			return errors.As(err, &p) && p.Value == "boom" && len(p.Stack) > 0
		}},
		{"abort", func() (int, func()) { panic(http.ErrAbortHandler) }, func(err error) bool { return err == http.ErrAbortHandler }},
		{"goexit", func() (int, func()) { runtime.Goexit(); return 0, nil }, func(err error) bool { return err == ErrGoexit }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var g Group[string, int]
			k := spec("p")
			f, _, _ := g.Acquire(k, g.Epoch(k.Hash))
			w, _, _ := g.Acquire(k, g.Epoch(k.Hash))
			var wg sync.WaitGroup
			wg.Go(func() {
				defer func() { _ = recover() }()
				g.Run(f, tt.load)
			})
			wg.Wait()
			if _, err := w.Wait(context.Background()); !tt.wantErr(err) {
				t.Fatalf("waiter error %v", err)
			}
			if g.Lookup(k.Key, k.Hash) != nil || g.Live() != 0 {
				t.Fatal("flight not forgotten")
			}
		})
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	f, _, _ := g.Acquire(spec("w"), NoEpoch)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait must return its context's error, got %v", err)
	}
}

func TestPersistBackpressure(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	block := make(chan struct{})
	started := make(chan struct{}, maxPendingPersists)
	for i := range maxPendingPersists {
		f, _, _ := g.Acquire(spec(fmt.Sprint("k", i)), NoEpoch)
		g.Run(f, func() (int, func()) { return i, func() { started <- struct{}{}; <-block } })
	}
	for range maxPendingPersists {
		<-started
	}
	// The cap is reached: the next persist runs on the caller's goroutine, before Run returns.
	k := spec("over")
	f, _, _ := g.Acquire(k, NoEpoch)
	ranInline := false
	g.Run(f, func() (int, func()) { return 0, func() { ranInline = true } })
	if !ranInline || g.Lookup(k.Key, k.Hash) != nil {
		t.Fatalf("over the cap the persist must run inline and the flight be forgotten: inline=%v", ranInline)
	}
	close(block)
	g.Wait()
}

// An invalidation detaches a finished flight that is still persisting: a caller arriving after it
// starts a flight of its own instead of joining the old one, and the old one's write is refused.
func TestInvalidateDetachesAndFencesPersistingFlight(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	k := spec("a")
	f, _, _ := g.Acquire(k, NoEpoch)
	inPersist := make(chan struct{})
	proceed := make(chan struct{})
	wrote := make(chan bool, 1)
	g.Run(f, func() (int, func()) {
		return 1, func() {
			close(inPersist)
			<-proceed
			wrote <- g.Write(f, func() bool { return true })
		}
	})
	<-inPersist
	epoch := g.Epoch(k.Hash)
	g.Invalidate(k.Key, k.Hash, nil)
	if g.Lookup(k.Key, k.Hash) != nil {
		t.Fatal("an invalidated flight must not be joinable")
	}
	if _, _, retry := g.Acquire(k, epoch); retry != RetryKey {
		t.Fatalf("a look-up that predates the invalidation must look again, got %v", retry)
	}
	close(proceed)
	if <-wrote {
		t.Fatal("a write of a flight started before an invalidation must be refused")
	}
	g.Wait()
}

// An invalidation that arrives while a write is on its way returns only after the write returned, so
// a deletion it makes next cannot be overtaken by that write.
func TestInvalidateWaitsForWriteInProgress(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var g Group[string, int]
		k := spec("a")
		f, _, _ := g.Acquire(k, NoEpoch)
		writing := make(chan struct{})
		release := make(chan struct{})
		var stored sync.WaitGroup
		stored.Go(func() {
			g.Write(f, func() bool { close(writing); <-release; return true })
		})
		<-writing
		invalidated := make(chan struct{})
		go func() { g.Invalidate(k.Key, k.Hash, nil); close(invalidated) }()
		synctest.Wait() // every goroutine of the bubble is blocked: Invalidate is waiting, or returned
		select {
		case <-invalidated:
			t.Fatal("Invalidate returned while a write of the flight was on its way")
		default:
		}
		close(release)
		<-invalidated
		stored.Wait()
		if g.Write(f, func() bool { return true }) {
			t.Fatal("a write after the invalidation must be refused")
		}
	})
}

// A varying response's flight is keyed by its variant and fenced by its URL key: invalidating the URL
// reaches it; invalidating another URL in the same shard does not.
func TestInvalidateByFence(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	url := spec("url")
	variant := inShard("url~v1", url)
	variant.Fence, variant.HasFence = url.Key, true
	other := inShard("other", url)
	fv, _, _ := g.Acquire(variant, NoEpoch)
	fo, _, _ := g.Acquire(other, NoEpoch)
	g.Invalidate(url.Key, url.Hash, nil)
	if g.Lookup(variant.Key, variant.Hash) != nil || !g.Invalidated(fv) {
		t.Fatal("the URL's invalidation must reach its variant's flight")
	}
	if g.Lookup(other.Key, other.Hash) != fo || g.Invalidated(fo) {
		t.Fatal("another key's flight must be left alone")
	}
}

// A label purged before the flight knows its labels detaches it at once and refuses its writes if the
// label turns out to be its own; a flight whose labels are known and do not include it is left alone.
func TestInvalidateLabel(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	a, b, c := spec("a"), spec("b"), spec("c")
	fa, _, _ := g.Acquire(a, NoEpoch)
	fb, _, _ := g.Acquire(b, NoEpoch)
	fc, _, _ := g.Acquire(c, NoEpoch)
	if !g.Label(fc, []string{"other"}) {
		t.Fatal("labelling a fresh flight must allow its writes")
	}
	g.InvalidateLabel("t", nil)
	if g.Lookup(a.Key, a.Hash) != nil || g.Lookup(b.Key, b.Hash) != nil {
		t.Fatal("flights whose labels are unknown must be detached by a label purge")
	}
	if g.Lookup(c.Key, c.Hash) != fc {
		t.Fatal("a flight whose known labels do not include the label must stay joinable")
	}
	if g.Label(fa, []string{"t", "u"}) {
		t.Fatal("a flight that turns out to carry the purged label must not write")
	}
	if !g.Label(fb, []string{"u"}) {
		t.Fatal("a flight that turns out not to carry it may write")
	}
}

// Start invalidates the live flights of its key and becomes the key's joinable flight.
func TestStart(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	k := spec("k")
	old, _, _ := g.Acquire(k, NoEpoch)
	f := g.Start(k)
	if !g.Invalidated(old) || g.Invalidated(f) || g.Lookup(k.Key, k.Hash) != f {
		t.Fatal("Start must invalidate the old flight and be joined")
	}
	j := g.Start(k)
	if !g.Invalidated(f) || g.Lookup(k.Key, k.Hash) != j {
		t.Fatal("a second Start must supersede the first")
	}
	g.End(old)
	g.End(f)
	g.End(j)
	if g.Live() != 0 {
		t.Fatalf("live = %d after ending every flight", g.Live())
	}
}

// Tracker.Wait may run while work is added (a sync.WaitGroup may not: Add from zero racing Wait).
func TestTrackerAddDuringWait(t *testing.T) {
	t.Parallel()
	var tr Tracker
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			tr.Add()
			tr.Done()
		})
		wg.Go(tr.Wait)
	}
	wg.Wait()
	tr.Wait()
}

// TestStartKeepsKeyJoinable checks that a key whose flight a Start supersedes always has a joinable
// flight for Lookup, which reads the shard's count without the lock: while Start swaps the old flight
// for the new one, the count must not pass through zero, or a caller finds no flight and reads what the
// old flight's value replaced (a Refresh's value served, then the older stored value it superseded: a
// linearizability violation that test/linearizable found).
func TestStartKeepsKeyJoinable(t *testing.T) {
	t.Parallel()
	var g Group[string, int]
	k := spec("a")
	prev := g.Start(k)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	missed := 0
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if g.Lookup(k.Key, k.Hash) == nil {
				missed++
			}
		}
	})
	for range 20000 {
		f := g.Start(k)
		g.End(prev)
		prev = f
		runtime.Gosched()
	}
	close(stop)
	wg.Wait()
	g.End(prev)
	if missed > 0 {
		t.Fatalf("Lookup found no flight %d times while Start superseded one", missed)
	}
}
