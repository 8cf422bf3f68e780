package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/pgstore"
)

// TestCallsAfterClose: Close stops the background work only; reads and writes still work, and
// WaitRelease says the store is closed instead of waiting for announcements nobody listens to.
func TestCallsAfterClose(t *testing.T) {
	t.Parallel()
	s := newStore(t, newPool(t, serverURL()), pgstore.WithTimeout(callTimeout))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.SetEx(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatalf("SetEx after Close: %v", err)
	}
	if v, ok, err := s.Get(ctx, "k"); err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get after Close = %q, %v, %v", v, ok, err)
	}
	if _, err := s.WaitRelease(ctx, "k"); !errors.Is(err, pgstore.ErrClosed) {
		t.Fatalf("WaitRelease after Close: %v, want ErrClosed", err)
	}
}
