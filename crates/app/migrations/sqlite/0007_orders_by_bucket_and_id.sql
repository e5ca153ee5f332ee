-- Bucket moves page through a bucket's orders by id (see the PostgreSQL twin).
CREATE INDEX orders_by_bucket_and_id ON orders (bucket, id);
DROP INDEX orders_by_bucket;
