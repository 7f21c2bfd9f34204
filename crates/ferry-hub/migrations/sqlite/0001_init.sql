-- Ferry hub schema, version 1.
-- Times are Unix milliseconds (INTEGER) so that lease and expiry comparisons are plain
-- integer comparisons inside SQLite; the API turns them into RFC 3339.
-- UUIDs are stored as their hyphenated text form so the database reads well in a shell.

CREATE TABLE secrets_meta (
    -- Hashes of admin tokens. The token itself exists only in the data dir file.
    id            TEXT PRIMARY KEY,
    purpose       TEXT NOT NULL,
    secret_hash   BLOB NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE connectors (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    secret_hash        BLOB NOT NULL,
    enabled            INTEGER NOT NULL DEFAULT 1,
    site               TEXT NOT NULL DEFAULT '{}',   -- JSON SiteSettings
    created_at         INTEGER NOT NULL,
    last_seen_at       INTEGER,
    secret_rotated_at  INTEGER
);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    -- Insertion order; leases go out oldest first.
    seq               INTEGER NOT NULL UNIQUE,
    connector_id      TEXT NOT NULL REFERENCES connectors(id),
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN
                        ('queued','leased','running','succeeded','failed','cancelled','expired')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    lease_token       TEXT,
    lease_expires_at  INTEGER,
    not_before        INTEGER,
    expires_at        INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    result            TEXT,
    error             TEXT,
    -- The lease token and outcome of the report that finished the job, so that the same
    -- report sent twice gets the same answer (idempotency) and a different one a conflict.
    final_token       TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    finished_at       INTEGER
);

-- The lease query: "oldest queued job of this connector".
CREATE INDEX jobs_queue ON jobs (connector_id, state, seq);
-- The sweeper: "which lease lapses or queued job expires next".
CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at) WHERE state IN ('leased','running');
CREATE INDEX jobs_timers ON jobs (state, expires_at, not_before) WHERE state = 'queued';

CREATE TABLE job_events (
    id        INTEGER PRIMARY KEY,
    job_id    TEXT NOT NULL REFERENCES jobs(id),
    at        INTEGER NOT NULL,
    attempt   INTEGER NOT NULL,
    state     TEXT,
    step      TEXT,
    message   TEXT,
    percent   INTEGER
);
CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT,
    detail   TEXT
);
