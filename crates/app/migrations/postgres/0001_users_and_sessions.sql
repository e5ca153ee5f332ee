-- Accounts, sessions and refresh tokens (PostgreSQL; the SQLite twin lives in ../sqlite).

CREATE TABLE users (
    -- UUIDv7: sorts by creation, so keyset pagination on the primary key is chronological.
    id            uuid PRIMARY KEY,
    -- Normalised (trimmed, lower-case) by the application; the UNIQUE index serves login's
    -- lookup by e-mail and turns a second account for one address into a 409.
    email         text NOT NULL UNIQUE,
    name          text NOT NULL,
    -- Argon2id PHC string (algorithm, parameters and salt travel with the hash).
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- Admin listing pages by id (`WHERE id > $1 ORDER BY id LIMIT n`): the primary key serves it.

-- One row per login (used when sessions are not kept in Redis).
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('user', 'admin')),
    -- SHA-256 of the browser cookie; UNIQUE gives the index a cookie lookup needs.
    cookie_hash bytea UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
-- logout-all and password changes revoke the sessions of one user, and deleting a user
-- cascades to their sessions: both find them by user_id.
CREATE INDEX sessions_by_user ON sessions (user_id);
-- The periodic clean-up deletes expired sessions.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the token; the token itself is never stored.
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    -- Set when exchanged; presenting the token again revokes the session.
    rotated_at timestamptz
);
-- ON DELETE CASCADE from sessions finds tokens by session.
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
