package storetest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// fencedRandom is a randomized check of the FencedStore contract under concurrency: writers take
// tickets and write with them after a random pause, while others invalidate keys and purge tags through
// the other replica, and readers check the invariant: once Invalidate(k) (PurgeTag(tag)) returned, no
// value written with a ticket that was taken before the call began is readable at k (under a key
// tagged tag). Each value names its ticket's sequence number, taken once Ticket returned, so a
// ticket's number is never below one taken before; a barrier is the last number handed out before an
// invalidation began.
func (st *suite) fencedRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	f, pf := st.s.(stampede.FencedStore), st.peer.(stampede.FencedStore)
	pt, tagged := st.peer.(stampede.TagStore)
	ctx := ctxOf(t)
	const keys, tags, rounds = 4, 2, 60
	keyOf := func(i int) string { return key(t, strconv.Itoa(i)) }
	tagOf := func(i int) string { return key(t, "tag"+strconv.Itoa(i)) }

	var seq atomic.Int64
	var mu sync.Mutex
	keyBarrier := make([]int64, keys) // guarded by mu
	tagBarrier := make([]int64, tags) // guarded by mu
	var failed atomic.Value

	fail := func(format string, args ...any) { failed.CompareAndSwap(nil, fmt.Sprintf(format, args...)) }
	var wg sync.WaitGroup
	for w := range 3 { // writers
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for range rounds {
				k := r.IntN(keys)
				tk, err := f.Ticket(ctx, keyOf(k), time.Hour)
				if err != nil {
					fail("Ticket: %v", err)
					return
				}
				n := seq.Add(1)
				time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
				var tagList []string
				var tagIdx []string
				if tagged {
					for i := range tags {
						if r.IntN(2) == 0 {
							tagList = append(tagList, tagOf(i))
							tagIdx = append(tagIdx, strconv.Itoa(i))
						}
					}
				}
				value := fmt.Sprintf("%d|%s", n, strings.Join(tagIdx, ","))
				if _, err := f.SetFenced(ctx, keyOf(k), tk, keyOf(k), []byte(value), time.Hour, tagList); err != nil {
					fail("SetFenced: %v", err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // invalidator
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 100))
		for range rounds / 2 {
			time.Sleep(time.Duration(r.IntN(3)) * time.Millisecond)
			before := seq.Load()
			if tagged && r.IntN(2) == 0 {
				i := r.IntN(tags)
				if _, err := pt.PurgeTag(ctx, tagOf(i)); err != nil {
					fail("PurgeTag: %v", err)
					return
				}
				mu.Lock()
				tagBarrier[i] = max(tagBarrier[i], before)
				mu.Unlock()
				continue
			}
			k := r.IntN(keys)
			if err := pf.Invalidate(ctx, keyOf(k)); err != nil {
				fail("Invalidate: %v", err)
				return
			}
			mu.Lock()
			keyBarrier[k] = max(keyBarrier[k], before)
			mu.Unlock()
		}
	}()
	check := func() {
		for k := range keys {
			mu.Lock()
			kb, tb := keyBarrier[k], slicesClone(tagBarrier)
			mu.Unlock()
			v, ok, err := st.s.Get(ctx, keyOf(k))
			if err != nil {
				fail("Get: %v", err)
				return
			}
			if !ok {
				continue
			}
			num, tagIdx, _ := strings.Cut(string(v), "|")
			n, _ := strconv.ParseInt(num, 10, 64)
			if n <= kb {
				fail("key %d holds the value of ticket %d, taken before an Invalidate that returned (barrier %d)", k, n, kb)
			}
			for _, ti := range strings.Split(tagIdx, ",") {
				if ti == "" {
					continue
				}
				i, _ := strconv.Atoi(ti)
				if n <= tb[i] {
					fail("key %d holds the value of ticket %d tagged %d, taken before a PurgeTag that returned (barrier %d)", k, n, i, tb[i])
				}
			}
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			check()
			if msg := failed.Load(); msg != nil {
				t.Fatalf("seed %d: %s", seed, msg)
			}
			return
		default:
			check()
			time.Sleep(time.Millisecond)
		}
	}
}

func slicesClone(s []int64) []int64 { return append([]int64(nil), s...) }
