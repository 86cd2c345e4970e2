-- routing v1: transfer rules and firm closures. Documented in docs/rules.md.
-- Hours and time zones are plain text validated by matterline, so a hand-edited
-- bad value loads, is reported and skipped, instead of failing the write.
CREATE TABLE rules (
	name           TEXT PRIMARY KEY COLLATE NOCASE
	               CHECK (length(name) BETWEEN 1 AND 64),
	staff_name     TEXT NOT NULL DEFAULT '',
	staff_id       INTEGER UNIQUE CHECK (staff_id IS NULL OR staff_id > 0),
	destination    TEXT NOT NULL CHECK (destination <> ''),
	mode           TEXT NOT NULL DEFAULT 'cold' CHECK (mode IN ('cold', 'warm')),
	caller_id      TEXT NOT NULL DEFAULT 'caller' CHECK (caller_id IN ('caller', 'service')),
	message        TEXT NOT NULL DEFAULT '',
	message_audio  TEXT NOT NULL DEFAULT '',
	whisper        TEXT NOT NULL DEFAULT '',
	accept_digit   TEXT NOT NULL DEFAULT ''
	               CHECK (accept_digit IN ('', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#')),
	ring_timeout_s INTEGER NOT NULL DEFAULT 20 CHECK (ring_timeout_s BETWEEN 1 AND 600),
	unavailable    TEXT NOT NULL DEFAULT 'message'
	               CHECK (unavailable IN ('message', 'menu', 'hangup') OR unavailable LIKE 'rule:_%'),
	extension      TEXT UNIQUE
	               CHECK (extension IS NULL OR (length(extension) BETWEEN 1 AND 8 AND extension NOT GLOB '*[^0-9]*')),
	hours          TEXT NOT NULL DEFAULT '',
	time_zone      TEXT NOT NULL DEFAULT '',
	enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE closures (
	date TEXT PRIMARY KEY
	     CHECK (date GLOB '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]'),
	note TEXT NOT NULL DEFAULT ''
);
