-- Product view counts (primary), written behind: every instance counts views in memory and
-- adds them here in one statement per flush (`view_count_flush_interval`), so a catalog read
-- never writes. A table of its own, not a column of `products`: the hot product rows that
-- orders lock for stock are never touched by a count, and a count never changes a product's
-- ETag. No foreign key: a product deleted between a view and the flush must not fail the
-- batch; reads join `products` (a count of a product that is gone is listed without a name).
CREATE TABLE product_views (
    product_id uuid PRIMARY KEY,                      -- the upsert's conflict target
    views      bigint NOT NULL CHECK (views >= 0),
    updated_at timestamptz NOT NULL
);
-- The admin report lists the most viewed products.
CREATE INDEX product_views_by_views ON product_views (views DESC);
