//! Which backends the suite runs against, and a fresh isolated set of them per test on the
//! scaled pass (a database on the shared primary, a Redis key prefix, the shared bucket).

/// Which backends the suite runs against: `OUTGROW_TEST_BACKEND=scaled` (set by scripts/test
/// for its second pass) means PostgreSQL with replicas and Redis, from the services that
/// scripts/services started; anything else means the embedded defaults.
pub fn scaled() -> bool {
    std::env::var("OUTGROW_TEST_BACKEND").is_ok_and(|backend| backend == "scaled")
}

/// The first line of every test that only makes sense on the scaled backends (several
/// instances, PostgreSQL shards, replicas, Redis). Such tests are named `scaled_only_*`:
/// `.config/nextest.toml`'s default filter leaves them out, so the embedded pass reports them as
/// skipped, and scripts/test's scaled passes select them with `--ignore-default-filter`. Run
/// any other way on the embedded backend, they fail here rather than pass without testing
/// anything.
pub fn require_scaled() {
    assert!(
        scaled(),
        "a scaled_only_ test: run it with OUTGROW_TEST_BACKEND=scaled (scripts/test does)"
    );
}

/// Whether the scaled pass uses the Redis Cluster that scripts/services started instead of its
/// single Redis: `OUTGROW_TEST_REDIS_MODE=cluster` (scripts/test's cluster pass).
pub fn redis_cluster_mode() -> bool {
    std::env::var("OUTGROW_TEST_REDIS_MODE").is_ok_and(|mode| mode == "cluster")
}

/// The setting that points a server at the shared test Redis: `OUTGROW_REDIS_URL` (the single
/// server), or `OUTGROW_REDIS_CLUSTER_URLS` (the cluster's seed nodes) in cluster mode.
pub fn shared_redis_setting() -> (String, String) {
    if redis_cluster_mode() {
        (
            "OUTGROW_REDIS_CLUSTER_URLS".into(),
            required_env("OUTGROW_TEST_REDIS_CLUSTER"),
        )
    } else {
        ("OUTGROW_REDIS_URL".into(), required_env("OUTGROW_TEST_REDIS"))
    }
}

pub fn required_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: start the services with scripts/services up"))
}

/// `postgres://…/postgres` with the database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{database}")
}

/// A fresh database on the shared primary (replicated to its replicas) and a fresh Redis key
/// prefix, so tests sharing the services never see each other's data. Redis is the shared
/// single server, or the shared cluster in cluster mode ([`redis_cluster_mode`]).
pub async fn isolated_scaled_backend() -> Vec<(String, String)> {
    use sqlx::Connection;
    let primary = required_env("OUTGROW_TEST_PG_PRIMARY");
    let replicas = required_env("OUTGROW_TEST_PG_REPLICAS");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&primary)
        .await
        .expect("connect to the test primary");
    // The primary's database and two shard databases for orders and events: every scaled
    // test runs sharded.
    let shards: Vec<String> = (0..2).map(|index| format!("{name}_s{index}")).collect();
    for database in std::iter::once(&name).chain(&shards) {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{database}\"")))
            .execute(&mut connection)
            .await
            .expect("create a test database");
    }
    let replica_urls: Vec<String> = replicas.split(',').map(|url| with_database(url, &name)).collect();
    let shard_urls: Vec<String> = shards
        .iter()
        .map(|shard| with_database(&primary, shard))
        .collect();
    vec![
        ("OUTGROW_DATABASE_URL".into(), with_database(&primary, &name)),
        ("OUTGROW_DATABASE_REPLICA_URLS".into(), replica_urls.join(",")),
        ("OUTGROW_DATABASE_SHARD_URLS".into(), shard_urls.join(",")),
        shared_redis_setting(),
        ("OUTGROW_REDIS_KEY_PREFIX".into(), format!("{name}:")),
        // Objects in the S3-compatible store (keys are UUIDs: tests never collide).
        (
            "OUTGROW_OBJECT_STORE_URL".into(),
            format!("s3://{}", required_env("OUTGROW_TEST_S3_BUCKET")),
        ),
        (
            "OUTGROW_S3_ENDPOINT".into(),
            required_env("OUTGROW_TEST_S3_ENDPOINT"),
        ),
        (
            "AWS_ACCESS_KEY_ID".into(),
            required_env("OUTGROW_TEST_S3_ACCESS_KEY_ID"),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            required_env("OUTGROW_TEST_S3_SECRET_ACCESS_KEY"),
        ),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]
}

/// [`isolated_scaled_backend`] without Redis: sessions, caches and rate limits fall back to
/// PostgreSQL and the process.
pub async fn isolated_scaled_backend_without_redis() -> Vec<(String, String)> {
    let mut backend = isolated_scaled_backend().await;
    backend.retain(|(key, _)| !key.starts_with("OUTGROW_REDIS"));
    backend
}
