package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// Bounded says how RunBounded sees a SQL store's tables.
type Bounded struct {
	// MaxRows is the store's row bound (WithMaxRows).
	MaxRows int64
	// Sweep runs the store's background sweep once, now.
	Sweep func(ctx context.Context) error
	// Count returns how many rows the named table (without its prefix: "entries", "tickets", ...)
	// holds.
	Count func(t *testing.T, table string) int64
	// Tables are the tables to check besides entries; each must stay within 4 times MaxRows.
	Tables []string
}

// RunBounded floods s with n one-off keys, each written, tagged with a tag of its own, given a ticket
// and a lease and invalidated, all with long lifetimes, and checks that after a sweep every table is
// within its bound: the entries within MaxRows, the others within 4 times it.
func RunBounded(t *testing.T, s stampede.Store, b Bounded, n int) {
	ctx := context.Background()
	f, _ := s.(stampede.FencedStore)
	ts, _ := s.(stampede.TagStore)
	ls, _ := s.(stampede.LeaseStore)
	for i := range n {
		k := key(t, fmt.Sprint(i))
		if err := s.SetEx(ctx, k, []byte("one-off value"), time.Hour); err != nil {
			t.Fatal(err)
		}
		if ts != nil {
			if err := ts.TagKeys(ctx, k, []string{"tag-" + k}, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if f != nil {
			if _, err := f.Ticket(ctx, k, time.Hour); err != nil {
				t.Fatal(err)
			}
			if i%2 == 0 {
				if err := f.Invalidate(ctx, k+"/gone"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if ls != nil {
			if _, _, err := ls.TryLease(ctx, k, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.Count(t, "entries"); got > b.MaxRows {
		t.Errorf("entries: %d rows after a flood of %d keys, bound %d", got, n, b.MaxRows)
	}
	for _, table := range b.Tables {
		if got := b.Count(t, table); got > 4*b.MaxRows {
			t.Errorf("%s: %d rows after a flood of %d keys, bound %d", table, got, n, 4*b.MaxRows)
		}
	}
	if sz, ok := s.(stampede.SizedStore); ok && int64(sz.Len()) > b.MaxRows {
		t.Errorf("Len() = %d, above the bound %d", sz.Len(), b.MaxRows)
	}
	if ec, ok := s.(stampede.EvictionCounter); ok && ec.Evictions() == 0 {
		t.Errorf("Evictions() = 0 after a flood past the bound")
	}
}
