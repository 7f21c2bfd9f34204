-- Packages and their resumable uploads.

CREATE TABLE uploads (
    id               TEXT PRIMARY KEY,
    filename         TEXT NOT NULL,
    size             INTEGER NOT NULL,
    -- Bytes durably received (fsynced to the part file); the next range starts here.
    received         INTEGER NOT NULL DEFAULT 0,
    expected_sha256  TEXT,
    state            TEXT NOT NULL CHECK (state IN ('open', 'completed')),
    package_id       TEXT REFERENCES packages(id),
    created_by       TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);

CREATE TABLE packages (
    id          TEXT PRIMARY KEY,
    filename    TEXT NOT NULL,
    size        INTEGER NOT NULL,
    -- Content address of the blob: blobs/sha256/<first two hex>/<all hex>.
    sha256      TEXT NOT NULL UNIQUE,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
