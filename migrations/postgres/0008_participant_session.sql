-- The session behind a participant's seat (the user session or the guest session's id): a studio that
-- reconnects to another node (its own died, or a load balancer chose another) takes its seat over there, keeping
-- its participant id, its place on stage and its tiles (see gateway/src/signaling/session.rs, `join`).
-- Keep in step with ../sqlite/0008_participant_session.sql.

ALTER TABLE participants ADD COLUMN session TEXT NOT NULL DEFAULT '';
