package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The store must satisfy stampede.Store; the interface is restated here because a backend does not
// import the root package.
var _ interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	SetEx(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Delete(ctx context.Context, key string) error
} = (*Store)(nil)

// recommended returns the client options the package doc recommends, for addr.
func recommended(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		ContextTimeoutEnabled: true,
		DialTimeout:           200 * time.Millisecond,
		DialerRetries:         1,
		ReadTimeout:           100 * time.Millisecond,
		WriteTimeout:          100 * time.Millisecond,
		PoolTimeout:           100 * time.Millisecond,
		MaxRetries:            -1,
	}
}

// relaxed returns client options with generous timeouts, for tests about values rather than failure:
// the race detector and parallel tests must not turn a 1 MiB round trip into a flake.
func relaxed(addr string) *redis.Options {
	return &redis.Options{Addr: addr, ContextTimeoutEnabled: true, ReadTimeout: 5 * time.Second}
}

func newClient(tb testing.TB, opt *redis.Options) *redis.Client {
	c := redis.NewClient(opt)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// makeEntry returns an encoded entry with a body of n bytes and many headers. The body is text, so it
// compresses; random=true makes it incompressible instead.
func makeEntry(n int, random bool, extra http.Header) []byte {
	h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
	for i := range 40 {
		h.Set(fmt.Sprintf("X-Header-%02d", i), strings.Repeat("v", i+1))
	}
	h["X-Multi"] = []string{"a", "b", ""}
	for k, v := range extra {
		h[k] = v
	}
	body := make([]byte, n)
	if random {
		x := uint64(0x9e3779b97f4a7c15)
		for i := range body {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			body[i] = byte(x)
		}
	} else {
		line := []byte("the quick brown fox jumps over the lazy dog 0123456789\n")
		for i := range body {
			body[i] = line[i%len(line)]
		}
	}
	return entry.Encode(&entry.Entry{
		Status: 200, Header: h, Body: body, StoredAt: time.Now(), Lifetime: time.Minute,
		Vary: []entry.VaryField{{Name: "Accept-Encoding", Value: "gzip"}},
	})
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	const ttl = 30 * time.Second

	tests := []struct {
		name     string
		size     int
		compress bool
	}{
		{"0 B", 0, false},
		{"1 KiB", 1 << 10, false},
		{"1 MiB", 1 << 20, false},
		{"0 B compressed", 0, true},
		{"1 KiB compressed", 1 << 10, true},
		{"1 MiB compressed", 1 << 20, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var opts []Option
			if tt.compress {
				opts = append(opts, WithCompression(DefaultCompressionThreshold))
			}
			s := New(newClient(t, relaxed(srv.Addr())), append(opts, WithTimeout(5*time.Second))...)
			key := "rt:" + tt.name
			val := makeEntry(tt.size, false, nil)
			if err := s.SetEx(ctx, key, val, ttl); err != nil {
				t.Fatalf("SetEx: %v", err)
			}
			got, ok, err := s.Get(ctx, key)
			if err != nil || !ok {
				t.Fatalf("Get = ok %v, err %v", ok, err)
			}
			if !bytes.Equal(got, val) {
				t.Fatalf("Get returned %d bytes, not the %d stored", len(got), len(val))
			}
			if _, err := entry.Parse(got); err != nil {
				t.Fatalf("entry.Parse: %v", err)
			}
			pttl, err := admin.PTTL(ctx, key).Result()
			if err != nil || pttl <= 0 || pttl > ttl {
				t.Fatalf("PTTL = %v, %v; want in (0, %v]", pttl, err, ttl)
			}
			n, err := admin.StrLen(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if compressed := int(n) < len(val); compressed != (tt.compress && len(val) > DefaultCompressionThreshold) {
				t.Fatalf("STRLEN %d for a %d-byte entry: compressed = %v", n, len(val), compressed)
			}
		})
	}
}

func TestSubMillisecondTTL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := New(newClient(t, relaxed(srv.Addr())), WithTimeout(5*time.Second))
	ctx := context.Background()
	if err := s.SetEx(ctx, "k", []byte("v"), time.Microsecond); err != nil {
		t.Fatalf("SetEx with 1µs: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Second} {
		if err := s.SetEx(ctx, "k2", []byte("v"), ttl); err == nil {
			t.Errorf("SetEx with ttl %v: no error", ttl)
		}
	}
	if n, _ := srv.Client().Exists(ctx, "k2").Result(); n != 0 {
		t.Fatal("SetEx with a ttl not above zero wrote the key")
	}
}

func TestMissDeletePrefix(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	val := makeEntry(100, false, nil)

	tests := []struct {
		name   string
		prefix string
	}{
		{"no prefix", ""},
		{"prefix", "app:v1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(newClient(t, relaxed(srv.Addr())), WithKeyPrefix(tt.prefix), WithTimeout(5*time.Second))
			key := "k-" + tt.name
			if b, ok, err := s.Get(ctx, key); b != nil || ok || err != nil {
				t.Fatalf("Get of a missing key = %q, %v, %v; want nil, false, nil", b, ok, err)
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatalf("Delete of a missing key: %v", err)
			}
			if err := s.SetEx(ctx, key, val, time.Minute); err != nil {
				t.Fatal(err)
			}
			raw, err := admin.Get(ctx, tt.prefix+key).Bytes()
			if err != nil || !bytes.Equal(raw, val) {
				t.Fatalf("raw GET %q = %d bytes, %v; want the entry", tt.prefix+key, len(raw), err)
			}
			if tt.prefix != "" {
				if n, _ := admin.Exists(ctx, key).Result(); n != 0 {
					t.Fatalf("unprefixed key %q exists", key)
				}
			}
			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if n, _ := admin.Exists(ctx, tt.prefix+key).Result(); n != 0 {
				t.Fatal("key still exists after Delete")
			}
			if _, ok, err := s.Get(ctx, key); ok || err != nil {
				t.Fatalf("Get after Delete = %v, %v; want a miss", ok, err)
			}
		})
	}
}

