package sqlstore

// queries are the statements a Store runs on every call, with the prefix in place, built once.
type queries struct {
	chunk int // most values in one IN list (dialects without arrays)

	get, setEntry, delEntry          string
	clock, ticket, checkTicket       string
	checkLease, delTickets, delLease string
	release, leaseExp                string
	bumpClock, maxTicket, maxLease   string
	tagMembers                       string
	countEntries, evictionCandidates string
}

func buildQueries(s *Store) queries {
	d := s.d
	q := queries{chunk: 500}
	if d.Array {
		q.chunk = 10_000
	}
	q.get = s.sql("SELECT v FROM {p}entries WHERE k = ? AND exp > ? AND LENGTH(v) <= ?")
	q.setEntry = s.sql(d.Upsert("{p}entries", []string{"k", "v", "exp", "sz"}, []string{"k"}, []string{"v", "exp", "sz"}, nil, 1))
	q.delEntry = s.sql("DELETE FROM {p}entries WHERE k = ?")
	q.clock = s.sql("SELECT clock FROM {p}clock WHERE id = 1")
	q.ticket = s.sql("INSERT INTO {p}tickets (k, id, exp) VALUES (?, ?, ?)")
	q.checkTicket = s.sql("SELECT 1 FROM {p}tickets WHERE k = ? AND id = ? AND exp > ?" + d.ShareLock)
	q.checkLease = s.sql("SELECT 1 FROM {p}leases WHERE k = ? AND token = ? AND exp > ?" + d.ShareLock)
	q.delTickets = s.sql("DELETE FROM {p}tickets WHERE k = ?")
	q.delLease = s.sql("DELETE FROM {p}leases WHERE k = ?")
	q.release = s.sql("DELETE FROM {p}leases WHERE k = ? AND token = ?")
	q.leaseExp = s.sql("SELECT exp FROM {p}leases WHERE k = ?")
	q.bumpClock = s.sql("UPDATE {p}clock SET clock = clock + 1 WHERE id = 1")
	q.maxTicket = s.sql("SELECT COALESCE(MAX(exp), 0) FROM {p}tickets")
	q.maxLease = s.sql("SELECT COALESCE(MAX(exp), 0) FROM {p}leases")
	q.tagMembers = s.sql("SELECT k FROM {p}members WHERE tag = ?")
	q.countEntries = s.sql("SELECT COUNT(*), COALESCE(SUM(sz), 0) FROM {p}entries")
	q.evictionCandidates = s.sql("SELECT k FROM {p}entries ORDER BY exp LIMIT ?")
	return q
}
