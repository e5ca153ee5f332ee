-- Product view counts, written behind (see the PostgreSQL twin for the reasons).
CREATE TABLE product_views (
    product_id BLOB PRIMARY KEY,                      -- UUID, 16 bytes; the upsert's conflict target
    views      INTEGER NOT NULL CHECK (views >= 0),
    updated_at TEXT NOT NULL
);
-- The admin report lists the most viewed products.
CREATE INDEX product_views_by_views ON product_views (views DESC);
