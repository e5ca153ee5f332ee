-- Moving a bucket pages through its orders by id (`WHERE bucket = $1 AND id > $2 ORDER BY id
-- LIMIT 1000`): with (bucket) alone every page re-read and re-sorted the whole bucket
-- (docs/queries.md, #104). (bucket, id) serves each page as one index range, in order.
CREATE INDEX orders_by_bucket_and_id ON orders (bucket, id);
DROP INDEX orders_by_bucket;
