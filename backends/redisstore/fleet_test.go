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
	a := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Minute))
	b := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Minute))
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
	// b looks at the lease once and then only listens: it can learn the outcome from the notice alone.
	b.pollEvery = time.Hour
	pttls := srv.CommandCalls(t, "pttl")
	got := make(chan string, 1)
	go func() {
		o, err := b.WaitRelease(ctx, "{k}")
		if err != nil {
			t.Error(err)
		}
		got <- o
	}()
	// b waits once it is subscribed, registered for {k}, and Redis has answered its first look at the
	// lease (which the lease, held for a minute, survives).
	waitUntil(t, "b waiting for {k}", func() bool {
		l := b.listen()
		select {
		case <-l.ready:
		default:
			return false
		}
		l.mu.Lock()
		registered := len(l.waiters["{k}"]) > 0
		l.mu.Unlock()
		return registered && srv.CommandCalls(t, "pttl") > pttls
	})
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
	select {
	case o := <-got:
		if o != OutcomeStored {
			t.Fatalf("WaitRelease = %q, want %q", o, OutcomeStored)
		}
	case <-time.After(time.Minute):
		t.Fatal("the waiter did not hear the release notice within a minute")
	}
	t.Logf("notice reached the waiter %v after the release", time.Since(released))
	if v, ok, _ := b.Get(ctx, "{k}"); !ok || string(v) != "a" {
		t.Fatalf("stored %q", v)
	}

	// A holder that dies: the waiter, polling again, wakes once the lease expires. Redis expires the
	// lease; a minute only catches a waiter that never wakes.
	b.pollEvery = 0
	if _, held, _ := a.TryLease(ctx, "{dead}", 150*time.Millisecond); !held {
		t.Fatal("no lease")
	}
	began := time.Now()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if o, err := b.WaitRelease(wctx, "{dead}"); err != nil || o != OutcomeGone {
		t.Fatalf("WaitRelease = %q, %v; want %q", o, err, OutcomeGone)
	}
	t.Logf("waited %v for a 150 ms lease whose holder died", time.Since(began).Round(time.Millisecond))
}

// waitUntil polls cond until it holds, failing the test if it does not within a minute: it waits on
// another goroutine or process reaching a state, however slowly the machine lets it.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within a minute", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestInvalidations: a Delete on one Store is announced to another's subscribers.
func TestInvalidations(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	a := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Minute))
	b := New(newClient(t, relaxed(srv.Addr())), WithTimeout(time.Minute))
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
	case <-time.After(time.Minute):
		t.Fatal("no invalidation within a minute")
	}
	if last.Load() != "x" {
		t.Fatalf("invalidated %v", last.Load())
	}
	if _, ok, _ := b.Get(ctx, "x"); ok {
		t.Fatal("PurgeTag left the entry")
	}
}
