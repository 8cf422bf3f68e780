package stampede

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

func testKey(s string) key {
	h := fnv.New64a()
	h.Write([]byte(s))
	return key{s: s, id: h.Sum64(), shard: uint8(len(s) % numShards)}
}

func TestCoalescerRunPublishesAndForgets(t *testing.T) {
	t.Parallel()
	var c coalescer[int]
	k := testKey("a")
	f, leader, retry := c.acquire(k, c.epoch(k.shard))
	if !leader || retry != noRetry {
		t.Fatalf("first acquire: leader=%v retry=%v", leader, retry)
	}
	g, leader, _ := c.acquire(k, c.epoch(k.shard))
	if leader || g != f {
		t.Fatal("second acquire must join the first flight")
	}
	persisted := make(chan struct{})
	proceed := make(chan struct{})
	v := c.run(f, func() (int, func()) {
		return 7, func() { close(persisted); <-proceed }
	})
	if v != 7 {
		t.Fatalf("run returned %d", v)
	}
	if got, err := g.wait(context.Background()); got != 7 || err != nil {
		t.Fatalf("waiter got %d, %v", got, err)
	}
	<-persisted
	if c.lookup(k) != f {
		t.Fatal("the flight must stay until its persist step returns")
	}
	close(proceed)
	c.wait()
	if c.lookup(k) != nil {
		t.Fatal("the flight must be forgotten after persisting")
	}
}

func TestCoalescerEpochRetry(t *testing.T) {
	t.Parallel()
	var c coalescer[int]
	k, other := testKey("k"), testKey("other")
	other.shard = k.shard
	before := c.epoch(k.shard)

	f, _, _ := c.acquire(other, c.epoch(other.shard))
	c.run(f, func() (int, func()) { return 1, nil })
	if _, leader, retry := c.acquire(k, before); !leader || retry != noRetry {
		t.Fatalf("an unrelated key finishing must not force a retry: leader=%v retry=%v", leader, retry)
	}

	var d coalescer[int]
	before = d.epoch(k.shard)
	f, _, _ = d.acquire(k, before)
	d.run(f, func() (int, func()) { return 1, nil })
	if _, leader, retry := d.acquire(k, before); leader || retry != retryKey {
		t.Fatalf("the same key finishing since the look-up must force a retry: leader=%v retry=%v", leader, retry)
	}

	// More unrelated flights finish than the shard remembers: it cannot tell, and says so.
	var e coalescer[int]
	before = e.epoch(k.shard)
	for i := range recentLen + 1 {
		o := testKey(fmt.Sprint("other", i))
		o.shard = k.shard
		f, _, _ := e.acquire(o, noEpoch)
		e.run(f, func() (int, func()) { return 1, nil })
	}
	if _, leader, retry := e.acquire(k, before); leader || retry != retryUnknown {
		t.Fatalf("past what the shard remembers: leader=%v retry=%v, want retryUnknown", leader, retry)
	}
}

func TestCoalescerPanicAndGoexit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		load    func() (int, func())
		wantErr func(error) bool
	}{
		{"panic", func() (int, func()) { panic("boom") }, func(err error) bool {
			pe, ok := err.(*PanicError)
			return ok && pe.Value == "boom" && len(pe.Stack) > 0
		}},
		{"abort", func() (int, func()) { panic(http.ErrAbortHandler) }, func(err error) bool { return err == http.ErrAbortHandler }},
		{"goexit", func() (int, func()) { runtime.Goexit(); return 0, nil }, func(err error) bool { return err == errGoexit }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c coalescer[int]
			k := testKey("p")
			f, _, _ := c.acquire(k, c.epoch(k.shard))
			w, _, _ := c.acquire(k, c.epoch(k.shard))
			var wg sync.WaitGroup
			wg.Go(func() {
				defer func() { _ = recover() }()
				c.run(f, tt.load)
			})
			wg.Wait()
			if _, err := w.wait(context.Background()); !tt.wantErr(err) {
				t.Fatalf("waiter error %v", err)
			}
			if c.lookup(k) != nil {
				t.Fatal("flight not forgotten")
			}
		})
	}
}

func TestFlightWaitHonoursContext(t *testing.T) {
	t.Parallel()
	f := &flight[int]{done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := f.wait(ctx); err == nil {
		t.Fatal("wait must return when its context ends")
	}
}

func TestCoalescerPersistBackpressure(t *testing.T) {
	t.Parallel()
	var c coalescer[int]
	block := make(chan struct{})
	started := make(chan struct{}, maxPendingPersists)
	for i := range maxPendingPersists {
		k := testKey(fmt.Sprint("k", i))
		f, _, _ := c.acquire(k, c.epoch(k.shard))
		c.run(f, func() (int, func()) { return i, func() { started <- struct{}{}; <-block } })
	}
	for range maxPendingPersists {
		<-started
	}
	// The cap is reached: the next persist runs on the caller's goroutine, before run returns.
	k := testKey("over")
	f, _, _ := c.acquire(k, c.epoch(k.shard))
	ranInline := false
	c.run(f, func() (int, func()) { return 0, func() { ranInline = true } })
	if !ranInline || c.lookup(k) != nil {
		t.Fatalf("over the cap the persist must run inline and the flight be forgotten: inline=%v", ranInline)
	}
	close(block)
	c.wait()
}
