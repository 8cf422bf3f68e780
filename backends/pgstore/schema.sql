-- The tables of backends/pgstore, as Store.Migrate creates them. {p} is the table prefix
-- (WithTablePrefix, default "stampede_"); {unlogged} is "UNLOGGED" with WithUnlogged(true), else empty.
-- Keys and tags are bytes; times are Unix milliseconds.

-- The cached values; sz is what a row is charged against WithMaxBytes.
CREATE {unlogged} TABLE IF NOT EXISTS {p}entries (
	k bytea PRIMARY KEY,
	v bytea NOT NULL,
	exp bigint NOT NULL,
	sz bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}entries_exp ON {p}entries (exp);

-- The live tickets of each key (FencedStore).
CREATE {unlogged} TABLE IF NOT EXISTS {p}tickets (
	k bytea NOT NULL,
	id bigint NOT NULL,
	exp bigint NOT NULL,
	PRIMARY KEY (k, id)
);
CREATE INDEX IF NOT EXISTS {p}tickets_exp ON {p}tickets (exp);

-- The fleet lease of each key (LeaseStore).
CREATE {unlogged} TABLE IF NOT EXISTS {p}leases (
	k bytea PRIMARY KEY,
	token bigint NOT NULL,
	exp bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}leases_exp ON {p}leases (exp);

-- The keys recorded under each tag (TagStore).
CREATE {unlogged} TABLE IF NOT EXISTS {p}members (
	tag bytea NOT NULL,
	k bytea NOT NULL,
	exp bigint NOT NULL,
	PRIMARY KEY (tag, k)
);
CREATE INDEX IF NOT EXISTS {p}members_k ON {p}members (k);
CREATE INDEX IF NOT EXISTS {p}members_exp ON {p}members (exp);

-- One row per tag in use; purged is the tag clock at the tag's last purge, kept until exp. Always
-- logged, as is the clock: both are small and rarely written.
CREATE TABLE IF NOT EXISTS {p}tags (
	tag bytea PRIMARY KEY,
	purged bigint NOT NULL,
	exp bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}tags_exp ON {p}tags (exp);

-- The tag clock, one row.
CREATE TABLE IF NOT EXISTS {p}clock (
	id int PRIMARY KEY,
	clock bigint NOT NULL
);
INSERT INTO {p}clock (id, clock) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
