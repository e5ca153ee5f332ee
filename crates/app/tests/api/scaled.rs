//! Scale-out behaviour that only exists on the scaled backends: several stateless instances
//! sharing PostgreSQL and Redis, read-your-writes over lagging replicas, and faults (a stopped
//! replica, a stopped Redis). Named `scaled_only_*`: skipped on the embedded pass (see
//! [`crate::helpers::require_scaled`]).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    helpers::*,
    services::{PgCluster, RedisServer},
};

#[tokio::test]
async fn scaled_only_a_session_made_on_one_instance_works_and_dies_on_another() {
    require_scaled();
    let a = TestApp::spawn().await;
    let b = TestApp::builder().backend(&a.backend).spawn().await;
    assert_eq!(a.register("ann@example.org", PASSWORD, "Ann").await.status(), 202);

    // Log in on B; use the token and the cookie on A.
    let bearer = b.sign_in("ann@example.org", PASSWORD).await;
    let (cookie, _) = b.cookie_login("ann@example.org", PASSWORD).await;
    assert_eq!(
        a.get_status_with_token("/api/v1/me", &bearer.access_token).await,
        200
    );
    let with_cookie = a.get_with_header("/api/v1/me", "cookie", &cookie).await;
    assert_eq!(with_cookie.status(), 200);
    // A refresh token from B is exchanged on A.
    let refreshed = a.refresh(&bearer.refresh_token).await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.expect("json");
    let token = refreshed["access_token"].as_str().expect("token").to_owned();

    // Log out everywhere on B: the cookie is dead on A at once, the token as soon as the
    // invalidation message arrives (tests/api/revocation.rs measures the bound).
    let out = b.post_with_token("/api/v1/auth/logout-all", &token).await;
    assert_eq!(out.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(1);
    while a.get_status_with_token("/api/v1/me", &token).await == 200 {
        assert!(Instant::now() < deadline, "A still accepts the token after 1 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.get_problem_with_token("/api/v1/me", &token, 401).await;
    let with_cookie = a.get_with_header("/api/v1/me", "cookie", &cookie).await;
    assert_problem(with_cookie, 401).await;
}

#[tokio::test]
async fn scaled_only_the_shared_rate_limit_refuses_the_n_plus_first_request_across_instances() {
    require_scaled();
    let limit = [("OUTGROW_RATE_LIMIT_DEFAULT", "6/1m")];
    let (a, b) = TestApp::pair(&limit).await;
    let user = a.signed_in("ann@example.org").await;

    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for request in 0..7 {
        let instance = if request % 2 == 0 { &a } else { &b };
        let response = instance.get_with_token("/api/v1/me", &user.access_token).await;
        remaining.push(header(&response, "ratelimit").unwrap_or_default());
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429], "{remaining:?}");
    assert!(remaining[0].starts_with("\"default\";r=5;"), "{remaining:?}");
    assert!(remaining[5].starts_with("\"default\";r=0;"), "{remaining:?}");
}

#[tokio::test]
async fn scaled_only_a_write_through_one_instance_reaches_the_other_instances_cache_at_once() {
    require_scaled();
    // A long local TTL: only the invalidation bus can make B see the change quickly.
    let settings = [
        ("OUTGROW_CACHE_LOCAL_TTL", "60s"),
        ("OUTGROW_CACHE_USER_TTL", "60s"),
    ];
    let (a, b) = TestApp::pair(&settings).await;
    let user = a.signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    for _ in 0..3 {
        assert_eq!(b.get_status_with_token(&path, &user.access_token).await, 200);
    }
    assert!(
        metric_value(
            &b.metrics().await,
            r#"cache_requests_total{cache="users",result="hit"}"#
        ) >= Some(2.0)
    );

    let patched = a
        .patch_me(&user.access_token, json!({"name": "Renamed on A"}))
        .await;
    assert_eq!(patched.status(), 200);
    let written = Instant::now();

    let mut seen = None;
    while written.elapsed() < Duration::from_secs(2) {
        let body: Value = b.get_json_with_token(&path, &user.access_token).await;
        if body["name"] == "Renamed on A" {
            seen = Some(written.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = seen.expect("instance B kept serving the old name from its cache");
    assert!(
        seen < Duration::from_millis(500),
        "B saw the write after {seen:?}"
    );
}

/// A server on a PostgreSQL cluster of the test's own with two replicas, which it probes every
/// 200 ms and leaves out beyond 1 s of lag; a caller's own writes are read from the primary
/// for `window`. Every read reaches the database (a 1 ms user cache), so routing is what is
/// tested. Returns the cluster, the name of the server's database and the server.
async fn app_on_own_replicas(window: &str) -> (PgCluster, String, TestApp) {
    let cluster = PgCluster::up(2);
    let (database, backend) = cluster.backend(shared_redis_setting()).await;
    let settings = [
        ("OUTGROW_READ_YOUR_WRITES_WINDOW", window),
        ("OUTGROW_REPLICA_MAX_LAG", "1s"),
        ("OUTGROW_REPLICA_PROBE_INTERVAL", "200ms"),
        ("OUTGROW_CACHE_USER_TTL", "1ms"),
    ];
    let app = TestApp::on_backend(&backend, &settings).await;
    (cluster, database, app)
}

#[tokio::test]
async fn scaled_only_a_users_own_writes_are_read_back_even_while_replicas_lag() {
    require_scaled();
    let (cluster, database, app) = app_on_own_replicas("2s").await;
    let user = app.signed_in("ann@example.org").await;
    let admin = app.admin("admin@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    // Outside the window, reads are served by the replicas.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for _ in 0..6 {
        assert_eq!(app.get_status_with_token(&path, &admin.access_token).await, 200);
        // Well past the 1 ms TTL: reads in quick succession found the entry the previous one
        // stored (3 hits in 6 reads in one run; the cache's clock is not exact to the
        // millisecond).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let before = app.metrics().await;
    let replica_reads = |metrics: &str| {
        metric_value(metrics, r#"db_queries_total{pool="replica-1"}"#).unwrap_or(0.0)
            + metric_value(metrics, r#"db_queries_total{pool="replica-2"}"#).unwrap_or(0.0)
    };
    // A 1 ms TTL and the pauses make every read a load; every load went to a replica.
    let loads = metric_value(&before, r#"cache_requests_total{cache="users",result="miss"}"#).unwrap_or(0.0);
    assert!(
        loads >= 4.0 && replica_reads(&before) >= loads,
        "reads did not go to the replicas:\n{before}"
    );

    for replica in 1..=2 {
        cluster
            .execute(replica, &database, "SELECT pg_wal_replay_pause()")
            .await;
    }
    let patched = app
        .patch_me(&user.access_token, json!({"name": "Ann After"}))
        .await;
    assert_eq!(patched.status(), 200);

    // The replicas really are behind…
    let on_replica = cluster
        .fetch_text(
            1,
            &database,
            &format!("SELECT name FROM users WHERE id = '{}'", user.id),
        )
        .await;
    assert_eq!(
        on_replica.as_deref(),
        Some("Test User"),
        "replication was not paused"
    );
    // …yet the user, and anyone else reading the user, sees the write at once.
    for token in [&user.access_token, &admin.access_token] {
        let body: Value = app.get_json_with_token(&path, token).await;
        assert_eq!(body["name"], "Ann After");
    }
    let me: Value = app.get_json_with_token("/api/v1/me", &user.access_token).await;
    assert_eq!(me["name"], "Ann After");
    assert!(app.metric("db_read_your_writes_total").await >= Some(1.0));

    // After the window the lagging replicas are out of rotation: still never stale.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..4 {
        let body: Value = app.get_json_with_token(&path, &admin.access_token).await;
        assert_eq!(body["name"], "Ann After");
    }
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"db_replica_healthy{replica="replica-1"}"#),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, r#"db_replica_lag_seconds{replica="replica-1"}"#) > Some(1.0),
        "{metrics}"
    );

    // Replay resumes: the replicas catch up and return to rotation.
    for replica in 1..=2 {
        cluster
            .execute(replica, &database, "SELECT pg_wal_replay_resume()")
            .await;
    }
    // replica-1 returns to rotation.
    app.wait_for_metric(
        r#"db_replica_healthy{replica="replica-1"}"#,
        Duration::from_secs(10),
        |value| value == Some(1.0),
    )
    .await;
}

#[tokio::test]
async fn scaled_only_requests_succeed_while_a_replica_is_down_and_it_returns_after_restart() {
    require_scaled();
    let (cluster, _, app) = app_on_own_replicas("1100ms").await;
    let admin = app.admin("admin@example.org").await;
    let user = app.signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    tokio::time::sleep(Duration::from_millis(1200)).await;

    cluster.stop_node("replica1");
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(app.get_status_with_token(&path, &admin.access_token).await);
        statuses.push(
            app.get_status_with_token("/api/v1/users?limit=5", &admin.access_token)
                .await,
        );
    }
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let metrics = app.metrics().await;
    assert_eq!(
        metric_value(&metrics, r#"db_replica_healthy{replica="replica-1"}"#),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(
        metric_value(&metrics, r#"db_replica_healthy{replica="replica-2"}"#),
        Some(1.0),
        "{metrics}"
    );
    let replica_2_reads = metric_value(&metrics, r#"db_queries_total{pool="replica-2"}"#).unwrap_or(0.0);
    assert!(
        replica_2_reads >= 20.0,
        "the healthy replica took the reads: {replica_2_reads}"
    );
    assert_eq!(app.get("/readyz").await.status(), 200);

    cluster.start_node("replica1");
    // replica-1 returns to rotation.
    app.wait_for_metric(
        r#"db_replica_healthy{replica="replica-1"}"#,
        Duration::from_secs(10),
        |value| value == Some(1.0),
    )
    .await;
    let served_before = app
        .metric(r#"db_queries_total{pool="replica-1"}"#)
        .await
        .unwrap_or(0.0);
    for _ in 0..10 {
        assert_eq!(app.get_status_with_token(&path, &admin.access_token).await, 200);
    }
    let served_after = app
        .metric(r#"db_queries_total{pool="replica-1"}"#)
        .await
        .unwrap_or(0.0);
    assert!(served_after > served_before, "replica-1 is back in rotation");
}

#[tokio::test]
async fn scaled_only_requests_succeed_without_redis_and_redis_is_used_again_once_it_is_back() {
    require_scaled();
    let redis = RedisServer::up();
    // This test's own single Redis, also on the cluster pass (redis_cluster.rs restarts a
    // cluster master).
    let mut backend = isolated_scaled_backend().await;
    backend.retain(|(key, _)| key != "OUTGROW_REDIS_CLUSTER_URLS" && key != "OUTGROW_REDIS_URL");
    backend.push(("OUTGROW_REDIS_URL".into(), redis.url()));
    // Every request asks the session store (no in-process session cache), so that its
    // fallback while Redis is down is what is tested.
    let app = TestApp::on_backend(&backend, &[("OUTGROW_SESSION_CACHE_TTL", "0s")]).await;
    let user = app.signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
    // The listener subscribes in the background: on a loaded machine it may not have yet (or
    // may have needed a retry), and its subscriptions so far must not be mistaken below for the
    // one after the restart.
    app.wait_for_metric("cache_bus_connects_total", Duration::from_secs(30), |value| {
        value >= Some(1.0)
    })
    .await;
    let connects_before = app.metric("cache_bus_connects_total").await;

    redis.stop();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(app.get_status_with_token("/api/v1/me", &user.access_token).await);
        statuses.push(app.get_status_with_token(&path, &user.access_token).await);
    }
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["redis"], "unreachable (falling back)");
    // Sign-in needs the session store: refused clearly, not hung.
    let started = Instant::now();
    assert_problem(app.login("ann@example.org", PASSWORD).await, 503).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a dead Redis must fail fast"
    );
    let metrics = app.metrics().await;
    assert!(
        metric_value(&metrics, "auth_session_check_fallback_total") >= Some(1.0),
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, r#"rate_limit_fallback_total{mode="local"}"#) >= Some(1.0),
        "{metrics}"
    );

    redis.start();
    let restarted = Instant::now();
    loop {
        let login = app.login("ann@example.org", PASSWORD).await;
        if login.status() == 200 {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "Outgrow never used Redis again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fresh = app.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(
        app.get_status_with_token("/api/v1/me", &fresh.access_token).await,
        200
    );
    let ready: Value = app.get_json("/readyz").await;
    assert_eq!(ready["redis"], "ok");
    let fallbacks = app.metric("auth_session_check_fallback_total").await;
    app.get_with_token("/api/v1/me", &fresh.access_token).await;
    assert_eq!(
        app.metric("auth_session_check_fallback_total").await,
        fallbacks,
        "sessions are checked in Redis again"
    );
    // The invalidation listener reconnected (and cleared its local tier).
    app.wait_for_metric("cache_bus_connects_total", Duration::from_secs(10), |value| {
        value > connects_before
    })
    .await;
}

#[tokio::test]
async fn scaled_only_a_promotion_from_the_command_line_reaches_the_servers_caches() {
    require_scaled();
    let app = TestApp::with_settings(&[
        ("OUTGROW_CACHE_LOCAL_TTL", "60s"),
        ("OUTGROW_CACHE_USER_TTL", "60s"),
    ])
    .await;
    let user = app.signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    for _ in 0..2 {
        let body: Value = app.get_json_with_token(&path, &user.access_token).await;
        assert_eq!(body["role"], "user");
    }

    app.run_cli(&["admin", "promote", "--email", "ann@example.org"]);

    let (within, every) = (Duration::from_secs(1), Duration::from_millis(10));
    poll_until(
        "the promotion to reach the server's caches",
        within,
        every,
        async || {
            let body: Value = app.get_json_with_token(&path, &user.access_token).await;
            if body["role"] == "admin" {
                Ok(())
            } else {
                Err(format!("the server kept the cached role: {body}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn scaled_only_without_redis_sessions_live_in_postgres_with_the_same_guarantees() {
    require_scaled();
    let backend = isolated_scaled_backend_without_redis().await;
    let app = TestApp::builder().backend(&backend).spawn().await;
    let started = app
        .wait_for_log(|event| event["message"] == "Outgrow listening")
        .await;
    let backends = started["backends"].as_str().expect("backends");
    assert!(backends.contains("sessions=sql (postgres primary)"), "{backends}");
    assert!(
        backends.contains("cache=in-process") && backends.contains("rate_limiter=in-process"),
        "{backends}"
    );

    let user = app.signed_in("ann@example.org").await;
    // Concurrent refreshes of one token: exactly one wins (row lock), the rest are reuse.
    let statuses = app.concurrent_refreshes(&user.refresh_token, 6).await;
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    // The reuse revoked the session: its access token is dead too.
    app.get_problem_with_token("/api/v1/me", &user.access_token, 401)
        .await;

    let (cookie, tokens) = app.cookie_login("ann@example.org", PASSWORD).await;
    let me = app.get_with_header("/api/v1/me", "cookie", &cookie).await;
    assert_eq!(me.status(), 200);
    let rotated = app
        .refresh(tokens["refresh_token"].as_str().expect("refresh token"))
        .await;
    assert_eq!(rotated.status(), 200);

    let out = app
        .post_with_token(
            "/api/v1/auth/logout-all",
            tokens["access_token"].as_str().expect("token"),
        )
        .await;
    assert_eq!(out.status(), 204);
    let me = app.get_with_header("/api/v1/me", "cookie", &cookie).await;
    assert_problem(me, 401).await;
    let metrics = app.metrics().await;
    assert!(
        metric_value(&metrics, r#"db_pool_connections{pool="primary",state="idle"}"#).is_some(),
        "{metrics}"
    );
}
