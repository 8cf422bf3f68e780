package redisstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/redistest"
)

// TestBatchingServesABurst: 5,000 concurrent Gets and then 5,000 concurrent SetExs through a client with
// go-redis's defaults but a pool of two connections all succeed with the right values, carried by far
// fewer round trips than calls (MGETs and pipelines), and each key's value reaches its own caller.
func TestBatchingServesABurst(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	client := newClient(t, &redis.Options{Addr: srv.Addr(), PoolSize: 2})
	s := New(client, WithTimeout(30*time.Second)) // generous: this tests the batching, not the machine
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	const n = 5000
	value := func(i int) []byte { return []byte(fmt.Sprintf("value %d", i)) }

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if err := s.SetEx(ctx, fmt.Sprint("{k", i, "}"), value(i), time.Minute); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	for i := range n {
		wg.Go(func() {
			v, ok, err := s.Get(ctx, fmt.Sprint("{k", i, "}"))
			switch {
			case err != nil:
				errs <- err
			case !ok || !bytes.Equal(v, value(i)):
				errs <- fmt.Errorf("key %d: %q, %v", i, v, ok)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mgets, sets := srv.CommandCalls(t, "mget"), srv.CommandCalls(t, "set")
	if sets != n {
		t.Errorf("%d SETs for %d SetExs", sets, n)
	}
	if mgets == 0 || mgets > n/4 {
		t.Errorf("%d MGETs for %d concurrent Gets: the burst was not batched", mgets, n)
	}
	if got := srv.CommandCalls(t, "get"); got != 0 {
		t.Errorf("%d plain GETs", got)
	}
	t.Logf("%d Gets in %d MGETs", n, mgets)
}

// TestBatchingSameKey: concurrent Gets of one key in one batch ask Redis for it once and all get it.
func TestBatchingSameKey(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := New(newClient(t, relaxed(srv.Addr())))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	if err := s.SetEx(ctx, "{hot}", []byte("v"), time.Minute); err != nil {
		t.Fatal(err)
	}
	calls := make([]*getCall, 10)
	for i := range calls {
		calls[i] = &getCall{key: s.key("{hot}"), done: make(chan getResult, 1)}
	}
	calls = append(calls, &getCall{key: s.key("{cold}"), done: make(chan getResult, 1)})
	s.execGets(calls)
	for i, c := range calls {
		r := <-c.done
		want := "v"
		if i == len(calls)-1 {
			want = ""
		}
		if r.err != nil || string(r.value) != want {
			t.Errorf("call %d: %q, %v", i, r.value, r.err)
		}
	}
}

// TestBatchingOff: WithBatching(1) sends each call on its own; a negative size panics.
func TestBatchingOff(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := New(newClient(t, relaxed(srv.Addr())), WithBatching(1))
	t.Cleanup(func() { _ = s.Close() })
	if _, _, err := s.Get(context.Background(), "{x}"); err != nil {
		t.Fatal(err)
	}
	if srv.CommandCalls(t, "get") != 1 || srv.CommandCalls(t, "mget") != 0 {
		t.Error("WithBatching(1) must send a plain GET")
	}
	defer func() {
		if recover() == nil {
			t.Error("WithBatching(-1) must panic")
		}
	}()
	New(newClient(t, relaxed(srv.Addr())), WithBatching(-1))
}

// TestBatcherTake: a batch is the batch size while the queue is short, an even share of a long queue
// over the batches in flight (at most maxBatchGrowth times the size), and never carries a call whose
// caller is gone.
func TestBatcherTake(t *testing.T) {
	pending := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = i
		}
		return p
	}
	for _, tt := range []struct {
		size, queued, want int
	}{
		{128, 10, 10},
		{128, 128 * maxBatchesInFlight, 128},
		{128, 256 * maxBatchesInFlight, 256},
		{128, 1_000_000, 128 * maxBatchGrowth},
		{1, 1000, 1}, // WithBatching(1): each call on its own, always
	} {
		b := batcher[int]{size: tt.size}
		q := &queue[int]{pending: pending(tt.queued)}
		if got := len(b.takeLocked(q)); got != tt.want {
			t.Errorf("size %d, %d queued: batch of %d, want %d", tt.size, tt.queued, got, tt.want)
		}
		if len(q.pending) != tt.queued-tt.want {
			t.Errorf("size %d, %d queued: %d left, want %d", tt.size, tt.queued, len(q.pending), tt.queued-tt.want)
		}
	}

	b := batcher[int]{size: 4, gone: func(i int) bool { return i%2 == 0 }}
	q := &queue[int]{pending: pending(10)}
	if got := b.takeLocked(q); !slices.Equal(got, []int{1, 3, 5, 7}) {
		t.Errorf("batch %v, want the live calls 1 3 5 7", got)
	}
	if !slices.Equal(q.pending, []int{8, 9}) {
		t.Errorf("left %v, want 8 9", q.pending)
	}
}

// TestBatcherPerNode: while every batch one node may have in flight is stuck, a call for another node
// runs; no batch mixes nodes; and the stuck node's calls all run once it answers.
func TestBatcherPerNode(t *testing.T) {
	unblock := make(chan struct{})
	ran := make(chan string, 100)
	var mixed atomic.Bool
	b := batcher[string]{size: 4, exec: func(batch []string) {
		for _, c := range batch {
			if c[0] != batch[0][0] {
				mixed.Store(true)
			}
		}
		if batch[0][0] == 'a' {
			<-unblock
		}
		for _, c := range batch {
			ran <- c
		}
	}}
	const stuck = 4 * maxBatchesInFlight
	for i := range stuck {
		b.submit("node-a", fmt.Sprint("a", i))
	}
	b.submit("node-b", "b")
	select {
	case c := <-ran:
		if c != "b" {
			t.Fatalf("%s ran while node a was stuck", c)
		}
	case <-time.After(time.Minute):
		t.Fatal("the call for node b did not run while node a's batches were stuck")
	}
	close(unblock)
	for range stuck {
		select {
		case <-ran:
		case <-time.After(time.Minute):
			t.Fatal("node a's calls did not all run once it answered")
		}
	}
	if mixed.Load() {
		t.Error("a batch carried calls for two nodes")
	}
}

// TestBatchContext: a batch ends at its calls' latest deadline, or after the store's timeout when none
// has one.
func TestBatchContext(t *testing.T) {
	now := time.Now()
	early, cancel1 := context.WithDeadline(context.Background(), now.Add(time.Second))
	defer cancel1()
	late, cancel2 := context.WithDeadline(context.Background(), now.Add(time.Hour))
	defer cancel2()
	ctx, cancel := batchContext(time.Minute, []*getCall{{ctx: early}, {ctx: late}, {}})
	defer cancel()
	if d, _ := ctx.Deadline(); !d.Equal(now.Add(time.Hour)) {
		t.Errorf("deadline %v, want the latest call's, %v", d, now.Add(time.Hour))
	}
	ctx, cancel = batchContext(time.Minute, []*setCall{{}})
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || d.Before(now.Add(time.Minute)) {
		t.Errorf("deadline %v, %v; want the store's timeout from now", d, ok)
	}
}
