package redisstore

// Tests of routing.go and of the per-node queues in autobatch.go and batch.go: a cluster master that is
// stalled or dead costs its own keys only, and the store finds a failed master's successor.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/redistest"
)

// TestClusterMasterFrozen: with one master frozen (SIGSTOP) and its keys' Gets filling every batch the
// store may have in flight for it, Gets of keys on the other masters, issued at the same time, return
// their values, and a BatchGet of keys on all masters returns the healthy ones' values. Nothing is
// timed: the frozen master stays frozen until every healthy call has returned, so a healthy call that
// waited for it would have come back with its error instead.
func TestClusterMasterFrozen(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: cl.Addrs(), ContextTimeoutEnabled: true, MaxRetries: -1, ReadTimeout: 5 * time.Second,
	})
	t.Cleanup(func() { _ = client.Close() })
	// The frozen master's calls end at this timeout; the healthy ones must not wait for them.
	s := New(client, WithTimeout(10*time.Second))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	frozen := cl.Nodes()[0]
	var onFrozen, healthy []string
	want := map[string][]byte{}
	for i := 0; len(onFrozen) < 4*maxBatchesInFlight || len(healthy) < 60; i++ {
		k := digestKey(i)
		want[k] = makeEntry(100+i, false, nil)
		if err := s.SetEx(ctx, k, want[k], time.Minute); err != nil {
			t.Fatal(err)
		}
		if cl.MasterOf(k) == frozen {
			onFrozen = append(onFrozen, k)
		} else {
			healthy = append(healthy, k)
		}
	}

	frozen.Freeze()
	t.Cleanup(frozen.Thaw) // before the server's own cleanup kills it, so the frozen calls end cleanly

	// The frozen master's Gets: more than its batches in flight hold, so some wait in its queue.
	frozenErrs := make(chan error, len(onFrozen))
	for _, k := range onFrozen {
		go func() {
			_, _, err := s.Get(ctx, k)
			frozenErrs <- err
		}()
	}
	node := s.nodeOf(ctx, s.key(onFrozen[0]))
	waitUntil(t, "the frozen master's batches to fill", func() bool {
		s.gets.mu.Lock()
		defer s.gets.mu.Unlock()
		q := s.gets.queues[node]
		return q != nil && q.inFlight == maxBatchesInFlight
	})

	// The healthy masters' Gets and a BatchGet over everything, at the same time.
	var wg sync.WaitGroup
	errs := make(chan error, len(healthy)+1)
	for _, k := range healthy {
		wg.Go(func() {
			got, ok, err := s.Get(ctx, k)
			if err != nil || !ok || !bytes.Equal(got, want[k]) {
				errs <- fmt.Errorf("Get %s with another master frozen: ok %v, err %v, %d bytes", k, ok, err, len(got))
			}
		})
	}
	var batchErr error
	var batch [][]byte
	all := append(append([]string(nil), healthy...), onFrozen...)
	wg.Go(func() { batch, batchErr = s.BatchGet(ctx, all) })
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if batchErr == nil {
		t.Error("BatchGet with keys on a frozen master: no error")
	}
	for i, k := range all {
		switch {
		case i < len(healthy) && !bytes.Equal(batch[i], want[k]):
			t.Errorf("BatchGet: key %s on a healthy master: %d bytes, want its %d", k, len(batch[i]), len(want[k]))
		case i >= len(healthy) && batch[i] != nil:
			t.Errorf("BatchGet: key %s on the frozen master has a value", k)
		}
	}
	for range onFrozen {
		if err := <-frozenErrs; !errors.Is(err, ErrTimeout) {
			t.Errorf("Get of a key on the frozen master: %v, want ErrTimeout", err)
		}
	}
}

