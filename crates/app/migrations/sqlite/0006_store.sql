-- The store: the catalog, orders, events, the shard map and analytics roll-ups (the
-- PostgreSQL twin in ../postgres explains the layout). The embedded database is the only
-- shard, so everything lives in this one file.

CREATE TABLE products (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3 AND currency = upper(currency)),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    image_id    BLOB REFERENCES uploads (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX products_by_price ON products (price_minor, id);
CREATE INDEX products_by_image ON products (image_id) WHERE image_id IS NOT NULL;

-- SQLite's own full-text search (FTS5), kept in step with the products by triggers.
CREATE VIRTUAL TABLE products_fts USING fts5(name, description, content='products', content_rowid='rowid');
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description) VALUES ('delete', old.rowid, old.name, old.description);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, description) VALUES ('delete', old.rowid, old.name, old.description);
    INSERT INTO products_fts (rowid, name, description) VALUES (new.rowid, new.name, new.description);
END;

CREATE TABLE catalog_version (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    version   INTEGER NOT NULL
) STRICT;
INSERT INTO catalog_version (singleton, version) VALUES (1, 0);

CREATE TABLE shard_buckets (
    bucket INTEGER PRIMARY KEY CHECK (bucket BETWEEN 0 AND 1023),
    shard  INTEGER NOT NULL CHECK (shard >= 0),
    moving INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE order_intents (
    order_id   BLOB PRIMARY KEY NOT NULL CHECK (length(order_id) = 16),
    user_id    BLOB NOT NULL,
    items      TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('reserved', 'confirmed', 'released', 'cancelled')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX order_intents_reserved ON order_intents (created_at) WHERE state = 'reserved';

CREATE TABLE orders (
    id           BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id      BLOB NOT NULL,
    bucket       INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('placed', 'cancelled', 'void')),
    total_minor  INTEGER NOT NULL CHECK (total_minor >= 0),
    currency     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    cancelled_at TEXT
) STRICT;
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_by_bucket ON orders (bucket);
CREATE INDEX orders_by_created ON orders (created_at);

CREATE TABLE order_items (
    order_id         BLOB NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id       BLOB NOT NULL,
    name             TEXT NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, product_id)
) STRICT;

CREATE TABLE idempotency_keys (
    user_id      BLOB NOT NULL,
    key          TEXT NOT NULL,
    bucket       INTEGER NOT NULL,
    request_hash BLOB NOT NULL,
    order_id     BLOB NOT NULL,
    status_code  INTEGER,
    response     TEXT,
    locked_until TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;
CREATE INDEX idempotency_keys_by_bucket ON idempotency_keys (bucket);
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);

CREATE TABLE events (
    user_id     BLOB NOT NULL,
    type        TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    properties  TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_time ON events (occurred_at);

CREATE TABLE analytics_event_counts (
    hour       TEXT NOT NULL,
    event_type TEXT NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (hour, event_type)
) STRICT;
CREATE TABLE analytics_product_sales (
    hour       TEXT NOT NULL,
    product_id BLOB NOT NULL,
    orders     INTEGER NOT NULL,
    units      INTEGER NOT NULL,
    PRIMARY KEY (hour, product_id)
) STRICT;
