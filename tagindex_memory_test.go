package stampede

// This file bounds the memory of the in-process tag index (tags.go) when it is full.

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestTagIndexMemory: a full index (maxTaggedKeys pairs, store keys as the middleware makes them) holds
// less than tagIndexBudget of live heap, the figure SECURITY.md gives.
func TestTagIndexMemory(t *testing.T) {
	const tagIndexBudget = 30 << 20
	var m1, m2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m1)
	idx := newTagIndex(maxTaggedKeys, nil)
	now := time.Unix(1000, 0)
	for i := 0; idx.n < maxTaggedKeys; i++ {
		k := "stampede:1:{" + strconv.Itoa(1_000_000_000_000_000+i) + "0123456789abcdef}"
		if _, ok := idx.add([]string{"item-" + strconv.Itoa(i), "all"}, []string{k}, now.Add(time.Minute), now); !ok {
			break
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m2)
	grown := int64(m2.HeapAlloc) - int64(m1.HeapAlloc)
	t.Logf("%d pairs: %.1f MiB, %d bytes a pair", idx.n, float64(grown)/(1<<20), grown/int64(idx.n))
	if grown > tagIndexBudget {
		t.Fatalf("a full tag index holds %d bytes, more than %d", grown, tagIndexBudget)
	}
	runtime.KeepAlive(idx)
}
