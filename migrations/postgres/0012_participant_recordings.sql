-- A participant's own recording (their media as published, beside the program's recording of the same show):
-- whose it is. Both are NULL for the program's recording. Keep in step with ../sqlite/0012_participant_recordings.sql.

ALTER TABLE recordings ADD COLUMN participant_id TEXT;
ALTER TABLE recordings ADD COLUMN participant_name TEXT;
