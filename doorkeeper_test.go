package stampede

import (
	"hash/fnv"
	"testing"
	"time"
)

func testKey(s string) key {
	h := fnv.New64a()
	h.Write([]byte(s))
	return key{s: s, id: h.Sum64(), shard: uint8(len(s) % numShards)}
}

func TestDoorkeeper(t *testing.T) {
	t.Parallel()
	d := &doorkeeper{minUses: 3, window: time.Minute}
	k := testKey("k")
	t0 := time.Unix(1000, 0)
	for i, want := range []bool{false, false, true, true} {
		if got := d.use(k, t0.Add(time.Duration(i)*time.Second)); got != want {
			t.Fatalf("use %d: got %v want %v", i+1, got, want)
		}
	}
	if d.use(k, t0.Add(2*time.Minute)) {
		t.Fatal("a new window starts counting again")
	}
	other := testKey("other-key")
	if d.use(other, t0) {
		t.Fatal("keys are counted separately")
	}
}
