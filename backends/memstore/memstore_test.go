package memstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The module's go.sum does not cover testify's dependencies, so the tests use these few helpers.

// noError fails the test at once if err is not nil.
func noError(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", prefix(msg), err)
	}
}

// equal fails the test at once if got is not want.
func equal[T comparable](t testing.TB, got, want T, msg ...any) {
	t.Helper()
	if got != want {
		t.Fatalf("%sgot %v, want %v", prefix(msg), got, want)
	}
}

// atMost fails the test at once if got is above limit.
func atMost[T int64 | float64](t testing.TB, got, limit T, msg ...any) {
	t.Helper()
	if got > limit {
		t.Fatalf("%sgot %v, want at most %v", prefix(msg), got, limit)
	}
}

// prefix formats the optional message of a failed check.
func prefix(msg []any) string {
	if len(msg) == 0 {
		return ""
	}
	if format, ok := msg[0].(string); ok {
		return fmt.Sprintf(format, msg[1:]...) + ": "
	}
	return fmt.Sprint(msg...) + ": "
}

// newStore returns a store that is closed when the test ends, so goleak sees no goroutine of it.
func newStore(t testing.TB, maxBytes int64, opts ...Option) *Store {
	t.Helper()
	s, err := New(maxBytes, opts...)
	noError(t, err)
	t.Cleanup(s.Close)
	return s
}

// residentBytes is the sum of the charges of the entries in the table, whether or not the eviction
// policy has accounted for them yet.
func residentBytes(s *Store) (n int64) {
	for k, it := range s.cache.All() {
		n += int64(len(k)) + int64(len(it.value)) + Overhead
	}
	return n
}

func TestNew_InvalidSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxBytes int64
	}{
		{name: "zero", maxBytes: 0},
		{name: "negative", maxBytes: -1},
		{name: "min int64", maxBytes: math.MinInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(tt.maxBytes)
			if s != nil {
				t.Fatalf("New(%d) returned a store", tt.maxBytes)
			}
			if !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("New(%d) = %v, want an error wrapping ErrInvalidSize", tt.maxBytes, err)
			}
			equal(t, strings.HasPrefix(err.Error(), "memstore: "), true, err.Error())
			equal(t, strings.Contains(err.Error(), strconv.FormatInt(tt.maxBytes, 10)), true, err.Error())
		})
	}
}

func TestNew_LargeBudget(t *testing.T) {
	t.Parallel()
	// A budget above what one entry's weight can express is valid; only single entries are capped.
	s := newStore(t, 1<<40)
	equal(t, s.Stats().MaxBytes, int64(1<<40))
	equal(t, s.maxEntry, int64(math.MaxUint32))
}

