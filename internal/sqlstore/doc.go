// Package sqlstore is the engine behind the SQL stores of stampede (backends/pgstore,
// backends/mysqlstore, backends/sqlitestore): one implementation of the store contracts of the root
// package's store.go over a relational table set, written once and given each database's SQL by a
// [Dialect]. It imports no driver: each store module adapts its driver to [DB].
//
// # Tables
//
// With table prefix p (validated by [ValidPrefix]):
//
//   - p+"entries" (k, v, exp, sz): the values; exp is the expiry in Unix milliseconds, sz what the row
//     is charged against the byte bound (len(k) + len(v) + [RowOverhead]).
//   - p+"tickets" (k, id, exp): the live tickets of each key (FencedStore).
//   - p+"leases" (k, token, exp): the fleet lease of each key (LeaseStore).
//   - p+"tags" (tag, purged, exp): one row per tag in use; purged is the tag clock when the tag was last
//     purged, kept until exp, past which no ticket taken before that purge can still be live.
//   - p+"members" (tag, k, exp): the keys recorded under each tag (TagStore).
//   - p+"clock" (id, clock): one row, the tag clock that PurgeTag advances.
//   - p+"events" (id, origin, kind, k, outcome): only for dialects that announce through a log table
//     (MySQL, SQLite); PostgreSQL uses NOTIFY.
//
// Keys and tags are stored as bytes: up to [MaxKeyBytes] as they are, longer ones (or ones that start
// with a NUL byte) as a NUL byte and their SHA-256, so that any key fits an index.
//
// # Fencing
//
// Each fenced write is one transaction that takes its locks in one order (tags, then the ticket or
// lease, then the entry), as Invalidate (ticket and lease, then the entry) and PurgeTag (the tag, then
// the tickets, leases and entries of its members) do; see fenced.go for the interleavings this
// rules out.
//
// # Clock
//
// Expiry times are computed in this process (Unix milliseconds from its clock) and compared in SQL
// with a "now" the process passes, so replicas with skewed clocks see TTLs shifted by their skew: keep
// the clocks of a fleet synchronised (NTP keeps them within milliseconds, far below any TTL).
package sqlstore
