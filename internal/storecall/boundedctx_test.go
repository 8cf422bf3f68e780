package storecall

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestBoundedCtx: the lazy deadline context ends as context.WithTimeout's would: at its deadline, with
// its parent, or when released, and reports the earlier deadline.
func TestBoundedCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := New(Config{Timeout: time.Second, Threshold: 1, Backoff: time.Second})
		ctx, b := calls.Ctx(context.Background())
		if d, ok := ctx.Deadline(); !ok || d != time.Now().Add(time.Second) {
			t.Fatalf("deadline %v %v", d, ok)
		}
		if ctx.Err() != nil {
			t.Fatal("ended early")
		}
		done := ctx.Done()
		time.Sleep(time.Second) // fake time: the deadline passes
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Fatal("Done not closed at the deadline")
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", ctx.Err())
		}
		b.Release()

		parent, cancel := context.WithCancel(context.Background())
		ctx, b = calls.Ctx(parent)
		done = ctx.Done()
		cancel()
		<-done
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err after the parent ended = %v", ctx.Err())
		}
		b.Release()

		ctx, b = calls.Ctx(context.Background())
		b.Release()
		<-ctx.Done()
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err after release = %v", ctx.Err())
		}

		early, cancel2 := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel2()
		ctx, b = calls.Ctx(early)
		defer b.Release()
		if d, _ := ctx.Deadline(); d != time.Now().Add(time.Millisecond) {
			t.Fatalf("deadline %v, want the parent's", d)
		}
		var none *BoundedCtx
		none.Release()
	})
}