func TestStore_Operations(t *testing.T) {
	t.Parallel()
	type op struct {
		kind  string // "set", "get", "del"
		key   string
		value string // for set; the expected value for get
		found bool   // for get
	}
	tests := []struct {
		name string
		ops  []op
	}{
		{name: "round trip", ops: []op{
			{kind: "set", key: "a", value: "alpha"},
			{kind: "get", key: "a", value: "alpha", found: true},
		}},
		{name: "miss", ops: []op{
			{kind: "get", key: "nope"},
		}},
		{name: "miss beside a hit", ops: []op{
			{kind: "set", key: "a", value: "alpha"},
			{kind: "get", key: "b"},
		}},
		{name: "delete", ops: []op{
			{kind: "set", key: "a", value: "alpha"},
			{kind: "del", key: "a"},
			{kind: "get", key: "a"},
		}},
		{name: "delete missing", ops: []op{
			{kind: "del", key: "a"},
			{kind: "get", key: "a"},
		}},
		{name: "overwrite", ops: []op{
			{kind: "set", key: "a", value: "alpha"},
			{kind: "set", key: "a", value: "beta"},
			{kind: "get", key: "a", value: "beta", found: true},
		}},
		{name: "empty value", ops: []op{
			{kind: "set", key: "a", value: ""},
			{kind: "get", key: "a", value: "", found: true},
		}},
		{name: "empty key", ops: []op{
			{kind: "set", key: "", value: "x"},
			{kind: "get", key: "", value: "x", found: true},
		}},
		{name: "set after delete", ops: []op{
			{kind: "set", key: "a", value: "alpha"},
			{kind: "del", key: "a"},
			{kind: "set", key: "a", value: "gamma"},
			{kind: "get", key: "a", value: "gamma", found: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := newStore(t, 1<<20)
			for i, o := range tt.ops {
				switch o.kind {
				case "set":
					noError(t, s.SetEx(ctx, o.key, []byte(o.value), time.Hour), "op %d", i)
				case "del":
					noError(t, s.Delete(ctx, o.key), "op %d", i)
				case "get":
					v, ok, err := s.Get(ctx, o.key)
					noError(t, err, "op %d", i)
					equal(t, ok, o.found, "op %d", i)
					if o.found {
						equal(t, string(v), o.value, "op %d", i)
					} else {
						equal(t, v == nil, true, "op %d: value of a miss", i)
					}
				default:
					t.Fatalf("unknown op %q", o.kind)
				}
			}
		})
	}
}

func TestStore_GetReturnsStoredSlice(t *testing.T) {
	t.Parallel()
	s := newStore(t, 1<<20)
	value := []byte("the very same bytes")
	noError(t, s.SetEx(t.Context(), "k", value, time.Hour))
	got, ok, err := s.Get(t.Context(), "k")
	noError(t, err)
	equal(t, ok, true)
	equal(t, unsafe.SliceData(got), unsafe.SliceData(value), "Get returned a copy")
	equal(t, len(got), len(value))
}

func TestStore_NonPositiveTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ttl      time.Duration
		existing bool // whether the key holds a value before the SetEx
	}{
		{name: "zero", ttl: 0},
		{name: "negative", ttl: -time.Second},
		{name: "min duration", ttl: math.MinInt64},
		{name: "zero removes existing", ttl: 0, existing: true},
		{name: "negative removes existing", ttl: -1, existing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := newStore(t, 1<<20)
			if tt.existing {
				noError(t, s.SetEx(ctx, "k", []byte("old"), time.Hour))
			}
			noError(t, s.SetEx(ctx, "k", []byte("new"), tt.ttl))
			_, ok, err := s.Get(ctx, "k")
			noError(t, err)
			equal(t, ok, false)
			s.CleanUp()
			equal(t, s.Len(), 0)
		})
	}
}

func TestStore_TooLarge(t *testing.T) {
	t.Parallel()
	const (
		budget = 4096
		key    = "key"
		fits   = budget - Overhead - len(key) // the largest value whose charge is within the budget
	)
	tests := []struct {
		name     string
		size     int
		existing bool // whether the key holds a small value before the SetEx
		stored   bool
	}{
		{name: "exactly the budget", size: fits, stored: true},
		{name: "one byte over", size: fits + 1},
		{name: "far over", size: 1 << 20},
		{name: "over replaces existing", size: fits + 1, existing: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := newStore(t, budget)
			if tt.existing {
				noError(t, s.SetEx(ctx, key, []byte("small"), time.Hour))
			}
			noError(t, s.SetEx(ctx, key, make([]byte, tt.size), time.Hour))
			s.CleanUp()

			v, ok, err := s.Get(ctx, key)
			noError(t, err)
			equal(t, ok, tt.stored)
			st := s.Stats()
			if tt.stored {
				equal(t, len(v), tt.size)
				equal(t, st.Bytes, int64(budget))
				equal(t, st.Rejected, 0)
			} else {
				equal(t, st.Entries, 0)
				equal(t, st.Bytes, 0)
				equal(t, st.Rejected, uint64(1))
			}
		})
	}
}

