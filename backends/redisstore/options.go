package redisstore

import "time"

// DefaultTimeout bounds each operation when WithTimeout is not given.
const DefaultTimeout = 500 * time.Millisecond

// DefaultCompressionThreshold is a threshold for WithCompression that suits most responses: entries
// up to 1 KiB gain little from compression.
const DefaultCompressionThreshold = 1024

// DefaultMaxValueBytes is the largest value a Store decompresses when WithMaxValueBytes is not given.
const DefaultMaxValueBytes = 64 << 20

// Option configures a Store; pass options to New.
type Option func(*config)

type config struct {
	batch     int           // calls per batch, >= 1 after New (1: no batching)
	timeout   time.Duration // > 0 after New
	prefix    string
	compress  bool
	threshold int   // >= 0; values longer than this are compressed when compress is set
	maxValue  int64 // > 0 after New: the largest decompressed value
	// replicaAcks is how many replicas must acknowledge an invalidation: 0 learns it (see
	// WithReplicaAcks), below zero none.
	replicaAcks int
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

// WithCompression compresses stored entries longer than threshold bytes with S2 (default off; a
// threshold of zero is off too, and DefaultCompressionThreshold suits most uses). Entries whose response already has a Content-Encoding, values that
// are not entries, and values S2 cannot shrink are stored as they are. Reading does not depend on this
// option: every Store reads compressed and raw values alike, so replicas may differ in it. A negative
// threshold makes New panic.
func WithCompression(threshold int) Option {
	return func(c *config) {
		c.compress = threshold > 0
		c.threshold = threshold
	}
}

// WithMaxValueBytes bounds the size a compressed value may declare (default DefaultMaxValueBytes, also
// for zero): a stored value that claims to expand past n is a miss, refused before anything is
// allocated for it, and values longer than n are stored uncompressed. Set it above the middleware's
// WithMaxBodyBytes when you raise that past 64 MiB. A negative n makes New panic.
func WithMaxValueBytes(n int64) Option {
	return func(c *config) { c.maxValue = n }
}

// WithReplicaAcks sets how many replicas must acknowledge an invalidation (Invalidate, PurgeTag)
// before it returns nil; it returns ErrNotReplicated when fewer did within the store's timeout, since a
// failover could then bring the deleted entries back. By default (n = 0) a Store learns it from Redis:
// none while the master it talks to has never been seen with a replica, one from then on, for good, so
// that a master which lost its replica (an old master during a Sentinel failover) cannot take a
// deletion alone. A negative n waits for none. It applies to single-node and Sentinel clients; a
// Redis Cluster does not wait (its failover hands over what the master acknowledged).
func WithReplicaAcks(n int) Option {
	return func(c *config) { c.replicaAcks = n }
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
