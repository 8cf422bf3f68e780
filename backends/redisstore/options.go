package redisstore

import "time"

// DefaultTimeout bounds each operation when WithTimeout is not given.
const DefaultTimeout = 500 * time.Millisecond

// DefaultCompressionThreshold is the threshold WithCompression(0) uses.
const DefaultCompressionThreshold = 1024

// Option configures a Store; pass options to New.
type Option func(*config)

type config struct {
	batch     int           // calls per batch, >= 1 after New (1: no batching)
	timeout   time.Duration // > 0 after New
	prefix    string
	compress  bool
	threshold int // >= 0; values longer than this are compressed when compress is set
}

// WithTimeout bounds every operation to d (default 500 ms, also for zero), whether or not the caller's
// context has a deadline; an earlier caller deadline still wins. See the package doc for the client
// settings that let go-redis honour it. A negative d makes New panic.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithKeyPrefix prepends p to every key (default none), so several applications or versions can share
// one Redis. In a cluster, a prefix with a hash tag ("{p}") puts every key in one slot, on one node.
func WithKeyPrefix(p string) Option {
	return func(c *config) { c.prefix = p }
}

// WithCompression compresses stored entries longer than threshold bytes with S2 (default off;
// a threshold of zero means 1 KiB). Entries whose response already has a Content-Encoding, values that
// are not entries, and values S2 cannot shrink are stored as they are. Reading does not depend on this
// option: every Store reads compressed and raw values alike, so replicas may differ in it. A negative
// threshold makes New panic.
func WithCompression(threshold int) Option {
	return func(c *config) {
		c.compress = true
		c.threshold = threshold
	}
}

// WithBatching sets how many concurrent Get (or SetEx) calls one round trip carries: the default is
// DefaultBatchSize (128), also for zero; 1 sends each call on its own. Concurrent calls are combined
// into one MGET per node (a pipeline of SETs) while up to 8 batches are in flight, so a burst of
// look-ups does not queue for connections until it times out; a call that runs alone is sent at once.
// While more calls queue than 8 batches hold, each batch takes an even share of the queue, up to 8 times
// n, and a Get whose caller stopped waiting is dropped from the queue instead of being sent.
// A negative n makes New panic.
func WithBatching(n int) Option {
	return func(c *config) { c.batch = n }
}
