-- Uploaded files and data exports; their bytes live in the object store, not here.
CREATE TABLE uploads (
    id           uuid PRIMARY KEY,
    owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type text NOT NULL,                 -- decided by sniffing the bytes, never the client's claim
    size_bytes   bigint NOT NULL,
    width        bigint,
    height       bigint,
    public       boolean NOT NULL DEFAULT false,
    status       text NOT NULL CHECK (status IN ('processing', 'ready', 'failed')),
    variants     jsonb NOT NULL DEFAULT '[]',   -- [{width, height, bytes}] of the WebP variants
    error        text,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
-- A user's uploads, newest first (and the cascade from users).
CREATE INDEX uploads_by_owner ON uploads (owner_id, id);

CREATE TABLE exports (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    format      text NOT NULL CHECK (format IN ('csv', 'json')),
    status      text NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    size_bytes  bigint,
    error       text,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz
);
-- A user's exports (and the cascade from users).
CREATE INDEX exports_by_user ON exports (user_id, id);