// TestStore_TTL runs in a synctest bubble, where time.Sleep advances a fake clock at once and the
// store's default clock reads it.
func TestStore_TTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// run does the writes and reads relative to the bubble's start and returns what Get of "k"
		// should see at the end.
		run   func(t *testing.T, s *Store)
		found bool
	}{
		{
			name: "live just before the deadline",
			run: func(t *testing.T, s *Store) {
				set(t, s, "k", "v", 10*time.Second)
				time.Sleep(10*time.Second - time.Nanosecond)
			},
			found: true,
		},
		{
			name: "gone at the deadline",
			run: func(t *testing.T, s *Store) {
				set(t, s, "k", "v", 10*time.Second)
				time.Sleep(10 * time.Second)
			},
		},
		{
			name: "overwrite starts a new lifetime",
			run: func(t *testing.T, s *Store) {
				set(t, s, "k", "v1", 10*time.Second)
				time.Sleep(8 * time.Second)
				set(t, s, "k", "v2", 10*time.Second)
				time.Sleep(8 * time.Second)
			},
			found: true,
		},
		{
			name: "overwrite can shorten the lifetime",
			run: func(t *testing.T, s *Store) {
				set(t, s, "k", "v1", time.Hour)
				set(t, s, "k", "v2", time.Second)
				time.Sleep(time.Second)
			},
		},
		{
			name: "reads do not extend the lifetime",
			run: func(t *testing.T, s *Store) {
				set(t, s, "k", "v", 10*time.Second)
				for range 9 {
					time.Sleep(time.Second)
					_, ok, _ := s.Get(t.Context(), "k")
					equal(t, ok, true)
				}
				time.Sleep(time.Second)
			},
		},
		{
			name: "each key has its own ttl",
			run: func(t *testing.T, s *Store) {
				set(t, s, "short", "v", time.Second)
				set(t, s, "k", "v", time.Minute)
				time.Sleep(30 * time.Second)
				_, ok, _ := s.Get(t.Context(), "short")
				equal(t, ok, false)
			},
			found: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s, err := New(1 << 20)
				noError(t, err)
				// Inside the bubble: time stops when this function returns, so the periodic clean-up
				// would never see its next tick.
				defer s.Close()

				tt.run(t, s)
				_, ok, err := s.Get(t.Context(), "k")
				noError(t, err)
				equal(t, ok, tt.found)
			})
		})
	}
}

// TestStore_ExpiredEntriesAreRemoved checks that the background clean-up, not only reads, gets rid of
// expired entries, so they stop counting against the budget.
func TestStore_ExpiredEntriesAreRemoved(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s, err := New(1 << 20)
		noError(t, err)
		defer s.Close()

		for i := range 100 {
			set(t, s, strconv.Itoa(i), "v", time.Second)
		}
		s.CleanUp()
		equal(t, s.Len(), 100)

		// The timer wheel works in buckets of about a second; a few ticks of the periodic clean-up
		// remove everything without a read or a write.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		st := s.Stats()
		equal(t, st.Entries, 0)
		equal(t, st.Bytes, 0)
		equal(t, st.Expirations, uint64(100))
		equal(t, st.Evictions, 0)
	})
}

// manualClock is a Clock that moves only when told and never ticks.
type manualClock struct{ now atomic.Int64 }

func (c *manualClock) NowNano() int64                      { return c.now.Load() }
func (c *manualClock) Tick(time.Duration) <-chan time.Time { return nil }
func (c *manualClock) advance(d time.Duration)             { c.now.Add(int64(d)) }
func (c *manualClock) set(t time.Time)                     { c.now.Store(t.UnixNano()) }

// set stores value under key for ttl and fails the test on an error.
func set(t *testing.T, s *Store, key, value string, ttl time.Duration) {
	t.Helper()
	noError(t, s.SetEx(t.Context(), key, []byte(value), ttl))
}

