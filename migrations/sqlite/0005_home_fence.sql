-- The newest fence token a node has claimed this broadcast's home with (see gateway/src/cluster.rs): a
-- recording row is written only under a token at least this large, so a node that lost its home while
-- frozen or cut off writes nothing when it wakes.
-- Keep in step with ../postgres/0005_home_fence.sql.

ALTER TABLE broadcasts ADD COLUMN home_fence INTEGER NOT NULL DEFAULT 0;
