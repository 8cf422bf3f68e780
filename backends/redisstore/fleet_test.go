package redisstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/internal/redistest"
)

// TestLease: one holder at a time; only the holder's fenced write and release count; a waiter wakes
// with the holder's outcome; a waiter whose holder dies wakes when the lease expires.
func TestLease(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	a := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Second))
	b := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Second))
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })

	tokA, held, err := a.TryLease(ctx, "{k}", time.Minute)
	if err != nil || !held {
		t.Fatalf("a TryLease = %v, %v", held, err)
	}
	tokB, held, err := b.TryLease(ctx, "{k}", time.Minute)
	if err != nil || held {
		t.Fatalf("b TryLease while a holds = %v, %v", held, err)
	}
	if ok, err := b.SetExFenced(ctx, "{k}", []byte("b"), time.Minute, tokB); ok || err != nil {
		t.Fatalf("fenced write without the lease = %v, %v", ok, err)
	}
	got := make(chan string, 1)
	go func() {
		o, err := b.WaitRelease(ctx, "{k}")
		if err != nil {
			t.Error(err)
		}
		got <- o
	}()
	time.Sleep(50 * time.Millisecond) // b waits
	if ok, err := a.SetExFenced(ctx, "{k}", []byte("a"), time.Minute, tokA); !ok || err != nil {
		t.Fatalf("holder's fenced write = %v, %v", ok, err)
	}
	if err := b.Release(ctx, "{k}", tokB, OutcomePass); err != nil { // not the holder: no effect
		t.Fatal(err)
	}
	released := time.Now()
	if err := a.Release(ctx, "{k}", tokA, OutcomeStored); err != nil {
		t.Fatal(err)
	}
	if o := <-got; o != OutcomeStored {
		t.Fatalf("WaitRelease = %q, want %q", o, OutcomeStored)
	}
	t.Logf("notice reached the waiter %v after the release", time.Since(released))
	if v, ok, _ := b.Get(ctx, "{k}"); !ok || string(v) != "a" {
		t.Fatalf("stored %q", v)
	}

	// A holder that dies: the waiter wakes once the lease expires.
	if _, held, _ := a.TryLease(ctx, "{dead}", 150*time.Millisecond); !held {
		t.Fatal("no lease")
	}
	began := time.Now()
	if o, err := b.WaitRelease(ctx, "{dead}"); err != nil || o != OutcomeGone {
		t.Fatalf("WaitRelease = %q, %v; want %q", o, err, OutcomeGone)
	}
	if d := time.Since(began); d > 400*time.Millisecond {
		t.Fatalf("waited %v for a 150 ms lease", d)
	}
}

// TestInvalidations: a Delete on one Store is announced to another's subscribers.
func TestInvalidations(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	a := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Second))
	b := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Second))
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	var last atomic.Value
	seen := make(chan struct{}, 8)
	stop := b.Invalidations(func(key string) { last.Store(key); seen <- struct{}{} })
	defer stop()
	<-b.listen().ready
	if err := a.SetEx(ctx, "x", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := a.TagKeys(ctx, "x", []string{"t"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := a.PurgeTag(ctx, "t"); err != nil || n != 1 {
		t.Fatalf("PurgeTag = %d, %v", n, err)
	}
	select {
	case <-seen:
	case <-time.After(2 * time.Second):
		t.Fatal("no invalidation")
	}
	if last.Load() != "x" {
		t.Fatalf("invalidated %v", last.Load())
	}
	if _, ok, _ := b.Get(ctx, "x"); ok {
		t.Fatal("PurgeTag left the entry")
	}
}
