package storetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
	"github.com/seed-a1426414/stampede/backends/tieredstore"
)

// RunEngine runs stampede's front-ends on the store h makes, through real HTTP servers: the middleware
// (a hit from the store, a garbage value that is a miss and is overwritten, a purge), the function API
// (NewLoader with WithStore, NewStampede), backends/tieredstore with a memory tier in front of the
// store, and, for a LeaseStore, fleet coalescing between two replicas.
func RunEngine(t *testing.T, h Harness) {
	s := h.New(t)
	peer := s
	if h.Peer != nil {
		if p := h.Peer(t, s); p != nil {
			peer = p
		}
	}
	t.Run("Middleware", func(t *testing.T) { middleware(t, s) })
	t.Run("Loader", func(t *testing.T) { loader(t, s, peer) })
	t.Run("NewStampede", func(t *testing.T) { doFunc(t, s) })
	t.Run("Tiered", func(t *testing.T) { tiered(t, s, peer) })
	if _, ok := s.(stampede.LeaseStore); ok && peer != s {
		t.Run("Fleet", func(t *testing.T) { fleet(t, s, peer) })
	}
}

// recorder is a Store that remembers the keys written through it (and hides every optional contract
// of the store it wraps, which this test does not need).
type recorder struct {
	stampede.Store
	mu   sync.Mutex
	keys []string
}

func (r *recorder) SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	r.mu.Lock()
	r.keys = append(r.keys, key)
	r.mu.Unlock()
	return r.Store.SetEx(ctx, key, value, ttl)
}

// counting is an origin that answers "<path> #n", n counting its runs.
func counting(runs *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Tag", "storetest")
		fmt.Fprintf(w, "%s #%d", r.URL.Path, n)
	})
}

// fetch GETs url with Host storetest.example (the key includes the host, and every replica listens on
// a port of its own).
func fetch(t *testing.T, url string) (body, xcache string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "storetest.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Header.Get("X-Cache")
}

