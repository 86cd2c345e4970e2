-- routing v3: per-rule overrides of the Clio write-back defaults (clio.writeback.*).
-- '' follows the configuration.
ALTER TABLE rules ADD COLUMN writeback_time_entry TEXT NOT NULL DEFAULT ''
	CHECK (writeback_time_entry IN ('', 'on', 'off'));
ALTER TABLE rules ADD COLUMN writeback_non_billable TEXT NOT NULL DEFAULT ''
	CHECK (writeback_non_billable IN ('', 'on', 'off'));
ALTER TABLE rules ADD COLUMN writeback_task_priority TEXT NOT NULL DEFAULT ''
	CHECK (writeback_task_priority IN ('', 'High', 'Normal', 'Low'));
