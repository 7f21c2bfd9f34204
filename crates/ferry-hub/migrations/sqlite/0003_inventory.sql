-- The latest site inventory each connector reported (folders and applications with their
-- parsed SDMPackageXML), kept as the job's result document.
CREATE TABLE site_inventories (
    connector_id  TEXT PRIMARY KEY REFERENCES connectors(id),
    job_id        TEXT NOT NULL REFERENCES jobs(id),
    taken_at      INTEGER NOT NULL,
    data          TEXT NOT NULL
);