func middleware(t *testing.T, s stampede.Store) {
	rec := &recorder{Store: s}
	var runs atomic.Int64
	cache := stampede.New(slog.New(slog.DiscardHandler), rec, time.Hour, stampede.WithKeyPrefix(fmt.Sprintf("st%d", time.Now().UnixNano())))
	srv := httptest.NewServer(cache.Handler(counting(&runs)))
	defer srv.Close()
	want := func(body, xcache string) {
		t.Helper()
		b, x := fetch(t, srv.URL+"/page")
		cache.Wait()
		if b != body || x != xcache {
			t.Fatalf("GET /page = %q, X-Cache %q; want %q, %q", b, x, body, xcache)
		}
	}
	want("/page #1", "MISS")
	want("/page #1", "HIT")
	// Garbage in the store (truncated, wrong magic, huge declared lengths) is a miss, replaced.
	rec.mu.Lock()
	keys := append([]string(nil), rec.keys...)
	rec.mu.Unlock()
	if len(keys) == 0 {
		t.Fatal("the middleware wrote nothing")
	}
	n := int64(1)
	for _, garbage := range [][]byte{[]byte("STMP"), []byte("NOPE-not-an-entry"), append([]byte("STMP\x01"), make([]byte, 64)...),
		append([]byte("STMP"), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)} {
		for _, k := range keys {
			if err := s.SetEx(context.Background(), k, garbage, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		n++
		want(fmt.Sprintf("/page #%d", n), "MISS")
		want(fmt.Sprintf("/page #%d", n), "HIT")
	}
	// A purge deletes it from the store.
	if err := cache.PurgeTag(context.Background(), "storetest"); err != nil {
		t.Fatal(err)
	}
	want(fmt.Sprintf("/page #%d", n+1), "MISS")
}

func loader(t *testing.T, s, peer stampede.Store) {
	var loads atomic.Int64
	name := fmt.Sprintf("storetest-%d", time.Now().UnixNano())
	load := func(_ context.Context, k int) (string, error) {
		loads.Add(1)
		return fmt.Sprint("value ", k), nil
	}
	a := stampede.NewLoader(name, load, stampede.WithStore(s), stampede.WithTTL(time.Hour))
	defer a.Close()
	b := stampede.NewLoader(name, load, stampede.WithStore(peer), stampede.WithTTL(time.Hour)) // another replica
	defer b.Close()
	ctx := context.Background()
	for _, l := range []*stampede.Loader[int, string]{a, a, b} {
		v, err := l.Get(ctx, 7)
		l.Wait()
		if err != nil || v != "value 7" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}
	if n := loads.Load(); n != 1 {
		t.Fatalf("%d loads of one key, want 1 (the other calls read the store)", n)
	}
	got, err := b.GetMany(ctx, []int{7, 8, 9})
	b.Wait()
	if err != nil || len(got) != 3 || got[9] != "value 9" {
		t.Fatalf("GetMany = %v, %v", got, err)
	}
	if n := loads.Load(); n != 3 {
		t.Fatalf("%d loads after GetMany of one stored and two new keys, want 3", n)
	}
	if err := a.Invalidate(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Get(ctx, 7); err != nil || v != "value 7" || loads.Load() != 4 {
		t.Fatalf("after Invalidate: Get = %q, %v, loads %d; want a fourth load", v, err, loads.Load())
	}
	b.Wait()
}

func doFunc(t *testing.T, s stampede.Store) {
	sd := stampede.NewStampede[[]byte](nil, s, stampede.WithTTL(time.Hour))
	var runs atomic.Int64
	key := fmt.Sprintf("storetest-do-%d", time.Now().UnixNano())
	for range 3 {
		v, err := sd.Do(context.Background(), key, func() ([]byte, *time.Duration, error) {
			runs.Add(1)
			return []byte("computed"), nil, nil
		})
		sd.Wait()
		if err != nil || string(v) != "computed" {
			t.Fatalf("Do = %q, %v", v, err)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("Do ran its function %d times, want 1", n)
	}
}

func tiered(t *testing.T, s, peer stampede.Store) {
	prefix := fmt.Sprintf("tier%d", time.Now().UnixNano())
	var runs atomic.Int64
	origin := counting(&runs)
	type replica struct {
		cache *stampede.Cache
		url   string
	}
	var reps []replica
	for _, l2 := range []stampede.Store{s, peer} {
		l1, err := memstore.New(8 << 20)
		if err != nil {
			t.Fatal(err)
		}
		defer l1.Close()
		// An L1 TTL of an hour: only the announcement of a purge can drop a replica's L1 copy.
		ts := tieredstore.New(l1, l2, tieredstore.WithL1TTL(time.Hour))
		defer ts.Close()
		c := stampede.New(nil, ts, time.Hour, stampede.WithKeyPrefix(prefix))
		srv := httptest.NewServer(c.Handler(origin))
		defer srv.Close()
		reps = append(reps, replica{c, srv.URL})
	}
	get := func(i int) (string, string) {
		b, x := fetch(t, reps[i].url+"/t")
		reps[i].cache.Wait()
		return b, x
	}
	if b, x := get(0); b != "/t #1" || x != "MISS" {
		t.Fatalf("replica 0: %q %q", b, x)
	}
	if b, x := get(1); b != "/t #1" || x != "HIT" {
		t.Fatalf("replica 1 (from L2): %q %q", b, x)
	}
	if b, x := get(1); b != "/t #1" || x != "HIT" {
		t.Fatalf("replica 1 (from L1): %q %q", b, x)
	}
	if _, ok := s.(stampede.InvalidationStore); !ok {
		return
	}
	// Replica 0 purges; replica 1 drops its L1 copy when the announcement arrives.
	if err := reps[0].cache.PurgeTag(context.Background(), "storetest"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica 1 drops its L1 copy after replica 0's purge", func() bool {
		b, _ := get(1)
		return b != "/t #1"
	})
}

func fleet(t *testing.T, s, peer stampede.Store) {
	prefix := fmt.Sprintf("fleet%d", time.Now().UnixNano())
	var runs atomic.Int64
	release := make(chan struct{})
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		<-release
		fmt.Fprint(w, "shared")
	})
	var urls []string
	var caches []*stampede.Cache
	for _, st := range []stampede.Store{s, peer} {
		c := stampede.New(nil, st, time.Hour, stampede.WithKeyPrefix(prefix), stampede.WithFleetCoalescing(Patience),
			stampede.WithStoreTimeout(Patience))
		srv := httptest.NewServer(c.Handler(origin))
		defer srv.Close()
		urls, caches = append(urls, srv.URL), append(caches, c)
	}
	var wg sync.WaitGroup
	bodies := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := fetch(t, urls[i%2]+"/fleet")
			bodies <- b
		}()
	}
	eventually(t, "the origin is called", func() bool { return runs.Load() > 0 })
	close(release)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "shared" {
			t.Fatalf("body %q", b)
		}
	}
	for _, c := range caches {
		c.Wait()
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the origin ran %d times for one key across two replicas, want 1", n)
	}
}
