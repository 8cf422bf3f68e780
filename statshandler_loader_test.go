package stampede_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seed-a1426414/stampede"
)

// TestStatsHandlerLoaders: caches, loaders and Stampedes share the stats page and its JSON, each with
// its kind.
func TestStatsHandlerLoaders(t *testing.T) {
	cache := stampede.New(nil, newMem(t), time.Minute, stampede.WithName("pages"))
	loader := stampede.NewLoader("users", func(_ context.Context, id int) (string, error) { return "u", nil },
		stampede.WithValues(newValues(t)))
	defer loader.Close()
	do := stampede.NewStampede[string](nil, nil, stampede.WithName("rpc"))
	ctx := context.Background()
	for range 3 {
		_, _ = loader.Get(ctx, 1)
		loader.Wait()
	}
	_, _ = do.Do(ctx, "k", func() (string, *time.Duration, error) { return "v", nil, nil })
	do.Wait()

	h := stampede.StatsHandler(cache, loader, do)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/stampede?format=json", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var got struct {
		Caches []stampede.Snapshot `json:"caches"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	require.Len(t, got.Caches, 3)
	assert.Equal(t, []string{"http", "loader", "function"}, []string{got.Caches[0].Kind, got.Caches[1].Kind, got.Caches[2].Kind})
	assert.Equal(t, "users", got.Caches[1].Name)
	assert.Equal(t, uint64(3), got.Caches[1].Requests)
	assert.Equal(t, uint64(2), got.Caches[1].Hits)
	assert.Equal(t, uint64(1), got.Caches[1].Runs)
	assert.Equal(t, uint64(1), got.Caches[2].Misses)

	assert.Panics(t, func() { stampede.StatsHandler((*stampede.Loader[int, string])(nil)) })
}
