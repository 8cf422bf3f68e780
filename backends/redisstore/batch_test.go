package redisstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/internal/redistest"
)

// digestKey returns a key shaped like the middleware's: a prefix and a hex digest.
func digestKey(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return "stampede:v1:" + hex.EncodeToString(sum[:16])
}

func TestBatchGetSingle(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := New(newClient(t, relaxed(srv.Addr())), WithKeyPrefix("p:"), WithCompression(0), WithTimeout(5*time.Second))
	ctx := context.Background()

	want := map[string][]byte{}
	for i := range 20 {
		k := digestKey(i)
		want[k] = makeEntry(i*300, false, nil) // some above the compression threshold, some below
		if err := s.SetEx(ctx, k, want[k], time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	want["{tag}a"] = []byte("foreign value")
	if err := s.SetEx(ctx, "{tag}a", want["{tag}a"], time.Minute); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		keys []string
	}{
		{"empty", nil},
		{"one hit", []string{digestKey(3)}},
		{"one miss", []string{"nope"}},
		{"mixed", []string{digestKey(0), "miss-1", digestKey(7), "{tag}a", "{tag}b", digestKey(19), "miss-2"}},
		{"duplicates", []string{digestKey(5), digestKey(5), "miss", "miss"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.CommandCalls(t, "mget")
			got, err := s.BatchGet(ctx, tt.keys)
			if err != nil {
				t.Fatalf("BatchGet: %v", err)
			}
			checkBatch(t, tt.keys, got, want)
			wantMGETs := 1
			if len(tt.keys) == 0 {
				wantMGETs = 0
			}
			if n := srv.CommandCalls(t, "mget") - before; n != wantMGETs {
				t.Fatalf("%d MGETs for one BatchGet, want %d", n, wantMGETs)
			}
		})
	}
}

func checkBatch(t *testing.T, keys []string, got [][]byte, want map[string][]byte) {
	t.Helper()
	if len(got) != len(keys) {
		t.Fatalf("BatchGet returned %d values for %d keys", len(got), len(keys))
	}
	for i, k := range keys {
		w, hit := want[k]
		switch {
		case hit && !bytes.Equal(got[i], w):
			t.Errorf("value %d (%q): %d bytes, want the %d stored", i, k, len(got[i]), len(w))
		case !hit && got[i] != nil:
			t.Errorf("value %d (%q): %d bytes, want nil for a miss", i, k, len(got[i]))
		}
	}
}

func TestGroup(t *testing.T) {
	t.Parallel()
	keys := []string{"{u1}a", "x", "{u1}b", "{u2}a", "{}x", "{u2}b", "x"}
	tests := []struct {
		name string
		mode batchMode
		want [][]int // indexes per group, in order of first appearance
	}{
		// {}x has an empty tag, so its whole key is hashed.
		{"by tag", batchByTag, [][]int{{0, 2}, {1, 6}, {3, 5}, {4}}},
	}
	// By slot, groups are the same as by tag here unless two tags share a slot; derive from slot().
	bySlot := map[int]int{}
	var slotWant [][]int
	for i, k := range keys {
		g, ok := bySlot[slot(k)]
		if !ok {
			g = len(slotWant)
			bySlot[slot(k)] = g
			slotWant = append(slotWant, nil)
		}
		slotWant[g] = append(slotWant[g], i)
	}
	tests = append(tests, struct {
		name string
		mode batchMode
		want [][]int
	}{"by slot", batchBySlot, slotWant})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &Store{batch: tt.mode}
			groups := s.group(keys)
			if got, want := fmt.Sprint(idxs(groups)), fmt.Sprint(tt.want); got != want {
				t.Fatalf("groups %s, want %s", got, want)
			}
			for _, g := range groups {
				for j, i := range g.idx {
					if g.keys[j] != keys[i] {
						t.Fatalf("group key %q at index %d, want %q", g.keys[j], i, keys[i])
					}
				}
			}
		})
	}
}

func idxs(groups []keyGroup) [][]int {
	out := make([][]int, len(groups))
	for i, g := range groups {
		out[i] = g.idx
	}
	return out
}

func TestCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: cl.Addrs(), ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second, MaxRetries: -1,
	})
	t.Cleanup(func() { _ = client.Close() })
	s := New(client, WithTimeout(5*time.Second), WithCompression(0))
	if s.guarded || s.batch != batchBySlot {
		t.Fatalf("cluster client: guarded %v, batch %v; want false, by slot", s.guarded, s.batch)
	}
	ctx := context.Background()

	// Subtests run in order: they share the cluster and count its MGETs.
	const n = 300
	want := map[string][]byte{}
	t.Run("spread over all masters", func(t *testing.T) {
		for i := range n {
			k := digestKey(i)
			want[k] = makeEntry(i*10, false, nil)
			if err := s.SetEx(ctx, k, want[k], time.Minute); err != nil {
				t.Fatalf("SetEx %s: %v", k, err)
			}
		}
		total := 0
		for _, node := range cl.Nodes() {
			size, err := node.Do("DBSIZE")
			if err != nil {
				t.Fatal(err)
			}
			c, _ := strconv.Atoi(size)
			if c == 0 {
				t.Errorf("master %s holds no keys", node.Addr())
			}
			total += c
		}
		if total != n {
			t.Errorf("masters hold %d keys, want %d", total, n)
		}
		for k, v := range want {
			got, ok, err := s.Get(ctx, k)
			if err != nil || !ok || !bytes.Equal(got, v) {
				t.Fatalf("Get %s = ok %v, err %v, %d bytes; want the %d stored", k, ok, err, len(got), len(v))
			}
		}
		if err := s.Delete(ctx, digestKey(0)); err != nil {
			t.Fatal(err)
		}
		delete(want, digestKey(0))
		if _, ok, err := s.Get(ctx, digestKey(0)); ok || err != nil {
			t.Fatalf("Get after Delete = %v, %v", ok, err)
		}
	})

	t.Run("slots match CLUSTER KEYSLOT", func(t *testing.T) {
		node := cl.Nodes()[0]
		for _, k := range []string{"", "a", "foo", "{user1000}.following", "{}x", "a{b}c{d}", digestKey(1)} {
			got, err := node.Do("CLUSTER", "KEYSLOT", k)
			if err != nil {
				t.Fatal(err)
			}
			if want := strconv.Itoa(slot(k)); got != want {
				t.Errorf("slot(%q) = %s, CLUSTER KEYSLOT says %s", k, want, got)
			}
		}
	})

	t.Run("BatchGet", func(t *testing.T) {
		for _, k := range []string{"{u1}a", "{u1}b", "{u2}a"} {
			want[k] = makeEntry(50, false, nil)
			if err := s.SetEx(ctx, k, want[k], time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		var many []string
		for i := range 60 {
			many = append(many, digestKey(i)) // digestKey(0) was deleted: a miss
		}
		many = append(many, "miss-a", "miss-b")
		tests := []struct {
			name string
			keys []string
		}{
			{"hash tags", []string{"{u1}a", "{u1}b", "{u1}c", "{u2}a", "{u2}b"}},
			{"mixed", many},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				slots := map[int]bool{}
				for _, k := range tt.keys {
					slots[slot(k)] = true
				}
				before := clusterCalls(t, cl, "mget")
				got, err := s.BatchGet(ctx, tt.keys)
				if err != nil {
					t.Fatalf("BatchGet: %v", err)
				}
				checkBatch(t, tt.keys, got, want)
				if n := clusterCalls(t, cl, "mget") - before; n != len(slots) {
					t.Fatalf("%d MGETs for %d keys in %d slots, want one per slot", n, len(tt.keys), len(slots))
				}
			})
		}
	})

	t.Run("one master down", func(t *testing.T) {
		fast := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cl.Addrs(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1,
			DialTimeout: 200 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond,
		})
		t.Cleanup(func() { _ = fast.Close() })
		s := New(fast)
		var keys []string
		for i := 1; i <= 60; i++ {
			keys = append(keys, digestKey(i))
		}
		if _, err := s.BatchGet(ctx, keys); err != nil { // learn the slot map while all are up
			t.Fatal(err)
		}
		down := cl.Nodes()[2]
		onDown := map[string]bool{}
		for _, k := range keys {
			if n, err := down.Do("EXISTS", k); err == nil && n == "1" {
				onDown[k] = true
			}
		}
		down.Stop()
		start := time.Now()
		got, err := s.BatchGet(ctx, keys)
		if d := time.Since(start); d > hangAfter {
			t.Errorf("BatchGet with a master down took %v: it waits for something other than its timeout (%v)",
				d, DefaultTimeout)
		}
		if err == nil {
			t.Fatal("BatchGet with a master down: no error")
		}
		if len(onDown) == 0 || len(onDown) == len(keys) {
			t.Fatalf("%d of %d keys on the stopped master; want some, not all", len(onDown), len(keys))
		}
		// Values of live masters come back unless go-redis failed the whole pipeline (it does when its
		// retry backoff for the dead node outlasts the deadline); either way, never a wrong value.
		served := 0
		for i, k := range keys {
			switch {
			case got[i] == nil:
			case onDown[k]:
				t.Errorf("key %q on the stopped master has a value", k)
			case !bytes.Equal(got[i], want[k]):
				t.Errorf("key %q: %d bytes, want the %d stored", k, len(got[i]), len(want[k]))
			default:
				served++
			}
		}
		t.Logf("BatchGet with a master down: %d of %d keys on it, %d served from live masters; err: %.200s",
			len(onDown), len(keys), served, err)
	})
}

func clusterCalls(t *testing.T, cl *redistest.Cluster, cmd string) int {
	total := 0
	for _, node := range cl.Nodes() {
		total += node.CommandCalls(t, cmd)
	}
	return total
}
