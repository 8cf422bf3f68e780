-- The tables of backends/sqlitestore, as Open (and Store.Migrate) creates them. {p} is the table prefix
-- (WithTablePrefix, default "stampede_"). Keys and tags are bytes; times are Unix milliseconds.

-- The cached values; sz is what a row is charged against WithMaxBytes.
CREATE TABLE IF NOT EXISTS {p}entries (
	k BLOB PRIMARY KEY,
	v BLOB NOT NULL,
	exp INTEGER NOT NULL,
	sz INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}entries_exp ON {p}entries (exp);

-- The live tickets of each key (FencedStore).
CREATE TABLE IF NOT EXISTS {p}tickets (
	k BLOB NOT NULL,
	id INTEGER NOT NULL,
	exp INTEGER NOT NULL,
	PRIMARY KEY (k, id)
);
CREATE INDEX IF NOT EXISTS {p}tickets_exp ON {p}tickets (exp);

-- The fleet lease of each key (LeaseStore).
CREATE TABLE IF NOT EXISTS {p}leases (
	k BLOB PRIMARY KEY,
	token INTEGER NOT NULL,
	exp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}leases_exp ON {p}leases (exp);

-- The keys recorded under each tag (TagStore).
CREATE TABLE IF NOT EXISTS {p}members (
	tag BLOB NOT NULL,
	k BLOB NOT NULL,
	exp INTEGER NOT NULL,
	PRIMARY KEY (tag, k)
);
CREATE INDEX IF NOT EXISTS {p}members_k ON {p}members (k);
CREATE INDEX IF NOT EXISTS {p}members_exp ON {p}members (exp);

-- One row per tag in use; purged is the tag clock at the tag's last purge, kept until exp.
CREATE TABLE IF NOT EXISTS {p}tags (
	tag BLOB PRIMARY KEY,
	purged INTEGER NOT NULL,
	exp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}tags_exp ON {p}tags (exp);

-- The tag clock, one row.
CREATE TABLE IF NOT EXISTS {p}clock (
	id INTEGER PRIMARY KEY,
	clock INTEGER NOT NULL
);
INSERT INTO {p}clock (id, clock) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;

-- Announcements (deletions, purged tags, released leases), polled by every Store on the file.
CREATE TABLE IF NOT EXISTS {p}events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	origin INTEGER NOT NULL,
	at INTEGER NOT NULL,
	kind TEXT NOT NULL,
	k BLOB NOT NULL,
	outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}events_at ON {p}events (at);
