-- Before typed contracts, PATCH merged any object into a package's `detection`, so a stored one
-- may hold two kinds at once (`{"msi_product_code": …, "script": {…}}`), none (`{}`), or a script
-- without its text. Such a value is not a detection method ConfigMgr could use; it is cleared
-- (the package then proposes none, and a push names the field) rather than breaking every read
-- of the package list. (`IS`, not `=`: a missing key is NULL, and NOT NULL would keep the row.)
UPDATE packages
SET metadata = json_set(metadata, '$.detection', json('null'))
WHERE json_type(metadata, '$.detection') IS NOT NULL
  AND json_type(metadata, '$.detection') != 'null'
  AND NOT (
        json_type(metadata, '$.detection') IS 'object'
    AND (SELECT count(*) FROM json_each(metadata, '$.detection')) = 1
    AND (
            json_type(metadata, '$.detection.msi_product_code') IS 'text'
         OR (    json_type(metadata, '$.detection.script') IS 'object'
             AND json_type(metadata, '$.detection.script.text') IS 'text'
             AND coalesce(lower(json_extract(metadata, '$.detection.script.language')), '')
                 IN ('powershell', 'vbscript', 'javascript'))
        )
  );
