package stampede_test

// Covers loader.go's and do.go's entry points with a context that has already ended, and
// Loader.Wait against calls that start loads (issue 19 item 4).

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

func TestEndedContextLoadsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var loads atomic.Int64
	l := stampede.NewLoader("ended", func(_ context.Context, k int) (int, error) { loads.Add(1); return k, nil },
		stampede.WithTTL(time.Hour))
	defer l.Close()
	_, err := l.Get(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = l.GetMany(ctx, []int{2, 3})
	require.ErrorIs(t, err, context.Canceled)
	vs, err := memstore.NewValues[int](100)
	require.NoError(t, err)
	defer vs.Close()
	s := stampede.NewStampede(nil, vs, stampede.WithTTL(time.Hour))
	_, err = s.Do(ctx, "k", func() (int, *time.Duration, error) { loads.Add(1); return 1, nil, nil })
	require.ErrorIs(t, err, context.Canceled)
	l.Wait()
	s.Wait()
	require.Zero(t, loads.Load(), "loads started for a context that had ended")
}

// TestLoaderWaitRacesGets runs Wait while other goroutines start loads; the race detector checks it.
func TestLoaderWaitRacesGets(t *testing.T) {
	l := stampede.NewLoader("wait", func(_ context.Context, k int) (int, error) { return k, nil }, stampede.WithTTL(time.Hour))
	defer l.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 200 {
				v, err := l.Get(context.Background(), g*1000+k)
				if err != nil || v != g*1000+k {
					t.Errorf("Get(%d) = %d, %v", g*1000+k, v, err)
					return
				}
			}
		})
		wg.Go(func() {
			for range 200 {
				l.Wait()
			}
		})
	}
	wg.Wait()
}
