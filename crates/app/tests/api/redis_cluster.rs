//! Outgrow on a Redis Cluster when a master fails: each test starts a private 3-master cluster
//! (scripts/redis-cluster) so that stopping a master never disturbs the shared services.
//!
//! The features themselves (rate limits and their headers, sessions and revocation across two
//! instances, the cache and its invalidation bus, read-your-writes markers) run against the
//! shared cluster on scripts/test's cluster pass: the scaled tests with
//! `OUTGROW_TEST_REDIS_MODE=cluster`. Named `scaled_only_*`, like scaled.rs: skipped on the
//! embedded pass.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{helpers::*, services::RedisCluster};

/// The backend of `isolated_scaled_backend` with its Redis replaced by `cluster`.
async fn backend_on(cluster: &RedisCluster) -> Vec<(String, String)> {
    let mut backend = isolated_scaled_backend().await;
    backend.retain(|(key, _)| key != "OUTGROW_REDIS_URL" && key != "OUTGROW_REDIS_CLUSTER_URLS");
    backend.push(("OUTGROW_REDIS_CLUSTER_URLS".into(), cluster.urls()));
    backend
}

/// A rename through `writer` must reach `reader`'s cache within 500 ms (so over the bus: the
/// local TTL of these instances is a minute).
async fn assert_a_write_reaches_the_other_cache(
    writer: &TestApp,
    reader: &TestApp,
    user: &SignedIn,
    name: &str,
) {
    let path = format!("/api/v1/users/{}", user.id);
    for _ in 0..2 {
        assert_eq!(reader.get_status_with_token(&path, &user.access_token).await, 200);
    }
    let patched = writer.patch_me(&user.access_token, json!({ "name": name })).await;
    assert_eq!(patched.status(), 200);
    let (within, every) = (Duration::from_millis(500), Duration::from_millis(5));
    poll_until(
        "the other instance to serve the new name",
        within,
        every,
        async || {
            let body: Value = reader.get_json_with_token(&path, &user.access_token).await;
            if body["name"] == name {
                Ok(())
            } else {
                Err(format!("it serves {body}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn scaled_only_a_cluster_master_restart_degrades_to_the_fallbacks_and_everything_works_again_after_it()
{
    require_scaled();
    let cluster = RedisCluster::up();
    let backend = backend_on(&cluster).await;
    let settings = [
        ("OUTGROW_CACHE_LOCAL_TTL", "60s"),
        ("OUTGROW_CACHE_USER_TTL", "60s"),
    ];
    let a = TestApp::on_backend(&backend, &settings).await;
    let b = TestApp::on_backend(&backend, &settings).await;
    // The bus subscribes once the fresh cluster agrees on its slots; on a loaded machine that
    // can take a retry, so the count before the restart is read rather than assumed to be 1.
    let mut connects_before = Vec::new();
    for app in [&a, &b] {
        app.wait_for_metric("cache_bus_connects_total", Duration::from_secs(30), |value| {
            value >= Some(1.0)
        })
        .await;
        connects_before.push(app.metric("cache_bus_connects_total").await);
    }
    let started = a
        .wait_for_log(|event| event["message"] == "Outgrow listening")
        .await;
    assert!(
        started["backends"]
            .as_str()
            .is_some_and(|backends| backends.contains("redis=cluster")),
        "{started}"
    );
    let ann = a.signed_in("ann@example.org").await;
    assert_a_write_reaches_the_other_cache(&a, &b, &ann, "Ann before").await;

    // Node 0 is the first seed: both buses are subscribed there, so they must fail over.
    cluster.stop_node(0);
    let path = format!("/api/v1/users/{}", ann.id);
    let stopped = Instant::now();
    let mut statuses = Vec::new();
    // Through the cluster's failure detection (2 s) and a second beyond it: first node 0's
    // slots time out, then the whole cluster refuses commands (CLUSTERDOWN). Either way the
    // requests are served by the fallbacks.
    let mut noticed: Option<Instant> = None;
    while noticed.is_none_or(|noticed| noticed.elapsed() < Duration::from_secs(1)) {
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "the cluster never noticed"
        );
        for app in [&a, &b] {
            statuses.push(app.get_status_with_token("/api/v1/me", &ann.access_token).await);
            statuses.push(app.get_status_with_token(&path, &ann.access_token).await);
        }
        if noticed.is_none() && cluster.state(1) == "fail" {
            noticed = Some(Instant::now());
        }
    }
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    for (app, before) in [&a, &b].into_iter().zip(connects_before) {
        app.wait_for_metric("cache_bus_connects_total", Duration::from_secs(10), |value| {
            value > before
        })
        .await;
        let metrics = app.metrics().await;
        assert!(
            metric_value(&metrics, r#"rate_limit_fallback_total{mode="local"}"#) >= Some(1.0),
            "{metrics}"
        );
    }

    cluster.start_node(0);
    // Sign-in needs the session store: it works again once the client has found node 0.
    eventually("sign-in works again", Duration::from_secs(15), async || {
        a.login("ann@example.org", PASSWORD).await.status() == 200
    })
    .await;
    // The restarted master came back empty (no persistence in these tests): fresh tokens.
    let ann = a.sign_in("ann@example.org", PASSWORD).await;
    let bob = b.signed_in("bob@example.org").await;
    for (app, user) in [(&a, &bob), (&b, &ann)] {
        assert_eq!(
            app.get_status_with_token("/api/v1/me", &user.access_token).await,
            200
        );
    }
    // Rate limits are decided in Redis again, not by the local fallback.
    let fallbacks = a.metric(r#"rate_limit_fallback_total{mode="local"}"#).await;
    for _ in 0..5 {
        a.get_with_token(&path, &ann.access_token).await;
    }
    assert_eq!(
        a.metric(r#"rate_limit_fallback_total{mode="local"}"#).await,
        fallbacks
    );
    // The invalidation bus works both ways, for users in every slot.
    assert_a_write_reaches_the_other_cache(&a, &b, &ann, "Ann after").await;
    assert_a_write_reaches_the_other_cache(&b, &a, &bob, "Bob after").await;
    // A revocation on B reaches A's session cache over the bus.
    let out = b
        .post_with_token("/api/v1/auth/logout-all", &ann.access_token)
        .await;
    assert_eq!(out.status(), 204);
    eventually(
        "A refuses the revoked token",
        Duration::from_secs(1),
        async || a.get_status_with_token("/api/v1/me", &ann.access_token).await == 401,
    )
    .await;
}

#[tokio::test]
async fn scaled_only_outgrow_starts_while_the_cluster_is_down_and_uses_it_once_it_is_up() {
    require_scaled();
    let cluster = RedisCluster::up();
    for node in 0..3 {
        cluster.stop_node(node);
    }
    let app = TestApp::builder()
        .backend(&backend_on(&cluster).await)
        .spawn()
        .await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    // Sign-in needs the session store: refused clearly, not hung.
    assert_problem(app.login("ann@example.org", PASSWORD).await, 503).await;

    for node in 0..3 {
        cluster.start_node(node);
    }
    eventually(
        "sign-in works once the cluster is up",
        Duration::from_secs(15),
        async || app.login("ann@example.org", PASSWORD).await.status() == 200,
    )
    .await;
    app.wait_for_metric("cache_bus_connects_total", Duration::from_secs(10), |value| {
        value >= Some(1.0)
    })
    .await;
    let ann = app.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(
        app.get_status_with_token("/api/v1/me", &ann.access_token).await,
        200
    );
}

#[tokio::test]
async fn scaled_only_check_reports_the_cluster_and_fails_while_a_master_is_down() {
    require_scaled();
    let cluster = RedisCluster::up();
    let dir = tempfile::tempdir().expect("temp dir");
    let check = || -> (bool, String) {
        let output: std::process::Output = base_command(&dir.path().join("data"))
            .arg("check")
            .env("OUTGROW_REDIS_CLUSTER_URLS", cluster.urls())
            .output()
            .expect("run check");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let redis = stdout
            .lines()
            .find(|line| line.starts_with("redis:"))
            .unwrap_or_default()
            .to_owned();
        (output.status.success(), redis)
    };

    let (passed, line) = check();
    assert!(passed, "{line}");
    assert!(
        line.contains(
            "cluster: cluster_state ok, 3/3 masters and 0/0 replicas reachable, 16384/16384 slots covered"
        ),
        "{line}"
    );

    cluster.stop_node(2);
    let stopped = Instant::now();
    while cluster.state(0) != "fail" {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "the cluster never noticed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (passed, line) = check();
    assert!(!passed, "{line}");
    assert!(
        line.contains("FAILED") && line.contains("cluster_state fail, 2/3 masters"),
        "{line}"
    );
}
