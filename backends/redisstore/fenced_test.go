package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/internal/redistest"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// TestContract runs the store contract suite (internal/storetest: fenced writes, tags, leases,
// announcements) on a real redis-server, with a second Store over it as another replica.
func TestContract(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) stampede.Store {
			s := New(newClient(t, relaxed(srv.Addr())), WithKeyPrefix("contract:"), WithTimeout(5*time.Second))
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
		Peer: func(t *testing.T, _ stampede.Store) stampede.Store {
			s := New(newClient(t, relaxed(srv.Addr())), WithKeyPrefix("contract:"), WithTimeout(5*time.Second))
			t.Cleanup(func() { _ = s.Close() })
			return s
		},
	})
}

// TestInvalidateWaitsForReplica: once a Store has seen its master with a replica, an invalidation
// returns nil only when a replica acknowledged it, and ErrNotReplicated when none is left to do so (an
// old master during a failover), whether or not the deletion took place there.
func TestInvalidateWaitsForReplica(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := replica.Info("replication")
		if err == nil && containsLine(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not connect: %q, %v", info, err)
		}
		time.Sleep(10 * time.Millisecond) // polling a real server's state; no event to wait on
	}
	s := New(newClient(t, relaxed(master.Addr())), WithTimeout(2*time.Second))
	if err := s.SetEx(ctx, "k", []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Invalidate(ctx, "k"); err != nil {
		t.Fatalf("Invalidate with a replica: %v", err)
	}
	if v, err := replica.Do("EXISTS", "k"); err != nil || v != "0" {
		t.Fatalf("the replica still has the key (EXISTS = %q, %v) after Invalidate returned", v, err)
	}
	replica.Stop()
	if err := s.Invalidate(ctx, "k"); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("Invalidate with the replica gone = %v, want ErrNotReplicated", err)
	}
	if _, err := s.PurgeTag(ctx, "t"); !errors.Is(err, ErrNotReplicated) {
		t.Fatalf("PurgeTag with the replica gone = %v, want ErrNotReplicated", err)
	}
	off := New(newClient(t, relaxed(master.Addr())), WithTimeout(2*time.Second), WithReplicaAcks(-1))
	if err := off.Invalidate(ctx, "k"); err != nil {
		t.Fatalf("WithReplicaAcks(-1): %v", err)
	}
}

func containsLine(text, line string) bool {
	for l := range splitLines(text) {
		if l == line {
			return true
		}
	}
	return false
}

func splitLines(text string) func(func(string) bool) {
	return func(yield func(string) bool) {
		start := 0
		for i := 0; i <= len(text); i++ {
			if i == len(text) || text[i] == '\n' {
				l := text[start:i]
				if len(l) > 0 && l[len(l)-1] == '\r' {
					l = l[:len(l)-1]
				}
				if !yield(l) {
					return
				}
				start = i + 1
			}
		}
	}
}

// TestFencedCluster: tickets, leases and invalidations of keys that carry a hash tag work on a Redis
// Cluster (the ticket set and the lease share the key's slot), and a tag purge fences a write whose tag
// lives on another node.
func TestFencedCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	s := New(c, WithTimeout(5*time.Second))
	ctx := context.Background()
	for i := range 20 {
		key := "p:{" + strconv.Itoa(i) + "}"
		tk, err := s.Ticket(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s.SetFenced(ctx, key, tk, key+":v", []byte("1"), time.Hour, []string{"tag" + strconv.Itoa(i)}); err != nil || !ok {
			t.Fatalf("SetFenced with a live ticket = %v, %v", ok, err)
		}
		old, err := s.Ticket(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.PurgeTag(ctx, "tag"+strconv.Itoa(i)); err != nil || n != 1 {
			t.Fatalf("PurgeTag = %d, %v; want 1", n, err)
		}
		if _, ok, _ := s.Get(ctx, key+":v"); ok {
			t.Fatal("the tagged write survived its purge")
		}
		if ok, err := s.SetFenced(ctx, key, old, key+":v", []byte("2"), time.Hour, []string{"tag" + strconv.Itoa(i)}); err != nil || ok {
			t.Fatalf("a write with a ticket taken before the purge of its tag = %v, %v; want refused", ok, err)
		}
		tok, held, err := s.TryLease(ctx, key, time.Minute)
		if err != nil || !held {
			t.Fatalf("TryLease = %v, %v", held, err)
		}
		if err := s.Invalidate(ctx, key); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.SetFenced(ctx, key, tok, key, []byte("3"), time.Hour, nil); err != nil || ok {
			t.Fatalf("a write with a revoked lease = %v, %v; want refused", ok, err)
		}
	}
}

// TestDecodeAllocatesNoMoreThanDeclaredBound: a stored value of a few bytes that declares a huge
// decompressed length is returned as stored (a miss for the entry decoder) without an allocation sized
// by the declaration.
func TestDecodeAllocatesNoMoreThanDeclaredBound(t *testing.T) {
	planted := binary.AppendUvarint([]byte(compressedMagic), 1<<30)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 10 {
		if out := decode(planted, DefaultMaxValueBytes); string(out) != string(planted) {
			t.Fatal("a value that declares 1 GiB was decoded")
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("decoding 10 planted values allocated %d bytes", grew)
	}
}

// TestTicketTimes: tickets and lease tokens carry the server's time in microseconds as an integer (Lua
// would print a number that large in exponent notation), which is what tag purges compare.
func TestTicketTimes(t *testing.T) {
	srv := redistest.Start(t)
	s := New(newClient(t, relaxed(srv.Addr())), WithTimeout(5*time.Second))
	ctx := context.Background()
	tk, err := s.Ticket(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lease, held, err := s.TryLease(ctx, "k", time.Minute)
	if err != nil || !held {
		t.Fatalf("TryLease = %v, %v", held, err)
	}
	for _, tok := range []string{tk, lease} {
		_, at, _, ok := parseTicket(tok)
		if !ok || at < time.Now().Add(-time.Hour).UnixMicro() || at > time.Now().Add(time.Hour).UnixMicro() {
			t.Fatalf("token %q: time %d is not the server's time in µs", tok, at)
		}
	}
	for _, tok := range []string{tk, lease} {
		if ok, err := s.SetFenced(ctx, "k", tok, "k", []byte("v"), time.Minute, []string{"fresh-tag"}); err != nil || !ok {
			t.Fatalf("SetFenced(%q) with an unpurged tag = %v, %v", tok, ok, err)
		}
	}
}

// TestTagPurgeRevokesTheTicketOfAVariant: a write under another key than its ticket's (a variant of a
// varying response) that carries a tag has its ticket revoked by a purge of the tag, so a later write
// with the same ticket lands nowhere, whatever tags it carries.
func TestTagPurgeRevokesTheTicketOfAVariant(t *testing.T) {
	srv := redistest.Start(t)
	s := New(newClient(t, relaxed(srv.Addr())), WithTimeout(5*time.Second))
	ctx := context.Background()
	tk, err := s.Ticket(ctx, "{u}", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SetFenced(ctx, "{u}", tk, "{u}~v1", []byte("1"), time.Hour, []string{"x"}); err != nil || !ok {
		t.Fatalf("first write = %v, %v", ok, err)
	}
	if _, err := s.PurgeTag(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.SetFenced(ctx, "{u}", tk, "{u}~v2", []byte("1"), time.Hour, []string{"y"}); err != nil || ok {
		t.Fatalf("a write with the ticket of a purged write = %v, %v; want refused", ok, err)
	}
}
