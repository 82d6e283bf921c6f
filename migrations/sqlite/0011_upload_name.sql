-- The file name an upload came with (a clip is listed under it in the studio); empty when none was sent.
-- Keep in step with ../postgres/0011_upload_name.sql.

ALTER TABLE uploads ADD COLUMN name TEXT NOT NULL DEFAULT '';
