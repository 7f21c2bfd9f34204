-- Endpoint agents: enrolment secrets, devices, collections, deployments and client operations.

CREATE TABLE enrollment_secrets (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    max_uses     INTEGER,
    uses         INTEGER NOT NULL DEFAULT 0,
    revoked      INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    id             TEXT PRIMARY KEY,
    token_hash     BLOB NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    hostname       TEXT NOT NULL,
    os_name        TEXT NOT NULL,
    os_version     TEXT NOT NULL,
    domain         TEXT,
    arch           TEXT NOT NULL,
    agent_version  TEXT NOT NULL,
    ips            TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    enrolled_at    INTEGER NOT NULL,
    enrolled_with  TEXT,                         -- the enrolment secret's id
    last_seen      INTEGER,
    remote_addr    TEXT
);
CREATE INDEX devices_hostname ON devices (hostname);

CREATE TABLE collections (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    rule        TEXT,                            -- JSON CollectionRule; NULL for a static collection
    created_at  INTEGER NOT NULL
);

CREATE TABLE collection_members (
    collection_id  TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    device_id      TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    PRIMARY KEY (collection_id, device_id)
) WITHOUT ROWID;
CREATE INDEX collection_members_device ON collection_members (device_id);

CREATE TABLE deployments (
    id             TEXT PRIMARY KEY,
    package_id     TEXT NOT NULL REFERENCES packages (id),
    collection_id  TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    action         TEXT NOT NULL,
    detection      TEXT NOT NULL,                -- JSON Detection
    created_at     INTEGER NOT NULL
);
CREATE INDEX deployments_collection ON deployments (collection_id);

CREATE TABLE ops (
    id             TEXT PRIMARY KEY,
    spec           TEXT NOT NULL,                -- JSON OpSpec (packages resolved)
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    timeout_secs   INTEGER NOT NULL,
    output_limit   INTEGER NOT NULL,
    on_interrupt   TEXT NOT NULL,
    cancelled      INTEGER NOT NULL DEFAULT 0
);

-- One row per (operation, device): the durable record of that device's run.
CREATE TABLE op_targets (
    op_id            TEXT NOT NULL REFERENCES ops (id),
    device_id        TEXT NOT NULL REFERENCES devices (id),
    state            TEXT NOT NULL,
    -- delivered/running: when the hub gives up waiting for a result (Unix ms).
    deadline         INTEGER,
    exit_code        INTEGER,
    output           TEXT,
    error            TEXT,
    reboot_required  INTEGER NOT NULL DEFAULT 0,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (op_id, device_id)
) WITHOUT ROWID;
CREATE INDEX op_targets_state ON op_targets (op_id, state);
-- What a device still has to do, read at every session start.
CREATE INDEX op_targets_open ON op_targets (device_id)
    WHERE state IN ('pending', 'offline', 'delivered', 'running');
CREATE INDEX op_targets_deadline ON op_targets (deadline) WHERE deadline IS NOT NULL;
