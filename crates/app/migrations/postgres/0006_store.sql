-- The store: the catalog, orders, events, the shard map and analytics roll-ups.
--
-- Every database Outgrow uses (the primary and each shard) gets this whole schema, and each
-- table is used where its data lives: products, the shard map, order intents and roll-ups on
-- the primary; orders, order items, idempotency keys and events on the shard that owns the
-- user's bucket. With no shard configured the primary is the only shard, so one migration
-- set serves every layout (see docs/sharding.md).

-- Catalog (primary). Stock lives here, beside the products, so a reservation is one
-- conditional UPDATE per line that can never drive stock below zero (the CHECK is the last
-- line of defence, the `stock >= $n` guard the first).
CREATE TABLE products (
    id          uuid PRIMARY KEY,                        -- UUIDv7: keyset pages in creation order
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_minor bigint NOT NULL CHECK (price_minor >= 0), -- minor units (cents) of `currency`
    currency    text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    stock       bigint NOT NULL CHECK (stock >= 0),
    image_id    uuid REFERENCES uploads (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    -- PostgreSQL's own full-text search; 'simple' = no language-specific stemming, so product
    -- names in any language match token for token.
    search      tsvector GENERATED ALWAYS AS (to_tsvector('simple', name || ' ' || description)) STORED
);
CREATE INDEX products_search ON products USING gin (search);
-- Price-range filters walk this index in (price, id) order.
CREATE INDEX products_by_price ON products (price_minor, id);
CREATE INDEX products_by_image ON products (image_id) WHERE image_id IS NOT NULL;

-- One counter bumped by every catalog write: cached listing pages are keyed by it, so a write
-- retires every cached page at once without enumerating them.
CREATE TABLE catalog_version (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint NOT NULL
);
INSERT INTO catalog_version (singleton, version) VALUES (true, 0);

-- The shard map (primary): 1,024 virtual buckets, each owned by one shard (an index into
-- OUTGROW_DATABASE_SHARD_URLS). Filled on first use; changed only by `outgrow shards move`.
CREATE TABLE shard_buckets (
    bucket integer PRIMARY KEY CHECK (bucket BETWEEN 0 AND 1023),
    shard  integer NOT NULL CHECK (shard >= 0),
    -- While a bucket moves, its writes are refused with 503 + Retry-After.
    moving boolean NOT NULL DEFAULT false
);

-- Stock reserved for an order (primary): the hinge of the order transaction across the
-- primary/shard boundary. `reserved` → `confirmed` (the order exists on its shard) or
-- `released` (it never will; stock given back); `confirmed` → `cancelled` (stock given back).
CREATE TABLE order_intents (
    order_id   uuid PRIMARY KEY,
    user_id    uuid NOT NULL,
    items      jsonb NOT NULL,                            -- [{product_id, quantity}]
    state      text NOT NULL CHECK (state IN ('reserved', 'confirmed', 'released', 'cancelled')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
-- The reconciler looks for reservations left behind by a crash.
CREATE INDEX order_intents_reserved ON order_intents (created_at) WHERE state = 'reserved';

-- Orders (shards).
CREATE TABLE orders (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL,
    bucket       integer NOT NULL,                        -- the user's bucket: moves copy by it
    -- `void` is a tombstone: the reconciler wrote it to decide that a reservation's order
    -- never happened; the primary key then refuses a late insert of the real one.
    status       text NOT NULL CHECK (status IN ('placed', 'cancelled', 'void')),
    total_minor  bigint NOT NULL CHECK (total_minor >= 0),
    currency     text NOT NULL,
    created_at   timestamptz NOT NULL,
    cancelled_at timestamptz
);
-- A user's orders, newest first, by keyset.
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_by_bucket ON orders (bucket);
-- The hourly roll-up reads recent orders.
CREATE INDEX orders_by_created ON orders (created_at);

CREATE TABLE order_items (
    order_id         uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id       uuid NOT NULL,
    name             text NOT NULL,                       -- as sold: the catalog may change later
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, product_id)
);

-- Idempotency-Key records (shards, beside the orders they answer for).
CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL,
    key          text NOT NULL,
    bucket       integer NOT NULL,
    request_hash bytea NOT NULL,                          -- SHA-256 of the request body
    order_id     uuid NOT NULL,                           -- the order this key creates
    status_code  integer,                                 -- NULL while the first request runs
    response     jsonb,
    locked_until timestamptz NOT NULL,                    -- a crashed first request's claim lapses
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_by_bucket ON idempotency_keys (bucket);
CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at);

-- Events (shards): append-only, partitioned by day (UTC). Daily partitions are created ahead by the
-- `events.partitions` job; the default partition only catches what no daily one covers.
CREATE TABLE events (
    user_id     uuid NOT NULL,
    type        text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    properties  jsonb NOT NULL
) PARTITION BY RANGE (occurred_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_by_time ON events (occurred_at);
DO $$
DECLARE
    day date;
BEGIN
    FOR offset_days IN -7..7 LOOP
        day := current_date + offset_days;
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            'events_' || to_char(day, 'YYYYMMDD'), day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
    END LOOP;
END $$;

-- Analytics roll-ups (primary), recomputed for recent hours by the `analytics.rollup` job.
CREATE TABLE analytics_event_counts (
    hour       timestamptz NOT NULL,
    event_type text NOT NULL,
    count      bigint NOT NULL,
    PRIMARY KEY (hour, event_type)
);
CREATE TABLE analytics_product_sales (
    hour       timestamptz NOT NULL,
    product_id uuid NOT NULL,
    orders     bigint NOT NULL,
    units      bigint NOT NULL,
    PRIMARY KEY (hour, product_id)
);
