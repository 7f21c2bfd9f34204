-- Open uploads are capped per caller and expire when idle, not only a week after they opened:
-- each records whose it is and when it last received bytes.
ALTER TABLE uploads ADD COLUMN owner TEXT;
ALTER TABLE uploads ADD COLUMN updated_at INTEGER;
UPDATE uploads SET updated_at = created_at,
    owner = CASE WHEN connector_id IS NOT NULL THEN 'connector:' || connector_id END;
CREATE INDEX uploads_owner_open ON uploads (owner) WHERE state = 'open';
