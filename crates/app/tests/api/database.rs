//! The database under stress and faults: an exhausted connection pool, idle connections closed
//! after `database_idle_timeout`, and readiness when the primary is gone (scaled pass: the
//! primary is reached through a proxy the test closes; the shared services stay up).

use std::time::Duration;

use futures::future::join_all;

use crate::{helpers::*, services::TcpProxy};

/// A lock that blocks every insert into `users`, taken from outside the server (SQLite: the
/// database's write lock; PostgreSQL: a table lock on the primary). Released when dropped.
struct UserInsertsHeld(DbConnection);

impl UserInsertsHeld {
    async fn take(app: &TestApp) -> Self {
        let mut held = Self(primary_connection(app).await);
        held.0
            .execute("BEGIN; LOCK TABLE users IN SHARE MODE", "BEGIN IMMEDIATE")
            .await;
        held
    }

    async fn release(mut self) {
        self.0.execute("ROLLBACK", "ROLLBACK").await;
    }
}

#[tokio::test]
async fn a_request_that_cannot_get_a_connection_in_time_answers_503_with_retry_after() {
    // One connection (SQLite: its one writer connection anyway), given up on after 500 ms.
    let app = TestApp::without_workers(&[
        ("OUTGROW_DATABASE_MAX_CONNECTIONS", "1"),
        ("OUTGROW_DATABASE_ACQUIRE_TIMEOUT", "500ms"),
    ])
    .await;
    let held = UserInsertsHeld::take(&app).await;
    // Two sign-ups: one takes the connection and waits on the lock, the other waits for the
    // connection and gives up.
    let signups = join_all(
        ["ann@example.org", "bob@example.org"].map(|email| app.register(email, PASSWORD, "Someone")),
    );
    // Held for 3 s: the second sign-up must reach the pool (after its Argon2id hash, slow on a
    // loaded machine) and give up there (500 ms) well before the lock lets the first one go.
    let release = async {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        held.release().await;
    };
    let (responses, ()) = tokio::join!(signups, release);
    let mut statuses = Vec::new();
    for response in responses {
        statuses.push(response.status().as_u16());
        if response.status() == 503 {
            assert_header(&response, "retry-after", Some("1"));
            let problem = assert_problem(response, 503).await;
            assert_eq!(
                problem["detail"],
                "a backend is temporarily unavailable; retry shortly"
            );
        }
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [202, 503],
        "one waited for the lock, the other for the pool"
    );
    // And it was the pool that refused, not the lock.
    app.wait_for_log(|event| {
        event["message"] == "backend unavailable"
            && event["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("pool timed out"))
    })
    .await;
}

/// Open connections of the server's pool that idles out: the SQLite reader pool, or its
/// sessions on the PostgreSQL primary.
async fn database_connections(app: &TestApp) -> usize {
    match backend_setting(app, "OUTGROW_DATABASE_URL") {
        Some(url) => {
            use sqlx::Connection;
            let database = url.rsplit('/').next().expect("database").to_owned();
            let admin = with_database(url, "postgres");
            let mut connection = sqlx::PgConnection::connect(&admin).await.expect("connect");
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'outgrow'",
            )
            .bind(database)
            .fetch_one(&mut connection)
            .await
            .expect("count");
            usize::try_from(count).unwrap_or(0)
        }
        None => {
            // The reader pool (the one writer connection never idles out); /metrics reads
            // the pool before it touches the database.
            let metrics = app.metrics().await;
            ["idle", "in_use"]
                .iter()
                .filter_map(|state| {
                    metric_value(
                        &metrics,
                        &format!(r#"db_pool_connections{{pool="sqlite-reader",state="{state}"}}"#),
                    )
                })
                .sum::<f64>() as usize
        }
    }
}

#[tokio::test]
async fn idle_database_connections_are_closed_after_the_idle_timeout() {
    // No workers, shard-map refresh or replica probe to keep a connection busy.
    let app = TestApp::without_workers(&[
        ("OUTGROW_DATABASE_IDLE_TIMEOUT", "1s"),
        ("OUTGROW_SHARD_MAP_REFRESH", "1h"),
        // The replica prober reads the primary's WAL position every interval.
        ("OUTGROW_REPLICA_PROBE_INTERVAL", "1h"),
        ("OUTGROW_CACHE_USER_TTL", "1ms"),
    ])
    .await;
    let user = app.signed_in("ann@example.org").await;
    // Concurrent reads open reader connections (SQLite: beside the one writer).
    let reads = join_all((0..8).map(|_| app.get_with_token("/api/v1/me", &user.access_token))).await;
    assert!(reads.iter().all(|response| response.status() == 200));
    let busy = database_connections(&app).await;
    assert!(busy > 0, "{busy} connection(s) after the reads");

    let (within, every) = (Duration::from_secs(10), Duration::from_millis(200));
    poll_until(
        "the idle connections to close (idle timeout 1 s)",
        within,
        every,
        async || match database_connections(&app).await {
            0 => Ok(()),
            open => Err(format!("{open} connection(s) still open after the reads")),
        },
    )
    .await;
}

#[tokio::test]
async fn scaled_only_readyz_answers_503_when_the_primary_is_gone_and_healthz_stays_200() {
    require_scaled();
    let mut backend = isolated_scaled_backend().await;
    let (_, primary) = backend
        .iter_mut()
        .find(|(key, _)| key == "OUTGROW_DATABASE_URL")
        .expect("primary");
    // postgres://user@host:port/database, reached through a proxy this test closes.
    let (head, rest) = primary.split_once('@').expect("user@");
    let (address, database) = rest.split_once('/').expect("host:port/database");
    let proxy = TcpProxy::start(address.parse().expect("host:port")).await;
    *primary = format!("{head}@127.0.0.1:{}/{database}", proxy.port);
    let app = TestApp::on_backend(&backend, &[("OUTGROW_DATABASE_ACQUIRE_TIMEOUT", "1s")]).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    proxy.close();
    let (within, every) = (Duration::from_secs(10), Duration::from_millis(100));
    let unready = poll_until(
        "/readyz to answer 503 without the primary",
        within,
        every,
        async || {
            let response = app.get("/readyz").await;
            match response.status().as_u16() {
                503 => Ok(response),
                status => Err(format!("it answers {status}")),
            }
        },
    )
    .await;
    assert_header(&unready, "retry-after", Some("1"));
    let problem = assert_problem(unready, 503).await;
    assert_eq!(problem["detail"], "the database is unreachable");
    // Alive, just not ready: no restart wanted.
    assert_eq!(app.get("/healthz").await.status(), 200);
}
