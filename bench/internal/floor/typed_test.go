package floor

import (
	"context"
	"sync/atomic"
	"testing"
)

func TestTypedLoadsOnceAndKeeps(t *testing.T) {
	var runs atomic.Int64
	var f Typed[int64]
	load := func(_ context.Context, k int64) (int64, error) { runs.Add(1); return k * 2, nil }
	for range 3 {
		if v, err := f.Get(context.Background(), 21, load); err != nil || v != 42 {
			t.Fatalf("Get = %d, %v", v, err)
		}
	}
	m, err := f.GetMany(context.Background(), []int64{21, 5}, func(_ context.Context, ks []int64) (map[int64]int64, error) {
		if len(ks) != 1 || ks[0] != 5 {
			t.Fatalf("batch load of %v, want [5]", ks)
		}
		return map[int64]int64{5: 10}, nil
	})
	if err != nil || len(m) != 2 || m[21] != 42 || m[5] != 10 || runs.Load() != 1 {
		t.Fatalf("GetMany = %v, %v after %d loads", m, err, runs.Load())
	}
}