// clientConfigs are the ways users configure go-redis; the store must stay bounded under each.
var clientConfigs = []struct {
	name    string
	opts    func(addr string) *redis.Options
	guarded bool
}{
	{"recommended", recommended, false},
	{"context timeouts only", func(addr string) *redis.Options {
		return &redis.Options{Addr: addr, ContextTimeoutEnabled: true}
	}, false},
	{"go-redis defaults", func(addr string) *redis.Options { return &redis.Options{Addr: addr} }, true},
}

// hangAfter is how long an operation against a dead or stalled Redis may take before the test calls it
// hung: 30 times the store's timeout, so a loaded machine never reaches it, yet as long as go-redis's own
// default ReadTimeout (3 s), which is what a call would wait for if the store's deadline did not reach
// the socket. Nothing here asserts how fast a failure is; the duration is logged.
const hangAfter = 30 * DefaultTimeout

func TestServerStopped(t *testing.T) {
	t.Parallel()
	for _, cc := range clientConfigs {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			s := New(newClient(t, cc.opts(srv.Addr())))
			if s.guarded != cc.guarded {
				t.Fatalf("guarded = %v, want %v", s.guarded, cc.guarded)
			}
			ctx := context.Background()
			val := makeEntry(1<<10, false, nil)
			// The set-up write may meet the store's 500 ms timeout on a loaded machine: try it again.
			var err error
			for range 20 {
				if err = s.SetEx(ctx, "k", val, time.Minute); !errors.Is(err, ErrTimeout) {
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}

			srv.Stop()
			ops := []struct {
				name string
				do   func() error
			}{
				{"Get", func() error { _, _, err := s.Get(ctx, "k"); return err }},
				{"SetEx", func() error { return s.SetEx(ctx, "k", val, time.Minute) }},
				{"Delete", func() error { return s.Delete(ctx, "k") }},
				{"BatchGet", func() error { _, err := s.BatchGet(ctx, []string{"k", "x"}); return err }},
			}
			var slowest time.Duration
			for range 3 { // several rounds: the first dial fails differently from a pool that gave up
				for _, op := range ops {
					start := time.Now()
					err := op.do()
					d := time.Since(start)
					slowest = max(slowest, d)
					if d > hangAfter {
						t.Errorf("%s with Redis down took %v: it waits for something other than its timeout (%v)",
							op.name, d, DefaultTimeout)
					}
					if err == nil {
						t.Fatalf("%s with Redis down: no error", op.name)
					}
				}
			}

			srv.Restart()
			// The same client and store recover on their own; go-redis may need a moment to notice.
			restarted := time.Now()
			deadline := restarted.Add(time.Minute)
			for s.SetEx(ctx, "k", val, time.Minute) != nil {
				if time.Now().After(deadline) {
					t.Fatal("SetEx still failing a minute after Redis restarted")
				}
				time.Sleep(20 * time.Millisecond) // waiting on go-redis to redial, an external event
			}
			t.Logf("slowest operation while down: %v; writes succeeded again %v after restart",
				slowest, time.Since(restarted).Round(time.Millisecond))
			got, ok, err := s.Get(ctx, "k")
			if err != nil || !ok || !bytes.Equal(got, val) {
				t.Fatalf("Get after restart = ok %v, err %v", ok, err)
			}
		})
	}
}

