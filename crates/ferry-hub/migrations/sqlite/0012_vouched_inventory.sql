-- Rule collections used to match whatever a device last reported about itself, so a device
-- could rename itself into `SECRET-*` and receive that collection's deployments. They now match
-- the rule-matched fields as the hub vouches for them: as enrolled (the holder of an enrolment
-- secret vouched for the device) or as an administrator approved a reported change.
ALTER TABLE devices ADD COLUMN vouched TEXT;
UPDATE devices SET vouched = json_object(
    'hostname', hostname, 'os_name', os_name, 'os_version', os_version,
    'domain', domain, 'arch', arch);
