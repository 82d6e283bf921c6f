-- Invite tokens are stored as their SHA-256 (hex); the server hashes rows written before this at start.
ALTER TABLE invites RENAME COLUMN token TO token_sha256;
