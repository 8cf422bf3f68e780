package tieredstore

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/internal/entry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mem(t *testing.T) *memstore.Store {
	s, err := memstore.New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func value(storedAt time.Time, ttl time.Duration) []byte {
	return entry.Encode(&entry.Entry{Status: 200, Body: []byte("x"), StoredAt: storedAt, Lifetime: ttl})
}

// TestTiers: reads go L1 then L2 and fill L1 for min(cap, remaining freshness); stale entries and
// foreign values never enter L1; writes and deletes reach both tiers. Each case runs in a synctest
// bubble, whose clock the memory tiers and the Store read: an entry fresh for 200 ms stays fresh however
// long the machine takes between the steps.
func TestTiers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		value  func(now time.Time) []byte
		inL1   bool
		maxTTL time.Duration
	}{
		{"fresh for long: capped", func(now time.Time) []byte { return value(now, time.Hour) }, true, time.Second},
		{"fresh briefly: its freshness", func(now time.Time) []byte { return value(now, 200*time.Millisecond) }, true, 200 * time.Millisecond},
		{"stale: L2 only", func(now time.Time) []byte { return value(now.Add(-time.Hour), time.Minute) }, false, 0},
		{"not an entry: L2 only", func(time.Time) []byte { return []byte("foreign") }, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				val := tt.value(time.Now())
				l1, l2 := mem(t), mem(t)
				s := New(l1, l2, WithL1TTL(time.Second))
				defer s.Close()
				if err := l2.SetEx(ctx, "k", val, time.Hour); err != nil {
					t.Fatal(err)
				}
				got, ok, err := s.Get(ctx, "k")
				if err != nil || !ok || string(got) != string(val) {
					t.Fatalf("Get = %q, %v, %v", got, ok, err)
				}
				_, inL1, _ := l1.Get(ctx, "k")
				if inL1 != tt.inL1 {
					t.Fatalf("in L1 = %v, want %v", inL1, tt.inL1)
				}
				if tt.inL1 {
					if ttl := s.l1TTLFor(val); ttl <= 0 || ttl > tt.maxTTL {
						t.Fatalf("L1 TTL %v, want in (0, %v]", ttl, tt.maxTTL)
					}
				}
				if err := s.Delete(ctx, "k"); err != nil {
					t.Fatal(err)
				}
				for _, tier := range []Tier{l1, l2} {
					if _, ok, _ := tier.Get(ctx, "k"); ok {
						t.Fatal("Delete left the key in a tier")
					}
				}
				if err := s.SetEx(ctx, "k", val, time.Hour); err != nil {
					t.Fatal(err)
				}
				if _, ok, _ := l2.Get(ctx, "k"); !ok {
					t.Fatal("SetEx did not write L2")
				}
				if _, ok, _ := l1.Get(ctx, "k"); ok != tt.inL1 {
					t.Fatalf("SetEx: in L1 = %v, want %v", ok, tt.inL1)
				}
			})
		})
	}
}

// TestNoFleetInL2: over an L2 without leases every lease is granted (per-process coalescing) and
// PurgeTag says it is unsupported.
func TestNoFleetInL2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(mem(t), mem(t))
	if _, held, err := s.TryLease(ctx, "k", time.Second); !held || err != nil {
		t.Fatalf("TryLease = %v, %v", held, err)
	}
	if stored, err := s.SetExFenced(ctx, "k", value(time.Now(), time.Minute), time.Minute, ""); !stored || err != nil {
		t.Fatalf("SetExFenced = %v, %v", stored, err)
	}
	if _, err := s.PurgeTag(ctx, "t"); err != ErrUnsupported {
		t.Fatalf("PurgeTag error %v, want ErrUnsupported", err)
	}
	if got := s.CallTimeout(); got != 0 {
		t.Fatalf("CallTimeout = %v, want 0 (memory tiers)", got)
	}
}

// TestStats: Get and BatchGet count each read under the tier that answered it.
func TestStats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l1, l2 := mem(t), mem(t)
		s := New(l1, l2)
		defer s.Close()
		if err := l2.SetEx(ctx, "a", value(time.Now(), time.Hour), time.Hour); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			name string
			read func()
			want Stats
		}{
			{"miss", func() { _, _, _ = s.Get(ctx, "none") }, Stats{Misses: 1}},
			{"from L2, copied to L1", func() { _, _, _ = s.Get(ctx, "a") }, Stats{L2Hits: 1, Misses: 1}},
			{"from L1", func() { _, _, _ = s.Get(ctx, "a") }, Stats{L1Hits: 1, L2Hits: 1, Misses: 1}},
			{"batch", func() { _, _ = s.BatchGet(ctx, []string{"a", "none"}) }, Stats{L1Hits: 2, L2Hits: 1, Misses: 2}},
		}
		for _, step := range steps {
			step.read()
			synctest.Wait()
			if got := s.Stats(); got != step.want {
				t.Fatalf("after %s: %+v, want %+v", step.name, got, step.want)
			}
		}
	})
}
