-- ferry:foreign-keys-off (the table is rebuilt; children keep pointing at `packages`)
--
-- Uploads were deduplicated by content alone: a connector uploading the exact bytes of an
-- administrator's package got that package (its edited metadata, and the right to relabel
-- it). Now the blob is shared but the record is not: each owner — the technicians' shared
-- library, or one connector's imports — has its own package for the same bytes. SQLite cannot
-- drop the old UNIQUE (sha256) in place, so the table is rebuilt.
CREATE TABLE packages_new (
    id          TEXT PRIMARY KEY,
    filename    TEXT NOT NULL,
    size        INTEGER NOT NULL,
    -- Content address of the blob: blobs/sha256/<first two hex>/<all hex>.
    sha256      TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    -- Whose record this is: 'technicians', or 'connector:<id>' for a connector's imports.
    owner       TEXT NOT NULL DEFAULT 'technicians'
);
INSERT INTO packages_new (id, filename, size, sha256, metadata, created_by, created_at, owner)
SELECT p.id, p.filename, p.size, p.sha256, p.metadata, p.created_by, p.created_at,
       -- The first uploader owns it; later uploaders of the same bytes lose the access
       -- they got by deduplication (access now follows the owner, not the upload row).
       COALESCE((SELECT CASE WHEN u.connector_id IS NULL THEN 'technicians'
                             ELSE 'connector:' || u.connector_id END
                 FROM uploads u WHERE u.package_id = p.id
                 ORDER BY u.created_at LIMIT 1), 'technicians')
FROM packages p;
DROP TABLE packages;
ALTER TABLE packages_new RENAME TO packages;
CREATE UNIQUE INDEX packages_owner_sha256 ON packages (owner, sha256);
CREATE INDEX packages_sha256 ON packages (sha256);
