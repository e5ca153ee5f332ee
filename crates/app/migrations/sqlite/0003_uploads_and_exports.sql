-- Uploaded files and data exports; their bytes live in the object store, not here.
CREATE TABLE uploads (
    id           BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    owner_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,                 -- decided by sniffing the bytes, never the client's claim
    size_bytes   INTEGER NOT NULL,
    width        INTEGER,
    height       INTEGER,
    public       INTEGER NOT NULL DEFAULT 0,    -- readable by anyone when 1
    status       TEXT NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    variants     TEXT NOT NULL DEFAULT '[]',    -- JSON [{width, height, bytes}] of the WebP variants
    error        TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
-- A user's uploads, newest first (and the cascade from users).
CREATE INDEX uploads_by_owner ON uploads (owner_id, id);

CREATE TABLE exports (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    format      TEXT NOT NULL CHECK (format IN ('csv', 'json')),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    size_bytes  INTEGER,
    error       TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT
) STRICT;
-- A user's exports (and the cascade from users).
CREATE INDEX exports_by_user ON exports (user_id, id);
