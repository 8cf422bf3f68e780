// Package pgstore is a stampede store that keeps cached responses and values in PostgreSQL (through
// pgx v5), for a team that runs PostgreSQL but not Redis: every replica of a service shares one cache,
// and it survives restarts of the service. It offers everything stampede can use of a shared store:
// batched reads, fenced writes, a shared tag index, fleet coalescing (leases) and announcements of
// deletions and purged tags (LISTEN/NOTIFY), so a memory tier in front of it (backends/tieredstore)
// stays coherent across replicas.
//
// It is a module of its own, so that pgx is not a dependency of stampede's root module.
//
// # Set-up
//
//	pool, err := pgxpool.New(ctx, "postgres://app@db:5432/app")
//	store, err := pgstore.New(pool, pgstore.WithTablePrefix("myapp_cache_"), pgstore.WithUnlogged(true))
//	err = store.Migrate(ctx) // creates the tables where missing; every replica may run it
//	defer store.Close()      // stops the background sweep and the listener; the pool is yours
//	r.Use(stampede.Handler(logger, store, time.Minute, stampede.WithFleetCoalescing(5*time.Second)))
//
// The tables are those of schema.sql in this package, each named with the prefix: entries, tickets,
// leases, tags, members and clock. Migrate creates them (IF NOT EXISTS, under an advisory lock so that
// replicas starting together do not race); to manage the schema yourself, run schema.sql with {p}
// replaced by the prefix and {unlogged} by UNLOGGED or nothing. The prefix is checked to be a plain
// lower-case identifier and is never quoted nor interpolated unchecked.
//
// With [WithUnlogged], the entries, tickets, leases and members tables skip the write-ahead log:
// writes are markedly cheaper (no WAL, no flush at commit), but PostgreSQL empties those tables after
// a crash (not after a clean shutdown) and standbys do not have them. For a cache that is usually the
// right trade.
//
// # Bounds
//
// A background sweep (every second, [WithSweepInterval], and early after a burst of writes) deletes
// expired rows in batches of 1,000, each its own short statement, and evicts the entries that expire
// first while the table holds more than [WithMaxRows] rows (default 100,000) or [WithMaxBytes] of
// keys and values (default 1 GiB), down to 15/16 of the bound. Tickets, leases and tag members are
// kept within four times the row bound, so nothing grows without bound under a flood of one-off keys.
// While the entries table is above twice its bound (a flood outrunning the sweep), writes are dropped
// until the sweep catches up.
// [Store.Len] and [Store.Bytes] report the size as of the last sweep; [Store.Evictions] counts this
// process's evictions.
//
// # Fail-open
//
// Every call is bounded by [WithTimeout] (default 500 ms), whatever the caller's context says, and the
// stampede middleware counts an error as a miss: a database that is down, paused or slow costs a
// request at most that timeout, never its response. A call that runs out of time returns an error
// wrapping [ErrTimeout]; pgx closes the connection it was using, and the pool dials a new one.
// Configure the pool's own limits to match: a connect_timeout in the URL, and a MaxConns high enough
// for the concurrent misses of a replica.
//
// # Fencing, leases and announcements
//
// Writes are fenced as stampede's FencedStore contract says: each ticket is a row; SetFenced checks it
// (with a share lock) and writes in one transaction, and Invalidate deletes the tickets and the lease
// before the entry in one transaction, so a value computed before an invalidation never lands after
// it. PurgeTag first advances a tag clock and marks the tag, then invalidates its members: a write
// whose ticket is older than the mark is refused under that tag, whether it recorded the tag before or
// after the purge. The lease of fleet coalescing is a row too; its token is a ticket.
//
// Deletions, purged tags and released leases are announced with NOTIFY on the channel prefix+"events",
// sent when the transaction commits, and heard by one connection per Store (not one of the pool's)
// that LISTENs on it and reconnects when it breaks. A replica waiting for a lease is woken by the
// notification, or by a timer at the lease's expiry; nothing polls. Keys longer than about 5,900 bytes
// are not announced (a NOTIFY payload holds 8,000 bytes); stampede's keys are far shorter.
//
// # What holds across processes
//
// Everything that is in the database: a value written by one replica is read by all; a ticket revoked
// by an Invalidate on any replica refuses writes on every replica; a lease is held by one replica at a
// time. Announcements reach every listening replica unless its listener is disconnected at that
// moment: a replica's memory tier then keeps its copy until its own TTL cap (tieredstore's WithL1TTL,
// 5 s by default), and its lease waiters wake at the lease's expiry. Expiry times are computed by each
// process from its own clock: keep the fleet's clocks synchronised.
//
// Connection poolers in transaction mode (PgBouncer) break LISTEN and prepared statements: give the
// store a direct connection, or pgx's QueryExecModeSimpleProtocol and a session-mode pool.
package pgstore
