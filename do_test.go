package stampede_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

// TestDoOptions: Do's TTL comes from the call, then the function's returned TTL; WithSkipCache on a call
// stores nothing; errors are never stored; SetOptions replaces the defaults.
func TestDoOptions(t *testing.T) {
	values, err := memstore.NewValues[string](100)
	require.NoError(t, err)
	defer values.Close()
	s := stampede.NewStampede(nil, values)
	ctx := context.Background()
	var runs atomic.Int64
	fn := func(v string, ttl *time.Duration, err error) func() (string, *time.Duration, error) {
		return func() (string, *time.Duration, error) { runs.Add(1); return v, ttl, err }
	}
	do := func(key string, f func() (string, *time.Duration, error), opts ...stampede.Option) string {
		t.Helper()
		v, _ := s.Do(ctx, key, f, opts...)
		s.Wait()
		return v
	}
	zero := time.Duration(0)
	assert.Equal(t, "a", do("default", fn("a", nil, nil)))
	assert.Equal(t, "a", do("default", fn("b", nil, nil)), "kept for DefaultCacheTTL")
	assert.Equal(t, "a", do("ttl0", fn("a", &zero, nil)))
	assert.Equal(t, "b", do("ttl0", fn("b", nil, nil)), "a returned TTL of zero stores nothing")
	assert.Equal(t, "a", do("skip", fn("a", nil, nil), stampede.WithSkipCache(true)))
	assert.Equal(t, "b", do("skip", fn("b", nil, nil)), "WithSkipCache on a call stores nothing")
	assert.Equal(t, "a", do("calltll", fn("a", nil, nil), stampede.WithTTL(0)))
	assert.Equal(t, "b", do("calltll", fn("b", nil, nil)), "WithTTL(0) on a call stores nothing")
	boom := errors.New("boom")
	_, err = s.Do(ctx, "err", fn("", nil, boom))
	require.ErrorIs(t, err, boom)
	s.Wait()
	assert.Equal(t, "b", do("err", fn("b", nil, nil)), "errors are not stored")
	s.SetOptions(&stampede.Options{SkipCache: true})
	assert.Equal(t, "a", do("after", fn("a", nil, nil)))
	assert.Equal(t, "b", do("after", fn("b", nil, nil)), "SetOptions(SkipCache)")
	_, err = s.Do(ctx, "nil", nil)
	assert.Error(t, err)
	require.NoError(t, s.Invalidate(ctx, "default"))
	assert.Equal(t, "c", do("default", fn("c", nil, nil)), "invalidated")
	assert.Equal(t, "function", s.Snapshot().Kind)
}
