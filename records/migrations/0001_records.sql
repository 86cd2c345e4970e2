-- records v1: call records (one row per call) and recorded messages.
-- Times are UTC text with milliseconds: 2026-11-24T16:00:05.123Z.
-- Enumerations are text; the CHECK constraints list every allowed value.

CREATE TABLE call_records (
	seq             INTEGER PRIMARY KEY,
	id              TEXT    NOT NULL CHECK (id <> ''),
	sip_call_id     TEXT    NOT NULL CHECK (sip_call_id <> ''),
	start_time      TEXT    NOT NULL CHECK (julianday(start_time) IS NOT NULL),
	answer_time     TEXT             CHECK (answer_time IS NULL OR julianday(answer_time) IS NOT NULL),
	end_time        TEXT             CHECK (end_time IS NULL OR julianday(end_time) IS NOT NULL),
	caller          TEXT    NOT NULL DEFAULT '',
	called          TEXT    NOT NULL DEFAULT '',
	lookup_status   TEXT    NOT NULL DEFAULT 'unknown'
		CHECK (lookup_status IN ('unknown','found','not_found','ambiguous','error','unconfigured')),
	contact_id      INTEGER CHECK (contact_id IS NULL OR contact_id > 0),
	matter_id       INTEGER CHECK (matter_id IS NULL OR matter_id > 0),
	staff_id        INTEGER CHECK (staff_id IS NULL OR staff_id > 0),
	intents         TEXT    NOT NULL DEFAULT '[]'
		CHECK (json_valid(intents) AND json_type(intents) = 'array'),
	rule            TEXT    NOT NULL DEFAULT '',
	mode            TEXT    NOT NULL DEFAULT '' CHECK (mode IN ('','cold','warm')),
	destination     TEXT    NOT NULL DEFAULT '',
	decision_reason TEXT    NOT NULL DEFAULT '',
	outcome         TEXT    NOT NULL DEFAULT 'unknown'
		CHECK (outcome IN ('unknown','none','referred','bridged','declined','no_answer',
		                   'busy','failed','message','abandoned','redirected')),
	end_reason      TEXT    NOT NULL DEFAULT 'unknown'
		CHECK (end_reason IN ('unknown','caller_bye','caller_cancel','callee_bye','our_bye','rejected',
		                      'no_ack','rtp_timeout','session_expired','menu_goodbye','hangup',
		                      'drain','shutdown','transferred','error')),
	ring_ms         INTEGER NOT NULL DEFAULT 0 CHECK (ring_ms >= 0),
	talk_ms         INTEGER NOT NULL DEFAULT 0 CHECK (talk_ms >= 0),
	UNIQUE (sip_call_id, id)
);
CREATE INDEX call_records_start ON call_records (start_time);
CREATE INDEX call_records_outcome_start ON call_records (outcome, start_time);
CREATE INDEX call_records_id ON call_records (id);

CREATE TABLE messages (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	recorded_at TEXT    NOT NULL CHECK (julianday(recorded_at) IS NOT NULL),
	call_id     TEXT    NOT NULL DEFAULT '',
	caller      TEXT    NOT NULL DEFAULT '',
	contact_id  INTEGER CHECK (contact_id IS NULL OR contact_id > 0),
	matter_id   INTEGER CHECK (matter_id IS NULL OR matter_id > 0),
	rule        TEXT    NOT NULL DEFAULT '',
	duration_ms INTEGER NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
	file        TEXT    NOT NULL UNIQUE
		CHECK (file <> '' AND file NOT LIKE '/%' AND file NOT LIKE '%..%' AND file NOT LIKE '%\%'),
	size        INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0)
);
CREATE INDEX messages_recorded_at ON messages (recorded_at);
