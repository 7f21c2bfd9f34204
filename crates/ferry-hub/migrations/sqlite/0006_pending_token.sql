-- A token a device asked for but has not used yet: the old one stays valid until the new one
-- is first presented, so a lost answer to the rotation cannot lock the device out.
ALTER TABLE devices ADD COLUMN pending_token_hash BLOB;
