package sqlitestore_test

import (
	"path/filepath"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/redisstore"
	"github.com/seed-a1426414/stampede/internal/redistest"
	"github.com/seed-a1426414/stampede/internal/storetest"
)

// BenchmarkStores measures a hit and a BatchGet of 100 keys on sqlitestore, beside memstore and
// redisstore (on a redis-server of its own) in the same run, to be read as ratios.
func BenchmarkStores(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	mem, err := memstore.New(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), ContextTimeoutEnabled: true})
	defer client.Close()
	storetest.BenchStores(b, []storetest.Named{{Name: "sqlitestore", Store: s}, {Name: "memstore", Store: mem},
		{Name: "redisstore", Store: redisstore.New(client)}})
}
