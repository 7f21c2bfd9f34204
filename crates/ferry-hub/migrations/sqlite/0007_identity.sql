-- Technicians, their API keys and browser sessions; audit entries that name their actor;
-- access checks that read columns instead of JSON; the job queue's sequence as a counter.

CREATE TABLE technicians (
    id             TEXT PRIMARY KEY,
    -- The login name; unique whatever the case ("Alice" and "alice" are one person).
    name           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name   TEXT NOT NULL,
    email          TEXT,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'guest')),
    enabled        INTEGER NOT NULL DEFAULT 1,
    -- argon2id PHC string; NULL: no portal login (API keys only).
    password_hash  TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    technician_id   TEXT NOT NULL REFERENCES technicians (id),
    name            TEXT NOT NULL,
    -- HMAC-SHA256 of the secret with the server key (see secrets.rs).
    secret_hash     BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    last_used_at    INTEGER,
    last_used_addr  TEXT,
    revoked_at      INTEGER
);
-- A technician's live keys have distinct names; revoked ones keep theirs for the record.
CREATE UNIQUE INDEX api_keys_name ON api_keys (technician_id, name) WHERE revoked_at IS NULL;

CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    technician_id  TEXT NOT NULL REFERENCES technicians (id),
    secret_hash    BLOB NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    -- The absolute end; the idle timeout is checked against last_seen_at.
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    user_agent     TEXT
);
CREATE INDEX sessions_technician ON sessions (technician_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Who did it, how they proved it, and from where.
ALTER TABLE audit_log ADD COLUMN actor_kind TEXT NOT NULL DEFAULT 'technician';
ALTER TABLE audit_log ADD COLUMN actor_id TEXT;
ALTER TABLE audit_log ADD COLUMN via TEXT;       -- JSON ferry_proto::identity::Via
ALTER TABLE audit_log ADD COLUMN address TEXT;
UPDATE audit_log SET actor_kind = 'connector', actor_id = substr(actor, 11)
    WHERE actor LIKE 'connector:%';
UPDATE audit_log SET actor_kind = 'device', actor_id = substr(actor, 8)
    WHERE actor LIKE 'device:%';
CREATE INDEX audit_log_actor ON audit_log (actor, id);
CREATE INDEX audit_log_actor_id ON audit_log (actor_id, id);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- Access checks read columns, not JSON documents.
ALTER TABLE jobs ADD COLUMN package_id TEXT;
UPDATE jobs SET package_id = json_extract(payload, '$.package_id') WHERE kind = 'push';
CREATE INDEX jobs_package ON jobs (package_id, connector_id) WHERE package_id IS NOT NULL;
ALTER TABLE ops ADD COLUMN package_id TEXT;
UPDATE ops SET package_id = json_extract(spec, '$.package.id');
CREATE INDEX ops_package ON ops (package_id) WHERE package_id IS NOT NULL;
ALTER TABLE uploads ADD COLUMN connector_id TEXT;
UPDATE uploads SET connector_id = substr(created_by, 11) WHERE created_by LIKE 'connector:%';
CREATE INDEX uploads_package ON uploads (package_id, connector_id);

-- The queue's order: a counter bumped in the inserting transaction (a SEQUENCE on PostgreSQL),
-- instead of MAX(seq) + 1 read back from the table.
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO counters (name, value) SELECT 'job_seq', COALESCE(MAX(seq), 0) FROM jobs;

-- The admin token becomes the initial administrator's first API key, made at the next start.
DROP TABLE secrets_meta;
