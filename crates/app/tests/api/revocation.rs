//! Session checks answered from memory, and revocation that keeps its meaning: a revoked
//! session's access tokens are refused at once by the instance that revoked it, and by every
//! other instance within the documented bound (`session_cache_ttl`, 1 s; milliseconds when the
//! invalidation bus — Redis — is there). The cross-instance tests run on the scaled pass.

use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::helpers::*;

/// The documented bound on another instance (`session_cache_ttl`).
const BOUND: Duration = Duration::from_secs(1);
/// What the measurement itself adds: the polling interval and one request's latency on a
/// loaded CI machine.
const MEASUREMENT_SLACK: Duration = Duration::from_millis(300);

/// How a session gets revoked.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    Logout,
    LogoutAll,
    RefreshTokenReuse,
}

impl Revocation {
    /// Every way, for the tests that check each.
    const ALL: [Self; 3] = [Self::Logout, Self::LogoutAll, Self::RefreshTokenReuse];
}

/// Revokes `user`'s session on `app` the way `how` says.
async fn revoke(app: &TestApp, user: &SignedIn, how: Revocation) {
    match how {
        Revocation::Logout | Revocation::LogoutAll => {
            let path = match how {
                Revocation::Logout => "/api/v1/auth/logout",
                _ => "/api/v1/auth/logout-all",
            };
            let out = app.post_with_token(path, &user.access_token).await;
            assert_eq!(out.status(), 204);
        }
        Revocation::RefreshTokenReuse => {
            let body = json!({"refresh_token": user.refresh_token});
            assert_eq!(app.post_json("/api/v1/auth/refresh", &body).await.status(), 200);
            // The spent token again: the whole session is revoked.
            assert_problem(app.post_json("/api/v1/auth/refresh", &body).await, 401).await;
        }
    }
}

