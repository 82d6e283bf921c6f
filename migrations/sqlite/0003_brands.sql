-- Brand kits: an account's saved looks (name, brand colour, background colour, logo), reused across broadcasts.
-- Keep in step with ../postgres/0003_brands.sql.

CREATE TABLE brands (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    color      TEXT NOT NULL,
    background TEXT,
    logo_url   TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX brands_user ON brands(user_id, created_at);
