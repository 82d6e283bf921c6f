-- The node whose studio a participant is in (`cluster.node_id`; empty for rows from before several nodes):
-- a node that starts marks only its own participants as left, and a studio joining on one node lists the people
-- in the same room on the others (see gateway/src/signaling/mod.rs, `Hub::roster`).
-- Keep in step with ../sqlite/0006_participant_node.sql.

ALTER TABLE participants ADD COLUMN node TEXT NOT NULL DEFAULT '';
