-- Package metadata used to list the fields an administrator set by hand (`overridden`); it now
-- says where every value came from (`sources`). Hand-set fields become `user` sources.
UPDATE packages
SET metadata = json_remove(
        json_set(
            metadata,
            '$.sources',
            json((SELECT json_group_object(value, 'user') FROM json_each(metadata, '$.overridden')))
        ),
        '$.overridden'
    )
WHERE json_type(metadata, '$.overridden') IS 'array';