// TestClusterFrozenMasterFailsFast: once reads of a frozen (SIGSTOP) master's keys have timed out a
// few times, its keys' reads fail at once with ErrNodeDown instead of each waiting for the timeout,
// batched or not; the other masters' keys are read as before; and once the master is thawed a probe
// finds it and its keys are read again.
func TestClusterFrozenMasterFailsFast(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: cl.Addrs(), ContextTimeoutEnabled: true, MaxRetries: -1, ReadTimeout: 5 * time.Second,
	})
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	for _, batching := range []int{DefaultBatchSize, 1} {
		s := New(client, WithTimeout(200*time.Millisecond), WithBatching(batching))
		t.Cleanup(func() { _ = s.Close() })
		frozen := cl.Nodes()[0]
		var onFrozen, healthy string
		for i := 0; onFrozen == "" || healthy == ""; i++ {
			k := fmt.Sprintf("ff%d:%d", batching, i)
			if err := s.SetEx(ctx, k, makeEntry(10, false, nil), time.Minute); err != nil {
				t.Fatal(err)
			}
			if cl.MasterOf(k) == frozen {
				onFrozen = k
			} else {
				healthy = k
			}
		}

		frozen.Freeze()
		t.Cleanup(frozen.Thaw) // if the test stops while it is frozen
		timeouts := 0
		for {
			_, _, err := s.Get(ctx, onFrozen)
			if errors.Is(err, ErrNodeDown) {
				break
			}
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("batching %d: Get of a key on the frozen master: %v, want ErrTimeout, then ErrNodeDown", batching, err)
			}
			if timeouts++; timeouts > 20 {
				t.Fatalf("batching %d: still no ErrNodeDown after %d timeouts", batching, timeouts)
			}
		}
		if timeouts < nodeThreshold {
			t.Errorf("batching %d: ErrNodeDown after %d timeouts, want at least %d", batching, timeouts, nodeThreshold)
		}
		if _, ok, err := s.Get(ctx, healthy); err != nil || !ok {
			t.Errorf("batching %d: Get of a key on a healthy master: ok %v, err %v", batching, ok, err)
		}

		frozen.Thaw()
		waitUntil(t, "the thawed master's keys to be read again", func() bool {
			_, ok, err := s.Get(ctx, onFrozen)
			return err == nil && ok
		})
	}
}

// TestClusterFailoverReload: after a master is killed and its replica has taken over, the store reaches
// the replica by itself: its failed calls make the client reload its slot map. The client's own periodic
// reload is set to an hour, so nothing else would.
func TestClusterFailoverReload(t *testing.T) {
	t.Parallel()
	cl := redistest.StartClusterWith(t, redistest.ClusterConfig{Masters: 3, Replicas: 1, NodeTimeout: time.Second})
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: cl.Addrs(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1,
		ClusterStateReloadInterval: time.Hour,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := New(client, WithTimeout(5*time.Second))
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	victim := cl.Masters()[0]
	var key string
	for i := 0; key == ""; i++ {
		if k := digestKey(i); cl.MasterOf(k) == victim {
			key = k
		}
	}
	if err := s.SetEx(ctx, key, []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	cl.WaitReplicated(victim) // the write must reach the replica before the master dies

	victim.Stop()
	successor := cl.WaitFailover(victim)
	if got, err := successor.Do("GET", key); err != nil || got != "v" {
		t.Fatalf("the new master holds %q, %v", got, err)
	}
	var last error
	waitUntil(t, "a Get through the store to reach the new master", func() bool {
		v, ok, err := s.Get(ctx, key)
		last = err
		return err == nil && ok && string(v) == "v"
	})
	t.Logf("last error before the store reached the new master: %v", last)
}

// BenchmarkClusterRouting: what finding a key's master costs a batched call on a cluster client (the
// per-master queue's key), beside a whole Get through the store on the same cluster.
func BenchmarkClusterRouting(b *testing.B) {
	cl := redistest.StartCluster(b, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = client.Close() })
	s := New(client)
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	key := digestKey(1)
	if err := s.SetEx(ctx, key, []byte("v"), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Run("nodeOf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if s.nodeOf(ctx, key) == "" {
				b.Fatal("no master for the key")
			}
		}
	})
	b.Run("Get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := s.Get(ctx, key); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}
