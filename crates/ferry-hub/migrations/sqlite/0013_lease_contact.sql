-- A lease whose answer never reached the connector (a cut connection, a hub killed between
-- commit and reply) used to cost the job an attempt when it lapsed: network faults alone could
-- fail a job. The hub now notes whether the connector confirmed the lease (a renewal or a
-- progress report); a lapse without that is re-queued without counting, a bounded number of
-- times.
ALTER TABLE jobs ADD COLUMN lease_contacted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN silent_lapses INTEGER NOT NULL DEFAULT 0;
