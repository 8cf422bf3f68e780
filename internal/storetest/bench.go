package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
)

// Named is a store with the name a benchmark reports it under.
type Named struct {
	Name  string
	Store stampede.Store
}

// BenchStores measures, for each store, a hit (Get of a stored 1 KiB value) and a BatchGet of 100
// stored keys (one Get each for a store without BatchGet), in one run, so that the stores can be
// compared as ratios: b.Run("<name>/Get") and b.Run("<name>/BatchGet100").
func BenchStores(b *testing.B, stores []Named) {
	ctx := context.Background()
	value := make([]byte, 1024)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/%d", i)
	}
	for _, st := range stores {
		for _, k := range keys {
			if err := st.Store.SetEx(ctx, k, value, time.Hour); err != nil {
				b.Fatalf("%s: %v", st.Name, err)
			}
		}
		b.Run(st.Name+"/Get", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, ok, err := st.Store.Get(ctx, keys[i%len(keys)]); !ok || err != nil {
					b.Fatalf("Get: %v, %v", ok, err)
				}
			}
		})
		b.Run(st.Name+"/BatchGet100", func(b *testing.B) {
			b.ReportAllocs()
			bs, batched := st.Store.(stampede.BatchStore)
			for b.Loop() {
				if batched {
					if vals, err := bs.BatchGet(ctx, keys); err != nil || vals[99] == nil {
						b.Fatalf("BatchGet: %v", err)
					}
					continue
				}
				for _, k := range keys {
					if _, ok, err := st.Store.Get(ctx, k); !ok || err != nil {
						b.Fatalf("Get: %v, %v", ok, err)
					}
				}
			}
		})
	}
}
