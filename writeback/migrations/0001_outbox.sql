-- writeback v1: the Clio write-back outbox. One row per (call, kind); the
-- worker sends pending rows whose next_at has come, oldest first.
-- Times are UTC text with milliseconds: 2026-11-24T16:00:05.123Z.
CREATE TABLE clio_outbox (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	call_id    TEXT    NOT NULL CHECK (call_id <> ''),
	kind       TEXT    NOT NULL CHECK (kind IN ('communication','time_entry','task','document')),
	state      TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','done','failed')),
	attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	next_at    TEXT    NOT NULL CHECK (julianday(next_at) IS NOT NULL),
	clio_id    INTEGER CHECK (clio_id IS NULL OR clio_id > 0),
	error      TEXT    NOT NULL DEFAULT '',
	payload    TEXT    NOT NULL CHECK (json_valid(payload)),
	progress   TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(progress)),
	created_at TEXT    NOT NULL CHECK (julianday(created_at) IS NOT NULL),
	updated_at TEXT    NOT NULL CHECK (julianday(updated_at) IS NOT NULL),
	UNIQUE (call_id, kind)
);
CREATE INDEX clio_outbox_due ON clio_outbox (state, next_at);
