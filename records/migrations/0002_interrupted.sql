-- records v2: a call's row is written at the INVITE (outcome in_progress, no end_time) and
-- finished when the call ends; on start, matterline serve marks the rows a crash left
-- unfinished as interrupted (outcome and end_reason, end_time stays NULL: unknown).
-- SQLite cannot change a CHECK constraint in place, so call_records is rebuilt with the
-- same columns and indexes and the two new values allowed.

CREATE TABLE call_records_v2 (
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
		                   'busy','failed','message','abandoned','redirected',
		                   'in_progress','interrupted')),
	end_reason      TEXT    NOT NULL DEFAULT 'unknown'
		CHECK (end_reason IN ('unknown','caller_bye','caller_cancel','callee_bye','our_bye','rejected',
		                      'no_ack','rtp_timeout','session_expired','menu_goodbye','hangup',
		                      'drain','shutdown','transferred','error','interrupted')),
	ring_ms         INTEGER NOT NULL DEFAULT 0 CHECK (ring_ms >= 0),
	talk_ms         INTEGER NOT NULL DEFAULT 0 CHECK (talk_ms >= 0),
	UNIQUE (sip_call_id, id)
);

INSERT INTO call_records_v2 (seq, id, sip_call_id, start_time, answer_time, end_time, caller,
	called, lookup_status, contact_id, matter_id, staff_id, intents, rule, mode, destination,
	decision_reason, outcome, end_reason, ring_ms, talk_ms)
SELECT seq, id, sip_call_id, start_time, answer_time, end_time, caller,
	called, lookup_status, contact_id, matter_id, staff_id, intents, rule, mode, destination,
	decision_reason, outcome, end_reason, ring_ms, talk_ms
FROM call_records;

DROP TABLE call_records;
ALTER TABLE call_records_v2 RENAME TO call_records;
CREATE INDEX call_records_start ON call_records (start_time);
CREATE INDEX call_records_outcome_start ON call_records (outcome, start_time);
CREATE INDEX call_records_id ON call_records (id);
