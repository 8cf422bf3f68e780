package tieredstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/backends/memstore"
)

// countingTier is a memory tier that counts its calls and reads many keys in one BatchGet.
type countingTier struct {
	*memstore.Store
	gets, batches atomic.Int64
}

func (c *countingTier) Get(ctx context.Context, k string) ([]byte, bool, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, k)
}

func (c *countingTier) BatchGet(ctx context.Context, keys []string) ([][]byte, error) {
	c.batches.Add(1)
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i], _, _ = c.Store.Get(ctx, k)
	}
	return out, nil
}

// TestBatchGet: keys in L1 are read there; the others from L2 in one BatchGet, and copied into L1; a
// missing key reads as nil; an L2 without BatchGet is read one key at a time.
func TestBatchGet(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	l1 := mem(t)
	l2 := &countingTier{Store: mem(t)}
	s := New(l1, l2)
	defer s.Close()
	_ = l1.SetEx(ctx, "a", value(now, time.Hour), time.Hour)
	_ = l2.SetEx(ctx, "b", value(now, time.Hour), time.Hour)
	got, err := s.BatchGet(ctx, []string{"a", "b", "c"})
	if err != nil || got[0] == nil || got[1] == nil || got[2] != nil {
		t.Fatalf("BatchGet = %q, %v", got, err)
	}
	if l2.batches.Load() != 1 || l2.gets.Load() != 0 {
		t.Fatalf("L2: %d BatchGets, %d Gets; want 1 and 0", l2.batches.Load(), l2.gets.Load())
	}
	if _, ok, _ := l1.Get(ctx, "b"); !ok {
		t.Fatal("L2 hit not copied into L1")
	}
	if got, _ := s.BatchGet(ctx, []string{"a", "b"}); got[0] == nil || got[1] == nil || l2.batches.Load() != 1 {
		t.Fatalf("second BatchGet went to L2 (%d) or missed: %q", l2.batches.Load(), got)
	}

	plain := New(mem(t), l2.Store)
	defer plain.Close()
	if got, err := plain.BatchGet(ctx, []string{"b", "c"}); err != nil || got[0] == nil || got[1] != nil {
		t.Fatalf("BatchGet over a plain L2 = %q, %v", got, err)
	}
}
