-- The node that writes a recording's file (`cluster.node_id`; empty for rows from before several nodes): a node
-- that starts again finalises only the parts it was writing, and a node that takes a show over finalises those
-- its earlier home left when their files are in its own recordings folder (see gateway/src/program/mod.rs).
-- Keep in step with ../sqlite/0007_recording_node.sql.

ALTER TABLE recordings ADD COLUMN node TEXT NOT NULL DEFAULT '';
