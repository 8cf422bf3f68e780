package cbor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/codec/cbor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type row struct {
	ID        int64
	Name      string
	CreatedAt time.Time
	Tags      []string
	Extra     map[string]int
}

// TestRoundTrip: a value decodes to what was encoded, time zones and nanoseconds included.
func TestRoundTrip(t *testing.T) {
	in := row{ID: 42, Name: "Ada", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600)),
		Tags: []string{"a", "b"}, Extra: map[string]int{"z": 1, "a": 2}}
	data, err := cbor.Codec.Marshal(in)
	require.NoError(t, err)
	var out row
	require.NoError(t, cbor.Codec.Unmarshal(data, &out))
	assert.True(t, in.CreatedAt.Equal(out.CreatedAt))
	out.CreatedAt = in.CreatedAt
	assert.Equal(t, in, out)
	again, err := cbor.Codec.Marshal(in)
	require.NoError(t, err)
	assert.Equal(t, data, again, "deterministic")
	assert.Error(t, cbor.Codec.Unmarshal([]byte{0xff, 0x00}, &out))
}

// TestLoaderWithCBOR: a Loader keeps its values in a byte store with the codec, and a value another
// codec wrote is a miss, not an error.
func TestLoaderWithCBOR(t *testing.T) {
	store, err := memstore.New(1 << 20)
	require.NoError(t, err)
	defer store.Close()
	loads := 0
	l := stampede.NewLoader("rows", func(_ context.Context, id int64) (row, error) {
		loads++
		return row{ID: id, Name: fmt.Sprint("row ", id)}, nil
	}, stampede.WithStore(store), stampede.WithCodec(cbor.Codec))
	defer l.Close()
	ctx := context.Background()
	for range 2 {
		r, err := l.Get(ctx, 7)
		require.NoError(t, err)
		assert.Equal(t, "row 7", r.Name)
		l.Wait()
	}
	assert.Equal(t, 1, loads)
	jsonLoader := stampede.NewLoader("rows", func(_ context.Context, id int64) (row, error) {
		return row{}, nil
	}, stampede.WithStore(store))
	defer jsonLoader.Close()
	_, ok := jsonLoader.Peek(ctx, 7)
	assert.False(t, ok, "CBOR bytes do not decode as JSON: a miss")
}

func ExampleCodec() {
	data, _ := cbor.Codec.Marshal(map[string]int{"b": 2, "a": 1})
	var m map[string]int
	_ = cbor.Codec.Unmarshal(data, &m)
	fmt.Println(len(data), m)
	// Output: 7 map[a:1 b:2]
}