// TestServerPaused: against a Redis that stopped answering (frozen until the test ends), Get returns
// ErrTimeout: the store's deadline ends the call, whatever the client's own timeouts. The stall never
// ends by itself, so a call that returned was ended by a deadline; which one is told by the error (a
// guarded client's call is abandoned at the context deadline) and, for clients that pass deadlines to
// their sockets, by returning long before go-redis's own 3 s ReadTimeout.
func TestServerPaused(t *testing.T) {
	t.Parallel()
	for _, cc := range clientConfigs {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			s := New(newClient(t, cc.opts(srv.Addr())))
			ctx := context.Background()
			if err := s.SetEx(ctx, "k", []byte("v"), time.Minute); err != nil { // warm a connection
				t.Fatal(err)
			}
			srv.Freeze()
			start := time.Now()
			_, _, err := s.Get(ctx, "k")
			d := time.Since(start)
			t.Logf("Get against a stalled Redis returned after %v: %v", d.Round(time.Millisecond), err)
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("Get against a stalled Redis: err = %v, want ErrTimeout", err)
			}
			if s.guarded && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("guarded Get against a stalled Redis: err = %v, want the context's deadline", err)
			}
			if d > hangAfter {
				t.Errorf("Get against a stalled Redis took %v: it waited for something other than its timeout (%v)",
					d, DefaultTimeout)
			}
			// A caller deadline shorter than the store's wins: the error is the caller's deadline.
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			start = time.Now()
			if _, _, err := s.Get(short, "k"); !errors.Is(err, ErrTimeout) {
				t.Errorf("Get with a 20ms caller deadline: err = %v, want ErrTimeout", err)
			}
			if d := time.Since(start); d > hangAfter {
				t.Errorf("Get with a 20ms caller deadline took %v", d)
			}
		})
	}
}

func TestCallerCancel(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := New(newClient(t, recommended(srv.Addr())))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Get(ctx, "k")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("Get with a cancelled context: err = %v, want context.Canceled and not ErrTimeout", err)
	}
}

func TestNewPanics(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = client.Close() })
	tests := []struct {
		name   string
		client redis.UniversalClient
		opts   []Option
	}{
		{"nil client", nil, nil},
		{"typed nil client", (*redis.Client)(nil), nil},
		{"negative timeout", client, []Option{WithTimeout(-time.Second)}},
		{"negative threshold", client, []Option{WithCompression(-1)}},
		{"negative value bound", client, []Option{WithMaxValueBytes(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "stampede: redisstore: ") {
					t.Fatalf("panic = %q, want a message starting with %q", msg, "stampede: redisstore: ")
				}
			}()
			New(tt.client, tt.opts...)
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = client.Close() })
	s := New(client, WithTimeout(0))
	if s.cfg.timeout != DefaultTimeout || s.cfg.compress {
		t.Fatalf("timeout %v compress %v; want %v, off", s.cfg.timeout, s.cfg.compress, DefaultTimeout)
	}
	if s = New(client, WithCompression(0)); s.cfg.compress {
		t.Fatal("WithCompression(0) turned compression on")
	}
	if s = New(client, WithMaxValueBytes(0)); s.cfg.maxValue != DefaultMaxValueBytes {
		t.Fatalf("WithMaxValueBytes(0) = %d, want %d", s.cfg.maxValue, DefaultMaxValueBytes)
	}
}

// benchGet measures reading one 1 KiB entry. BenchmarkGet and BenchmarkRawGet run the same key, value
// and client options, so their ratio is the store's own cost over a bare go-redis GET.
func benchGet(b *testing.B, opt func(string) *redis.Options, get func(ctx context.Context, c *redis.Client, s *Store) error) {
	srv := redistest.Start(b)
	c := newClient(b, opt(srv.Addr()))
	s := New(c, WithTimeout(time.Second))
	ctx := context.Background()
	if err := s.SetEx(ctx, "bench", makeEntry(1<<10, false, nil), time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := get(ctx, c, s); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRelaxed(addr string) *redis.Options {
	o := relaxed(addr)
	o.MaxRetries = -1
	return o
}

func BenchmarkGet(b *testing.B) {
	benchGet(b, benchRelaxed, func(ctx context.Context, _ *redis.Client, s *Store) error {
		_, ok, err := s.Get(ctx, "bench")
		if !ok && err == nil {
			err = errors.New("miss")
		}
		return err
	})
}

func BenchmarkRawGet(b *testing.B) {
	benchGet(b, benchRelaxed, func(ctx context.Context, c *redis.Client, _ *Store) error {
		_, err := c.Get(ctx, "bench").Bytes()
		return err
	})
}

// BenchmarkGetGuarded is Get through a client with go-redis defaults (ContextTimeoutEnabled off), where
// the store enforces its timeout on a goroutine of its own.
func BenchmarkGetGuarded(b *testing.B) {
	benchGet(b, func(addr string) *redis.Options { return &redis.Options{Addr: addr} },
		func(ctx context.Context, _ *redis.Client, s *Store) error {
			_, _, err := s.Get(ctx, "bench")
			return err
		})
}
