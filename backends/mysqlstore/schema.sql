-- The tables of backends/mysqlstore (MySQL 8 and MariaDB 10.6 or later, InnoDB), as Store.Migrate
-- creates them. {p} is the table prefix (WithTablePrefix, default "stampede_"). Keys and tags are
-- bytes (at most 255; longer ones are stored as their SHA-256); times are Unix milliseconds.

-- The cached values; sz is what a row is charged against WithMaxBytes.
CREATE TABLE IF NOT EXISTS {p}entries (
	k VARBINARY(255) NOT NULL PRIMARY KEY,
	v LONGBLOB NOT NULL,
	exp BIGINT NOT NULL,
	sz BIGINT NOT NULL,
	KEY {p}entries_exp (exp)
) ENGINE=InnoDB;

-- The live tickets of each key (FencedStore).
CREATE TABLE IF NOT EXISTS {p}tickets (
	k VARBINARY(255) NOT NULL,
	id BIGINT NOT NULL,
	exp BIGINT NOT NULL,
	PRIMARY KEY (k, id),
	KEY {p}tickets_exp (exp)
) ENGINE=InnoDB;

-- The fleet lease of each key (LeaseStore).
CREATE TABLE IF NOT EXISTS {p}leases (
	k VARBINARY(255) NOT NULL PRIMARY KEY,
	token BIGINT NOT NULL,
	exp BIGINT NOT NULL,
	KEY {p}leases_exp (exp)
) ENGINE=InnoDB;

-- The keys recorded under each tag (TagStore).
CREATE TABLE IF NOT EXISTS {p}members (
	tag VARBINARY(255) NOT NULL,
	k VARBINARY(255) NOT NULL,
	exp BIGINT NOT NULL,
	PRIMARY KEY (tag, k),
	KEY {p}members_k (k),
	KEY {p}members_exp (exp)
) ENGINE=InnoDB;

-- One row per tag in use; purged is the tag clock at the tag's last purge, kept until exp.
CREATE TABLE IF NOT EXISTS {p}tags (
	tag VARBINARY(255) NOT NULL PRIMARY KEY,
	purged BIGINT NOT NULL,
	exp BIGINT NOT NULL,
	KEY {p}tags_exp (exp)
) ENGINE=InnoDB;

-- The tag clock, one row.
CREATE TABLE IF NOT EXISTS {p}clock (
	id INT NOT NULL PRIMARY KEY,
	clock BIGINT NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO {p}clock (id, clock) VALUES (1, 0);

-- Announcements (deletions, purged tags, released leases), polled by every Store on these tables.
CREATE TABLE IF NOT EXISTS {p}events (
	id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
	origin BIGINT NOT NULL,
	at BIGINT NOT NULL,
	kind VARCHAR(1) NOT NULL,
	k MEDIUMBLOB NOT NULL,
	outcome TEXT NOT NULL,
	KEY {p}events_at (at)
) ENGINE=InnoDB;
