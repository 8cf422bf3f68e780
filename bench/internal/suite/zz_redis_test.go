package suite

import (
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede/bench/internal/redisproc"
	"github.com/seed-a1426414/stampede/bench/internal/trace"
)

func TestZZRedis(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	w, _ := strconv.Atoi(os.Getenv("ZZ"))
	srv, err := redisproc.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	o := options{redis: srv.Addr, sleep: 100 * time.Millisecond}
	keys := trace.Keys(200_000, 42)
	for range 2 {
		var done atomic.Int64
		r := runTrace(o, keys, cfgRedis, w, &done)
		t.Logf("wall %v cpu %v dups %d storeGets %d redis reads %d trips %d p99 %v", r.res.Wall, r.res.CPU, r.res.Duplicates, r.storeGets, r.redisGets, r.trips, r.res.P99)
	}
}
