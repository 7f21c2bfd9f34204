-- Helpdesk integration: logged-on users from agent inventory, the script library,
-- integrations, tasks and their callback outbox.

-- Users the agent last reported logged on (`DOMAIN\name`), as JSON on the device and one row
-- each for lookups by user and domain.
ALTER TABLE devices ADD COLUMN users TEXT NOT NULL DEFAULT '[]';
CREATE TABLE device_users (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    user       TEXT NOT NULL COLLATE NOCASE,   -- DOMAIN\name
    domain     TEXT NOT NULL COLLATE NOCASE,   -- the part before the backslash ('' if none)
    PRIMARY KEY (device_id, user)
) WITHOUT ROWID;
CREATE INDEX device_users_user ON device_users (user);
CREATE INDEX device_users_domain ON device_users (domain, user);
CREATE INDEX devices_domain ON devices (domain COLLATE NOCASE, hostname);

-- What a device does once the operation succeeded (restart | shutdown), for tasks' reboot
-- policies; NULL for nothing.
ALTER TABLE ops ADD COLUMN after_success TEXT;

CREATE TABLE scripts (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL,
    description  TEXT NOT NULL,
    content      TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    parameters   TEXT NOT NULL,                 -- JSON [ScriptParameter]
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    retired      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (name, version)
);

CREATE TABLE integrations (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    callback_prefixes  TEXT NOT NULL,           -- JSON [string]
    technician_id      TEXT REFERENCES technicians (id),
    allow_http         INTEGER NOT NULL,
    allow_private      INTEGER NOT NULL,
    ca_pem             TEXT,
    -- Signing secrets, sealed (AES-256-GCM) under the hub's key file, never in clear here.
    secret_sealed      BLOB NOT NULL,
    previous_sealed    BLOB,
    previous_until     INTEGER,
    created_at         INTEGER NOT NULL
);
CREATE INDEX integrations_technician ON integrations (technician_id);

CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,
    request_ref        TEXT NOT NULL,
    -- Idempotency: one task per (caller, key); the request's hash tells a replay from a reuse.
    idem_owner         TEXT NOT NULL,
    idem_key           TEXT NOT NULL,
    request_hash       BLOB NOT NULL,
    integration_id     TEXT REFERENCES integrations (id),
    action             TEXT NOT NULL,
    package_id         TEXT,
    script_id          TEXT,
    plan               TEXT NOT NULL,           -- JSON: the operation to start, devices resolved
    status             TEXT NOT NULL,
    reason             TEXT,
    callback_url       TEXT,
    callbacks_stopped  TEXT,                    -- why callbacks stopped; NULL while they go on
    scheduled_for      INTEGER,
    op_id              TEXT UNIQUE REFERENCES ops (id),
    seq                INTEGER NOT NULL DEFAULT 0,  -- status changes so far
    created_by         TEXT NOT NULL,
    owner_id           TEXT,                    -- the technician who created it (notifications)
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    UNIQUE (idem_owner, idem_key)
);
CREATE INDEX tasks_request ON tasks (request_ref);
CREATE INDEX tasks_created ON tasks (created_at);
CREATE INDEX tasks_scheduled ON tasks (scheduled_for) WHERE status = 'scheduled';

-- The callback outbox: one row per status change of a task with a callback URL, written in the
-- transaction that made the change. Its id is the `webhook-id`, the same on every attempt.
CREATE TABLE task_events (
    id               TEXT PRIMARY KEY,
    task_id          TEXT NOT NULL REFERENCES tasks (id),
    seq              INTEGER NOT NULL,
    status           TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    state            TEXT NOT NULL,            -- pending | delivered | failed | stopped
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    UNIQUE (task_id, seq)
);
CREATE INDEX task_events_due ON task_events (next_attempt_at) WHERE state = 'pending';

CREATE TABLE delivery_attempts (
    event_id     TEXT NOT NULL REFERENCES task_events (id),
    at           INTEGER NOT NULL,
    status_code  INTEGER,
    latency_ms   INTEGER NOT NULL,
    error        TEXT
);
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, at);

-- Per-technician notification rules, and their outbox (written with the status change).
CREATE TABLE notification_rules (
    id              TEXT PRIMARY KEY,
    technician_id   TEXT NOT NULL REFERENCES technicians (id),
    channel         TEXT NOT NULL,             -- webhook | email
    target          TEXT NOT NULL,             -- URL or address
    failures_only   INTEGER NOT NULL,
    allow_http      INTEGER NOT NULL,
    allow_private   INTEGER NOT NULL,
    secret_sealed   BLOB,                      -- webhook: its signing secret, sealed
    created_at      INTEGER NOT NULL
);
CREATE INDEX notification_rules_technician ON notification_rules (technician_id);

CREATE TABLE notifications (
    id               TEXT PRIMARY KEY,         -- the webhook-id
    rule_id          TEXT NOT NULL REFERENCES notification_rules (id) ON DELETE CASCADE,
    task_id          TEXT NOT NULL REFERENCES tasks (id),
    body             TEXT NOT NULL,            -- the CallbackEvent
    created_at       INTEGER NOT NULL,
    state            TEXT NOT NULL,            -- pending | delivered | failed
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    last_error       TEXT
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
