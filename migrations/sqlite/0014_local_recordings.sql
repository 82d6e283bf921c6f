-- A guest's local recording: the file their own browser recorded at full quality and uploaded (tus), beside the
-- server's recordings of the same show. Keep in step with ../postgres/0014_local_recordings.sql.

ALTER TABLE recordings ADD COLUMN local BOOLEAN NOT NULL DEFAULT FALSE;