func TestStore_WithClock(t *testing.T) {
	t.Parallel()
	clock := &manualClock{}
	clock.set(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newStore(t, 1<<20, WithClock(clock))

	set(t, s, "k", "v", time.Minute)
	clock.advance(time.Minute - 1)
	_, ok, _ := s.Get(t.Context(), "k")
	equal(t, ok, true)

	clock.advance(1)
	_, ok, _ = s.Get(t.Context(), "k")
	equal(t, ok, false)

	// With a clock that never ticks, maintenance after writes and CleanUp still remove the entry.
	s.CleanUp()
	equal(t, s.Len(), 0)
	equal(t, s.Stats().Expirations, uint64(1))
}

// TestStore_ByteBudget floods a 1 MiB store with 2,000 distinct 64 KiB values from several goroutines.
//
// Between two SetEx calls the store holds at most budget + slack bytes: every write is in the table
// before its SetEx returns, but the eviction policy may not have seen the last slack bytes of them yet.
// A sampler checks that at points where no SetEx is running (writers hold a read lock around each
// call, the sampler takes the write lock), so the table it iterates only shrinks meanwhile. Once the
// pending writes are drained, the budget itself holds.
func TestStore_ByteBudget(t *testing.T) {
	t.Parallel()
	const (
		budget  = 1 << 20
		size    = 64 << 10
		total   = 2000
		writers = 8
	)
	s := newStore(t, budget)
	limit := budget + s.slack
	value := make([]byte, size)

	var (
		quiesce sync.RWMutex // held for reading by each SetEx, for writing by the sampler
		peak    int64        // owned by the sampler until it returns
		samples int
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		sampler sync.WaitGroup
	)
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			quiesce.Lock()
			n := residentBytes(s)
			quiesce.Unlock()
			samples++
			peak = max(peak, n)
			if n > limit {
				t.Errorf("between writes the store held %d bytes, above budget + slack = %d", n, limit)
			}
			runtime.Gosched()
		}
	})
	for w := range writers {
		wg.Go(func() {
			ctx := context.Background()
			for i := w; i < total; i += writers {
				key := fmt.Sprintf("stampede:v1:%032x", i)
				quiesce.RLock()
				err := s.SetEx(ctx, key, value, time.Hour)
				quiesce.RUnlock()
				if err != nil {
					t.Errorf("SetEx: %v", err)
				}
				if _, _, err := s.Get(ctx, key); err != nil {
					t.Errorf("Get: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()

	s.CleanUp()
	resident := residentBytes(s)
	st := s.Stats()
	t.Logf("peak between writes: %d bytes (%.2fx budget, limit %.2fx, %d samples); after CleanUp: %d bytes in %d entries, %d evictions",
		peak, float64(peak)/budget, float64(limit)/budget, samples, resident, st.Entries, st.Evictions)

	atMost(t, resident, int64(budget))
	equal(t, st.Bytes, resident, "the policy's count disagrees with the table")
	equal(t, st.Entries > 0, true, "entries after the flood")
	equal(t, uint64(st.Entries)+st.Evictions, uint64(total), "every entry is either resident or evicted")
	equal(t, st.Rejected, 0)
}

// TestStore_SlackBoundsPendingWrites checks the bound with a single writer, write by write and
// without CleanUp: what otter has not yet evicted never exceeds the slack.
func TestStore_SlackBoundsPendingWrites(t *testing.T) {
	t.Parallel()
	const budget = 1 << 20
	s := newStore(t, budget)
	ctx := t.Context()
	value := make([]byte, 20<<10) // about a third of the slack, so drains are forced every few writes
	for i := range 500 {
		noError(t, s.SetEx(ctx, "k"+strconv.Itoa(i), value, time.Hour))
		atMost(t, residentBytes(s), budget+s.slack, "after write %d", i)
	}
}

// TestStore_BudgetAfterEachWrite checks the guarantee write by write: with the pending work applied,
// mixed sizes never push the store past its budget.
func TestStore_BudgetAfterEachWrite(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	s := newStore(t, budget)
	ctx := t.Context()
	for i := range 500 {
		size := (i * 7919) % (16 << 10) // 0 to 16 KiB, in a scattered order
		noError(t, s.SetEx(ctx, "k"+strconv.Itoa(i%97), make([]byte, size), time.Hour))
		s.CleanUp()
		resident := residentBytes(s)
		atMost(t, resident, int64(budget), "after write %d", i)
		equal(t, s.Bytes(), resident, "after write %d", i)
	}
}

func TestStore_Stats(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t, 1<<20)
	set(t, s, "a", "12345", time.Hour)
	set(t, s, "bb", "", time.Hour)
	noError(t, s.Delete(ctx, "missing"))
	s.CleanUp()
	equal(t, s.Stats(), Stats{
		Entries:  2,
		Bytes:    (1 + 5 + Overhead) + (2 + 0 + Overhead),
		MaxBytes: 1 << 20,
	})

	// An overwrite is charged for its new size, not in addition to the old one.
	set(t, s, "a", "1", time.Hour)
	s.CleanUp()
	equal(t, s.Bytes(), int64((1+1+Overhead)+(2+0+Overhead)))
	equal(t, s.Len(), 2)
}

func TestStore_Close(t *testing.T) {
	t.Parallel()
	s, err := New(1 << 20)
	noError(t, err)
	s.Close()
	s.Close() // idempotent

	// The store still works, without its periodic clean-up.
	set(t, s, "k", "v", time.Hour)
	v, ok, err := s.Get(t.Context(), "k")
	noError(t, err)
	equal(t, ok, true)
	equal(t, string(v), "v")
}

// TestStore_GetDoesNotAllocate is not parallel: AllocsPerRun counts every goroutine's allocations and
// refuses to run in a parallel test.
func TestStore_GetDoesNotAllocate(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, 1<<20)
	set(t, s, "hit", strings.Repeat("x", 1000), time.Hour)
	tests := []struct {
		name string
		key  string
	}{
		{name: "hit", key: "hit"},
		{name: "miss", key: "miss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(1000, func() {
				_, _, _ = s.Get(ctx, tt.key)
			})
			equal(t, allocs, 0)
		})
	}
}

