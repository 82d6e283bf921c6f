-- Backyard schema, SQLite dialect. Keep in step with ../postgres/0001_init.sql (same tables and columns).
-- UUIDs are 16-byte BLOBs, timestamps RFC 3339 TEXT, JSON TEXT, booleans INTEGER 0/1 (sqlx's encodings).

CREATE TABLE users (
    id                BLOB PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    password          TEXT NOT NULL,
    name              TEXT NOT NULL,
    avatar            TEXT,
    subscription_tier TEXT NOT NULL DEFAULT 'free',
    is_admin          INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE broadcasts (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'scheduled',
    settings    TEXT NOT NULL DEFAULT '{}',
    scene       TEXT NOT NULL DEFAULT '{}',
    start_time  TEXT,
    end_time    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX broadcasts_user ON broadcasts(user_id, created_at DESC);

CREATE TABLE destinations (
    id               BLOB PRIMARY KEY,
    broadcast_id     BLOB NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    platform         TEXT NOT NULL,
    name             TEXT NOT NULL,
    rtmp_url         TEXT NOT NULL,
    stream_key       BLOB NOT NULL,
    stream_key_nonce BLOB NOT NULL,
    stream_key_kid   TEXT NOT NULL,
    enabled          INTEGER NOT NULL DEFAULT 1,
    status           TEXT NOT NULL DEFAULT 'idle',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX destinations_broadcast ON destinations(broadcast_id, created_at);

CREATE TABLE participants (
    id            BLOB PRIMARY KEY,
    broadcast_id  BLOB NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id       BLOB REFERENCES users(id) ON DELETE SET NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    audio_enabled INTEGER NOT NULL DEFAULT 1,
    video_enabled INTEGER NOT NULL DEFAULT 1,
    joined_at     TEXT NOT NULL,
    left_at       TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX participants_broadcast ON participants(broadcast_id, joined_at);

CREATE TABLE recordings (
    id           BLOB PRIMARY KEY,
    broadcast_id BLOB NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    duration     REAL NOT NULL DEFAULT 0,
    file_size    INTEGER NOT NULL DEFAULT 0,
    url          TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'recording',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX recordings_user ON recordings(user_id, created_at DESC);

-- Refresh tokens (embedded mode; Redis holds them when configured). One family per sign-in; a reused
-- token revokes its whole family.
CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY,
    family_id   BLOB NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

-- A sign-in session (= refresh family). Access tokens carry its id; revoking it ends the session.
CREATE TABLE sessions (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE invites (
    id           BLOB PRIMARY KEY,
    broadcast_id BLOB NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    token        TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_by   BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX invites_broadcast ON invites(broadcast_id, created_at);

-- A guest (or co-host) who redeemed an invite: scoped to one broadcast, no account.
CREATE TABLE guest_sessions (
    id           BLOB PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    invite_id    BLOB NOT NULL REFERENCES invites(id) ON DELETE CASCADE,
    broadcast_id BLOB NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_at   TEXT,
    created_at   TEXT NOT NULL
);

CREATE TABLE uploads (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX uploads_sha ON uploads(sha256);
