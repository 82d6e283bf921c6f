-- What runs a live broadcast's home (see gateway/src/cluster.rs): `program` (the studio's program) or `relay`
-- (an RTMP encoder's stream copied to the destinations). A node that finds a show's home lapsed takes over a
-- program; an encoder's show resumes on the node the encoder reconnects to.
-- Keep in step with ../sqlite/0009_home_kind.sql.

ALTER TABLE broadcasts ADD COLUMN home_kind TEXT NOT NULL DEFAULT 'program';