func TestStore_ConcurrentMixed(t *testing.T) {
	t.Parallel()
	const budget = 256 << 10
	s := newStore(t, budget)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			ctx := context.Background()
			for i := range 2000 {
				key := strconv.Itoa((i * (g + 1)) % 300)
				switch i % 5 {
				case 0:
					_ = s.Delete(ctx, key)
				case 1, 2:
					_ = s.SetEx(ctx, key, make([]byte, i%4096), time.Duration(i%3)*time.Minute)
				default:
					if v, ok, err := s.Get(ctx, key); err != nil || (ok && v == nil) {
						t.Errorf("Get(%q) = %v, %v, %v", key, v, ok, err)
					}
				}
			}
		})
	}
	wg.Wait()
	s.CleanUp()
	resident := residentBytes(s)
	atMost(t, resident, int64(budget))
	equal(t, s.Bytes(), resident)
}

// TestOverheadEstimate checks that Overhead covers what otter really spends per entry: the heap grows
// by less than len(key) + len(value) + Overhead per entry when the key and value lengths are exact
// size classes (so no rounding is hidden in them). It is not parallel, so other tests do not allocate
// while it measures.
func TestOverheadEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	const (
		n        = 100_000
		keyLen   = 32
		valueLen = 112
	)
	keys := make([]string, n)
	values := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("stampede:v1:%020d", i)
		values[i] = make([]byte, valueLen)
	}
	equal(t, len(keys[0]), keyLen)

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	// A budget that just holds every entry, so the frequency sketch is sized as in a full store.
	s := newStore(t, n*(keyLen+valueLen+Overhead))
	ctx := context.Background()
	for round := range 2 { // the second round overwrites, moving the values to separate boxes
		for i := range keys {
			noError(t, s.SetEx(ctx, keys[i], values[i], time.Hour))
		}
		s.CleanUp()
		equal(t, s.Len(), n)
		perEntry := float64(heap()-before) / n
		t.Logf("round %d: %.1f bytes of structures per entry; Overhead is %d", round, perEntry, Overhead)
		atMost(t, perEntry, float64(Overhead))
	}
	runtime.KeepAlive(keys)
	runtime.KeepAlive(values)
}

func BenchmarkGet(b *testing.B) {
	const keys = 1024
	for _, size := range []int{1 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s := newStore(b, int64(keys)*(int64(size)+128+Overhead))
			value := make([]byte, size)
			names := make([]string, keys)
			for i := range names {
				names[i] = fmt.Sprintf("stampede:v1:%032x", i)
				if err := s.SetEx(context.Background(), names[i], value, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
			s.CleanUp()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				i := 0
				for pb.Next() {
					if _, ok, _ := s.Get(ctx, names[i&(keys-1)]); !ok {
						b.Error("miss")
						return
					}
					i++
				}
			})
		})
	}
	// Baseline: a map behind a RWMutex, the least a concurrent store can cost without eviction or
	// expiry.
	b.Run("baseline=rwmutex-map", func(b *testing.B) {
		var mu sync.RWMutex
		m := make(map[string][]byte, keys)
		names := make([]string, keys)
		for i := range names {
			names[i] = fmt.Sprintf("stampede:v1:%032x", i)
			m[names[i]] = make([]byte, 1<<10)
		}
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				mu.RLock()
				_, ok := m[names[i&(keys-1)]]
				mu.RUnlock()
				if !ok {
					b.Error("miss")
					return
				}
				i++
			}
		})
	})
}

func BenchmarkSetEx(b *testing.B) {
	const keys = 1 << 14
	s := newStore(b, 16<<20)
	value := make([]byte, 4<<10)
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("stampede:v1:%032x", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if err := s.SetEx(ctx, names[i&(keys-1)], value, time.Hour); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
