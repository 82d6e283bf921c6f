-- Backyard schema, PostgreSQL dialect. Keep in step with ../sqlite/0001_init.sql (same tables and columns).
-- Native uuid, timestamptz, jsonb, boolean and bytea types.

CREATE TABLE users (
    id                UUID PRIMARY KEY,
    email             TEXT NOT NULL UNIQUE,
    password          TEXT NOT NULL,
    name              TEXT NOT NULL,
    avatar            TEXT,
    subscription_tier TEXT NOT NULL DEFAULT 'free',
    is_admin          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE broadcasts (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL DEFAULT 'scheduled',
    settings    JSONB NOT NULL DEFAULT '{}',
    scene       JSONB NOT NULL DEFAULT '{}',
    start_time  TIMESTAMPTZ,
    end_time    TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX broadcasts_user ON broadcasts(user_id, created_at DESC);

CREATE TABLE destinations (
    id               UUID PRIMARY KEY,
    broadcast_id     UUID NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    platform         TEXT NOT NULL,
    name             TEXT NOT NULL,
    rtmp_url         TEXT NOT NULL,
    stream_key       BYTEA NOT NULL,
    stream_key_nonce BYTEA NOT NULL,
    stream_key_kid   TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    status           TEXT NOT NULL DEFAULT 'idle',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX destinations_broadcast ON destinations(broadcast_id, created_at);

CREATE TABLE participants (
    id            UUID PRIMARY KEY,
    broadcast_id  UUID NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id       UUID REFERENCES users(id) ON DELETE SET NULL,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    audio_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    video_enabled BOOLEAN NOT NULL DEFAULT TRUE,
    joined_at     TIMESTAMPTZ NOT NULL,
    left_at       TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX participants_broadcast ON participants(broadcast_id, joined_at);

CREATE TABLE recordings (
    id           UUID PRIMARY KEY,
    broadcast_id UUID NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id      UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    duration     DOUBLE PRECISION NOT NULL DEFAULT 0,
    file_size    BIGINT NOT NULL DEFAULT 0,
    url          TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'recording',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX recordings_user ON recordings(user_id, created_at DESC);

-- Refresh tokens (embedded mode; Redis holds them when configured). One family per sign-in; a reused
-- token revokes its whole family.
CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    family_id   UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);

-- A sign-in session (= refresh family). Access tokens carry its id; revoking it ends the session.
CREATE TABLE sessions (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    revoked_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE invites (
    id           UUID PRIMARY KEY,
    broadcast_id UUID NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    token        TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    created_by   UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX invites_broadcast ON invites(broadcast_id, created_at);

-- A guest (or co-host) who redeemed an invite: scoped to one broadcast, no account.
CREATE TABLE guest_sessions (
    id           UUID PRIMARY KEY,
    token_hash   BYTEA NOT NULL UNIQUE,
    invite_id    UUID NOT NULL REFERENCES invites(id) ON DELETE CASCADE,
    broadcast_id UUID NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE uploads (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX uploads_sha ON uploads(sha256);
