package memstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/memstore"
)

// TestValues: Go values kept as they are, with a TTL per entry and a bound on the number of entries.
func TestValues(t *testing.T) {
	ctx := context.Background()
	if _, err := memstore.NewValues[int](0); !errors.Is(err, memstore.ErrInvalidSize) {
		t.Fatalf("NewValues(0): %v", err)
	}
	s, err := memstore.NewValues[*string](10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := "shared"
	_ = s.SetEx(ctx, "k", &v, time.Minute)
	got, ok, err := s.Get(ctx, "k")
	if err != nil || !ok || got != &v {
		t.Fatalf("Get = %v, %v, %v; want the pointer stored", got, ok, err)
	}
	_ = s.SetEx(ctx, "k", &v, 0)
	if _, ok, _ := s.Get(ctx, "k"); ok {
		t.Fatal("a zero TTL did not remove the value")
	}
	_ = s.SetEx(ctx, "k", &v, time.Minute)
	_ = s.Delete(ctx, "k")
	if _, ok, _ := s.Get(ctx, "k"); ok {
		t.Fatal("Delete did not remove the value")
	}
	for i := range 100 {
		_ = s.SetEx(ctx, string(rune('a'+i)), &v, time.Minute)
	}
	s.CleanUp()
	if n := s.Len(); n > 10 {
		t.Fatalf("%d values held, bound 10", n)
	}
	if s.Evictions() == 0 || s.CallTimeout() != 0 || s.Bytes() != 0 {
		t.Fatalf("evictions %d, call timeout %v, bytes %d", s.Evictions(), s.CallTimeout(), s.Bytes())
	}
}

// A hit allocates nothing.
func TestValuesHitAllocatesNothing(t *testing.T) {
	s, err := memstore.NewValues[any](10)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	p := new(int)
	_ = s.SetEx(ctx, "k", p, time.Minute)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = s.Get(ctx, "k") }); n != 0 {
		t.Fatalf("%v allocations per hit", n)
	}
}
