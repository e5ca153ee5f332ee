-- Accounts, sessions and refresh tokens (SQLite; the PostgreSQL twin lives in ../postgres).
-- Timestamps are RFC 3339 UTC text, which sorts chronologically as text.
-- Ids are UUIDs stored as 16-byte BLOBs: compact, and UUIDv7 bytes sort by creation time.

CREATE TABLE users (
    id            BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    -- Normalised (trimmed, lower-case) by the application; UNIQUE makes a second account for
    -- one address a constraint violation (409), and its index serves login's lookup by e-mail.
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    -- Argon2id PHC string: algorithm, parameters and salt travel with the hash, so the
    -- parameters can be raised later without invalidating stored passwords.
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
-- Admin listing pages through users by id (keyset pagination): the primary key serves it.

-- One row per login. Revoking a session (logout, logout-all, password change, refresh-token
-- reuse) kills its access tokens, refresh tokens and browser cookie at once.
CREATE TABLE sessions (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The role at login; access tokens carry it too.
    role        TEXT NOT NULL CHECK (role IN ('user', 'admin')),
    -- SHA-256 of the browser cookie's secret, when the login asked for a cookie. UNIQUE gives
    -- the index that authenticates a cookie in one lookup.
    cookie_hash BLOB UNIQUE,
    created_at  TEXT NOT NULL,
    -- Absolute end of the session: refresh tokens do not extend it.
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
) STRICT;
-- logout-all and password changes revoke every session of one user.
CREATE INDEX sessions_by_user ON sessions (user_id);
-- The periodic clean-up deletes expired sessions.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Refresh tokens, one row per issued token; the token itself is never stored, only its hash.
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    -- Set when the token is exchanged for a new one. Presenting a rotated token again means it
    -- was stolen (or replayed): the whole session is revoked.
    rotated_at TEXT
) STRICT;
-- ON DELETE CASCADE from sessions looks tokens up by session.
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
