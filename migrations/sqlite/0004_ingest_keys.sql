-- Ingest keys: what an encoder (OBS, ffmpeg, a hardware encoder) publishes to the RTMP ingest with.
-- The key is found by its SHA-256 and kept encrypted (AES-256-GCM, like stream keys) so the owner can copy it
-- again. `mode` is `relay` (the stream goes to the destinations as it is) or `source` (a tile in the studio).
-- Keep in step with ../postgres/0004_ingest_keys.sql.

CREATE TABLE ingest_keys (
    id           BLOB PRIMARY KEY,
    broadcast_id BLOB NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    mode         TEXT NOT NULL,
    key_sha256   BLOB NOT NULL UNIQUE,
    key_sealed   BLOB NOT NULL,
    key_nonce    BLOB NOT NULL,
    key_kid      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX ingest_keys_broadcast ON ingest_keys(broadcast_id, created_at);
