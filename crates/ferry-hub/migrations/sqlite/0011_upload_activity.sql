-- Open uploads are capped per caller and expire when idle, not only a week after they opened:
-- each records whose it is and when it last received bytes.
ALTER TABLE uploads ADD COLUMN owner TEXT;
ALTER TABLE uploads ADD COLUMN updated_at INTEGER;
-- Activity before this version is unknown: count open uploads as active now, so that the
-- first upload opened after the upgrade does not expire one that was in use.
UPDATE uploads SET updated_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000,
    owner = CASE WHEN connector_id IS NOT NULL THEN 'connector:' || connector_id END;
CREATE INDEX uploads_owner_open ON uploads (owner) WHERE state = 'open';
