-- A change counter bumped by triggers on every write to rules and closures, from
-- matterline or the sqlite3 shell alike. The server polls PRAGMA data_version
-- (which moves on ANY write to the file: call records, the Clio cache) and reloads
-- the rules only when this counter moved.
CREATE TABLE rules_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO rules_version (id, version) VALUES (1, 1);
CREATE TRIGGER rules_version_ins AFTER INSERT ON rules BEGIN UPDATE rules_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER rules_version_upd AFTER UPDATE ON rules BEGIN UPDATE rules_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER rules_version_del AFTER DELETE ON rules BEGIN UPDATE rules_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER closures_version_ins AFTER INSERT ON closures BEGIN UPDATE rules_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER closures_version_upd AFTER UPDATE ON closures BEGIN UPDATE rules_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER closures_version_del AFTER DELETE ON closures BEGIN UPDATE rules_version SET version = version + 1 WHERE id = 1; END;