/// Polls `app` with `token` until it is refused; returns how long that took.
async fn time_until_refused(app: &TestApp, path: &str, token: &str, since: Instant) -> Duration {
    loop {
        let status = app.get_status_with_token(path, token).await;
        if status == 401 {
            return since.elapsed();
        }
        assert_eq!(status, 200, "only 200 or 401 are expected");
        assert!(
            since.elapsed() < BOUND + MEASUREMENT_SLACK + Duration::from_secs(2),
            "still accepted after {:?}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Signs in on `a`, lets `b` cache the session by using the token there, revokes on `a`:
/// `a` refuses the token on the very next request, `b` within the bound. Returns how long `b`
/// took. `replicas`: the read replicas `b` may read the new user from before it touches it.
async fn revoked_on_a_is_refused_on_b(
    a: &TestApp,
    b: &TestApp,
    replicas: &[String],
    email: &str,
    how: Revocation,
) -> Duration {
    let user = a.signed_in(email).await;
    let path = format!("/api/v1/users/{}", user.id);
    // Without Redis, `a`'s read-your-writes marker is its own: `b` reads the new user from a
    // replica, and would cache a 404 if that replica had not replayed the sign-up yet.
    for replica in replicas {
        let mut connection = sqlx::PgConnection::connect(replica).await.expect("replica");
        let since = Instant::now();
        while sqlx::query("SELECT 1 FROM users WHERE id = $1::uuid")
            .bind(&user.id)
            .fetch_optional(&mut connection)
            .await
            .expect("query")
            .is_none()
        {
            assert!(
                since.elapsed() < Duration::from_secs(5),
                "{replica} did not replay the sign-up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for instance in [a, b, b] {
        assert_eq!(
            instance.get_status_with_token(&path, &user.access_token).await,
            200
        );
    }

    revoke(a, &user, how).await;
    let revoked = Instant::now();

    a.get_problem_with_token(&path, &user.access_token, 401).await;
    let on_b = time_until_refused(b, &path, &user.access_token, revoked).await;
    assert!(
        on_b <= BOUND + MEASUREMENT_SLACK,
        "{how:?}: the other instance accepted the token for {on_b:?} (bound {BOUND:?})"
    );
    eprintln!("{how:?}: refused by the other instance after {on_b:?}");
    on_b
}

#[tokio::test]
async fn session_checks_of_repeated_requests_are_served_from_memory() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    let before = app.metrics().await;
    let hits = |metrics: &str| {
        metric_value(metrics, r#"cache_requests_total{cache="sessions",result="hit"}"#).unwrap_or(0.0)
    };
    let misses = |metrics: &str| {
        metric_value(metrics, r#"cache_requests_total{cache="sessions",result="miss"}"#).unwrap_or(0.0)
    };

    for _ in 0..20 {
        assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
    }

    let after = app.metrics().await;
    // The login wrote the session into the cache; within the TTL (1 s) nothing is looked up,
    // and a slow CI machine may need one reload per elapsed second.
    let looked_up = misses(&after) - misses(&before);
    assert!(hits(&after) - hits(&before) >= 20.0 - looked_up, "{after}");
    assert!(looked_up <= 3.0, "{looked_up} lookups for 20 requests");
}

#[tokio::test]
async fn a_revoked_session_is_refused_at_once_by_the_instance_that_revoked_it() {
    let app = TestApp::spawn().await;
    for (index, how) in Revocation::ALL.into_iter().enumerate() {
        let user = app.signed_in(&format!("user{index}@example.org")).await;
        let path = format!("/api/v1/users/{}", user.id);
        // Cached as active by these requests…
        for _ in 0..3 {
            assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
        }
        revoke(&app, &user, how).await;
        // …and refused on the very next one.
        app.get_problem_with_token(&path, &user.access_token, 401).await;
    }
}

#[tokio::test]
async fn scaled_only_a_revocation_reaches_every_other_instance_over_the_bus_within_the_bound() {
    require_scaled();
    // A long TTL: only the invalidation bus can make B refuse the token in time.
    let settings = [("OUTGROW_SESSION_CACHE_TTL", "60s")];
    let (a, b) = TestApp::pair(&settings).await;
    for (index, how) in Revocation::ALL.into_iter().enumerate() {
        let on_b = revoked_on_a_is_refused_on_b(&a, &b, &[], &format!("bus{index}@example.org"), how).await;
        // The message arrives in milliseconds, far inside the bound.
        assert!(on_b < Duration::from_millis(500), "{how:?}: {on_b:?}");
    }
}

#[tokio::test]
async fn scaled_only_without_the_bus_a_revocation_reaches_other_instances_within_the_session_cache_ttl() {
    require_scaled();
    // PostgreSQL sessions and no Redis: nothing tells B; its cache entry expires instead.
    let backend = isolated_scaled_backend_without_redis().await;
    let replicas: Vec<String> = backend
        .iter()
        .filter(|(key, _)| key == "OUTGROW_DATABASE_REPLICA_URLS")
        .flat_map(|(_, urls)| urls.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let a = TestApp::builder().backend(&backend).spawn().await;
    let b = TestApp::builder().backend(&backend).spawn().await;
    for (index, how) in Revocation::ALL.into_iter().enumerate() {
        revoked_on_a_is_refused_on_b(&a, &b, &replicas, &format!("ttl{index}@example.org"), how).await;
    }
}

#[tokio::test]
async fn scaled_only_an_authenticated_cached_read_costs_one_redis_round_trip() {
    require_scaled();
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    // Warm: the user record is cached, the session is cached by the login.
    assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
    let round_trips = |metrics: &str| -> Vec<(String, f64)> {
        metrics
            .lines()
            .filter(|line| line.starts_with("redis_commands_total{"))
            // (The invalidation bus's once-a-second restart probe has a connection of its own
            // and is not counted here.)
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    };
    let before = round_trips(&app.metrics().await);

    let requests = 20;
    for _ in 0..requests {
        assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
    }

    let after = round_trips(&app.metrics().await);
    let delta = |series: &str| {
        let value = |list: &[(String, f64)]| {
            list.iter()
                .find(|(name, _)| name == series)
                .map_or(0.0, |(_, v)| *v)
        };
        value(&after) - value(&before)
    };
    let total: f64 = after.iter().map(|(series, _)| delta(series)).sum();
    let rate_limit = delta(r#"redis_commands_total{operation="rate_limit"}"#);
    // The session cache may reload the session once per second on a slow machine.
    let sessions = delta(r#"redis_commands_total{operation="session_get"}"#);
    assert_eq!(rate_limit, requests as f64, "{after:?}");
    assert!(sessions <= 3.0, "{sessions} session lookups");
    assert_eq!(total, rate_limit + sessions, "no other round trips: {after:?}");
}
