// Package redisstore is a stampede store that keeps cached responses in Redis, so every replica of a
// service shares one cache. It works with a single Redis, Sentinel and Redis Cluster alike through
// go-redis v9, and it is built to fail fast: every operation is bounded by a timeout ([WithTimeout],
// default 500 ms), and the middleware treats any error as a miss, so a slow or dead Redis costs a
// request at most that timeout and never its response. The middleware also wraps every store in a
// circuit breaker; this package deliberately has none of its own.
//
// Concurrent Gets and SetExs are combined into batches ([WithBatching]): one MGET per node, or one
// pipeline of SETs, carries up to 128 of them while up to 8 batches per node are in flight. A burst of ten
// thousand concurrent look-ups is then a few dozen round trips, and go-redis's default pool (ten
// connections per CPU) serves it without calls queueing for a connection until they time out: the
// client a user starts with, redis.NewClient(&redis.Options{Addr: addr}), is enough.
//
// # Set-up
//
// A [Store] is anything with Get, SetEx and Delete, so it plugs into the middleware directly:
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	store := redisstore.New(client, redisstore.WithKeyPrefix("myapp:"), redisstore.WithCompression(redisstore.DefaultCompressionThreshold))
//	r.Use(stampede.Handler(logger, store, time.Minute))
//
// The store never closes the client; close it when the application shuts down.
//
// # Client settings
//
// go-redis applies a context's deadline to its sockets only when ContextTimeoutEnabled is true;
// otherwise it waits for its own ReadTimeout and WriteTimeout (5 s by default), plus up to five dial
// attempts. With ContextTimeoutEnabled the store's deadline is honoured directly. Without it (or with a
// client type the store cannot inspect) the store still returns at its deadline, by waiting for the
// reply on a separate goroutine and abandoning it; the abandoned call ends in the background within the
// client's own timeouts, so during an outage such calls pile up for up to that long. Prefer to set:
//
//	client := redis.NewClient(&redis.Options{
//		Addr:                  "redis:6379",
//		ContextTimeoutEnabled: true,                   // let the store's deadline reach the socket
//		DialTimeout:           200 * time.Millisecond, // near the store timeout, not 5 s
//		DialerRetries:         1,                      // default 5 attempts, 100 ms apart
//		ReadTimeout:           100 * time.Millisecond, // a cache read that takes longer is a miss anyway
//		WriteTimeout:          100 * time.Millisecond,
//		PoolTimeout:           100 * time.Millisecond, // waiting for a pooled connection counts too
//		MaxRetries:            -1,                     // no retries (0 means the default, 3); 1 at most
//	})
//
// Entries up to a few MiB travel well within 100 ms on a local network; raise the timeouts together if
// you store larger responses or Redis is far away. The default WithTimeout, 500 ms, leaves room for a
// process short of CPU, whose goroutines can wait that long to run: a look-up that times out is a miss,
// and a miss of a stored key is a second load.
//
// # Sentinel
//
// For Redis behind Sentinel, pass a failover client; it is a *redis.Client, so everything above holds:
//
//	client := redis.NewFailoverClient(&redis.FailoverOptions{
//		MasterName:            "mymaster",
//		SentinelAddrs:         []string{"sentinel-1:26379", "sentinel-2:26379", "sentinel-3:26379"},
//		ContextTimeoutEnabled: true,
//		DialTimeout:           200 * time.Millisecond,
//		DialerRetries:         1,
//		ReadTimeout:           100 * time.Millisecond,
//		WriteTimeout:          100 * time.Millisecond,
//		PoolTimeout:           100 * time.Millisecond,
//		MaxRetries:            -1,
//	})
//
// redis.NewUniversalClient picks a single-node, failover or cluster client from one set of options,
// which suits configuration that differs between environments; its UniversalOptions have the same
// fields.
//
// # Redis Cluster
//
//	client := redis.NewClusterClient(&redis.ClusterOptions{
//		Addrs:                 []string{"node-1:6379", "node-2:6379", "node-3:6379"},
//		ContextTimeoutEnabled: true,
//		DialTimeout:           200 * time.Millisecond,
//		DialerRetries:         1,
//		ReadTimeout:           100 * time.Millisecond,
//		WriteTimeout:          100 * time.Millisecond,
//		PoolTimeout:           100 * time.Millisecond,
//		MaxRetries:            -1,
//	})
//
// Keys spread over the cluster by hash slot (CRC16 of the key, modulo 16384), and the middleware's keys
// are digests, so the cache spreads evenly over the masters. Only the text between the first '{' and the
// next '}' is hashed when there is some (a hash tag): a [WithKeyPrefix] such as "{app}:" therefore puts
// every entry on one node, which is rarely what you want. [Store.BatchGet] sends one MGET per slot, in
// a pipeline per master, the masters in parallel. Slot moves (MOVED, ASK) are followed by go-redis; how
// the store follows a failover is under Failover below.
//
// # Failover
//
// Redis Cluster. go-redis routes each key by a slot map that it reloads on a MOVED or ASK reply, or
// once the map is older than ClusterOptions.ClusterStateReloadInterval (60 s by default). A master that
// is killed or stalls sends no MOVED: after cluster-node-timeout a replica takes its slots, but a client
// left alone keeps sending them to the old address until its next periodic reload, up to a minute
// later. The store closes that gap: when a Get, a batched SetEx or a BatchGet fails, it asks the
// client to reload its slot map (ReloadState), at most every 100 ms per client. Reloads during the
// outage find the old map; the first after the failover finds the new master, so the store follows a
// failover within a fraction of a second of its end, with go-redis's default reload interval. Other
// calls (Delete, the fleet's leases, tags, SetEx under WithBatching(1)) do not ask for reloads, but
// they use the same client and its map: a ClusterStateReloadInterval of a few seconds is a cheap
// backstop.
//
// Concurrent calls are queued per master and BatchGet sends a pipeline per master, so a dead or stalled
// master holds up the calls for its own keys only, each for at most its timeout ([WithTimeout]); the
// other masters' keys are served as usual meanwhile. Once 3 consecutive reads of one master's keys
// have failed over at least 100 ms, its keys' Gets fail at once with [ErrNodeDown] (still asking for
// slot-map reloads), and one Get a second probes it: a paused master costs a few reads its timeout,
// not every read of its keys until the failover ends. The new master, at another address, starts
// healthy. Between the failure being agreed on and the
// replica's promotion (about a second), a cluster with cluster-require-full-coverage yes (Redis's
// default) answers CLUSTERDOWN for every key, on every master; with "cluster-require-full-coverage no"
// the other masters keep serving theirs.
//
// Sentinel. A failover client (redis.NewFailoverClient) asks a sentinel for the master's address each
// time it dials, and listens for +switch-master on one sentinel, when it closes its connections to the
// old master, idle and in use. Until then, about a second after the replica's promotion, it keeps
// sending commands to the old master over the connections it has.
//
// A dead or stalled old master fails or times them out: misses, each bounded by the timeout. Every
// call that needs a new connection meanwhile asks a sentinel first, and when that query fails other
// than by the caller's deadline, the client rebuilds its sentinel connections under a lock that every
// dial waits for. The middleware's circuit breaker keeps calls off the client while the master is
// down; measured without it on a busy 2-core machine at 1,000 requests a second, the sentinels stopped
// accepting connections and requests took seconds, so keep it in front of a Sentinel-backed store. A
// stalled master that resumes after the failover finds the clients gone, and the sentinels make it a
// replica within seconds.
//
// A live old master, in a planned SENTINEL FAILOVER, still accepts writes, which the failover then
// discards: a Delete it acknowledged is lost, and the entry it deleted is served again from the new
// master. Pause the old master's writes before a planned failover (CLIENT PAUSE <ms> WRITE, for longer
// than the switch takes): writes then wait there until the clients move, and the store reports them as
// timed out instead of losing them; reads go on. docs/failover.md measures each of these.
//
// # Errors
//
// An operation that runs out of time returns an error wrapping [ErrTimeout] (and the underlying
// context or network error); a Get of a key whose Cluster master keeps failing returns one wrapping
// [ErrNodeDown] without a round trip (see Failover); other failures wrap go-redis's error. A missing
// key is not an error.
// go-redis also logs each failed dial through its own logger (see redis.SetLogger).
//
// # Values
//
// Values are the middleware's entries, which carry their own format version and checksum. With
// [WithCompression] an entry is stored as "STZ1" followed by an S2 block; raw entries start with "STMP".
// Every Store reads both, whatever its own options. Anything else found under a key is returned as it
// is, and the middleware rejects it as a miss and overwrites it.
package redisstore
