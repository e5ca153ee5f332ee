//! `/me` and `/users`: own data, own-or-admin authorisation, caching, pagination, admins.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn me_requires_a_credential() {
    let app = TestApp::spawn().await;

    let response = app.get("/api/v1/me").await;

    assert_header(&response, "www-authenticate", Some("Bearer"));
    assert_problem(response, 401).await;
}

#[tokio::test]
async fn me_returns_the_signed_in_user() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;

    let me: Value = app.get_json_with_token("/api/v1/me", &user.access_token).await;

    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["email"], "ann@example.org");
}

#[tokio::test]
async fn a_new_name_is_visible_at_once_through_the_cache() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    // Warm the cache.
    for _ in 0..2 {
        assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
    }

    let patched = app
        .patch_me(&user.access_token, json!({"name": "Ann Renamed"}))
        .await;

    assert_eq!(patched.status(), 200);
    for read in [path.as_str(), "/api/v1/me"] {
        let body: Value = app.get_json_with_token(read, &user.access_token).await;
        assert_eq!(body["name"], "Ann Renamed", "{read} served a stale name");
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"cache_requests_total{cache="users",result="hit"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"cache_requests_total{cache="users",result="miss"}"#));
}

#[tokio::test]
async fn a_profile_update_writes_the_new_value_through_to_the_cache() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let path = format!("/api/v1/users/{}", user.id);
    assert_eq!(app.get_status_with_token(&path, &user.access_token).await, 200);
    let misses = |metrics: &str| {
        metric_value(metrics, r#"cache_requests_total{cache="users",result="miss"}"#).unwrap_or(0.0)
    };
    let before = app.metrics().await;

    let patched = app
        .patch_me(&user.access_token, json!({"name": "Ann Written Through"}))
        .await;
    assert_eq!(patched.status(), 200);
    let read: Value = app.get_json_with_token(&path, &user.access_token).await;

    // The read right after the update is a hit on the new value: no reload from the database.
    assert_eq!(read["name"], "Ann Written Through");
    let after = app.metrics().await;
    assert_eq!(misses(&after), misses(&before), "{after}");
    assert_eq!(
        metric_value(&after, r#"cache_writes_total{cache="users"}"#),
        Some(1.0),
        "{after}"
    );
}

#[tokio::test]
async fn changing_the_password_requires_the_current_one() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;

    let missing = app
        .patch_me(&user.access_token, json!({"password": "a brand new secret"}))
        .await;
    let problem = assert_problem(missing, 400).await;
    assert_eq!(problem["errors"][0]["field"], "current_password");

    let wrong = app
        .patch_me(
            &user.access_token,
            json!({"password": "a brand new secret", "current_password": "guess guess"}),
        )
        .await;
    assert_problem(wrong, 403).await;
    assert_eq!(
        app.login("ann@example.org", PASSWORD).await.status(),
        200,
        "the password is unchanged"
    );
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_but_keeps_this_one() {
    let (app, here) = TestApp::spawn_signed_in("ann@example.org").await;
    let elsewhere = app.sign_in("ann@example.org", PASSWORD).await;

    let changed = app
        .patch_me(
            &here.access_token,
            json!({"password": "a brand new secret", "current_password": PASSWORD}),
        )
        .await;

    assert_eq!(changed.status(), 200);
    assert_eq!(
        app.get_status_with_token("/api/v1/me", &here.access_token).await,
        200
    );
    app.get_problem_with_token("/api/v1/me", &elsewhere.access_token, 401)
        .await;
    let refresh = app.refresh(&elsewhere.refresh_token).await;
    assert_problem(refresh, 401).await;
    assert_eq!(app.login("ann@example.org", PASSWORD).await.status(), 401);
    assert_eq!(
        app.login("ann@example.org", "a brand new secret").await.status(),
        200
    );
}

#[tokio::test]
async fn the_new_password_follows_the_policy() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    for bad in ["short", "ann@example.org", "12345678"] {
        let response = app
            .patch_me(
                &user.access_token,
                json!({"password": bad, "current_password": PASSWORD}),
            )
            .await;
        let problem = assert_problem(response, 400).await;
        assert_eq!(problem["errors"][0]["field"], "password", "{bad}");
    }
}

#[tokio::test]
async fn an_empty_or_unknown_patch_is_a_400() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    assert_problem(app.patch_me(&user.access_token, json!({})).await, 400).await;
    assert_problem(
        app.patch_me(&user.access_token, json!({"email": "x@example.org"}))
            .await,
        400,
    )
    .await;
    assert_problem(
        app.patch_me(&user.access_token, json!({"role": "admin"})).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_user_reads_themself_but_not_others() {
    let (app, ann) = TestApp::spawn_signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;

    let own = app
        .get_with_token(&format!("/api/v1/users/{}", ann.id), &ann.access_token)
        .await;
    let other = app
        .get_with_token(&format!("/api/v1/users/{}", bob.id), &ann.access_token)
        .await;
    let unknown = app
        .get_with_token(
            &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
            &ann.access_token,
        )
        .await;

    assert_eq!(own.status(), 200);
    assert_problem(other, 403).await;
    // Not an admin: an unknown id is as forbidden as another user's, revealing nothing.
    assert_problem(unknown, 403).await;
}

#[tokio::test]
async fn an_admin_reads_anyone_and_unknown_ids_are_404() {
    let (app, bob) = TestApp::spawn_signed_in("bob@example.org").await;
    let admin = app.admin("admin@example.org").await;

    let response = app
        .get_with_token(&format!("/api/v1/users/{}", bob.id), &admin.access_token)
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["email"], "bob@example.org");

    let unknown = app
        .get_with_token(
            &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
            &admin.access_token,
        )
        .await;
    assert_problem(unknown, 404).await;
    let malformed = app
        .get_with_token("/api/v1/users/not-a-uuid", &admin.access_token)
        .await;
    assert_problem(malformed, 400).await;
}

#[tokio::test]
async fn listing_users_is_for_admins() {
    let (app, ann) = TestApp::spawn_signed_in("ann@example.org").await;
    app.get_problem_with_token("/api/v1/users", &ann.access_token, 403)
        .await;
}

#[tokio::test]
async fn admins_page_through_every_user_once_in_a_stable_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    for index in 0..24 {
        assert_eq!(
            app.register(&format!("user{index:02}@example.org"), PASSWORD, "U")
                .await
                .status(),
            202
        );
    }

    // Listing reads a replica on the scaled backends: the last registrations may take a few
    // milliseconds to arrive there (they are not the admin's own writes), so page again until
    // all 25 are visible.
    let started = std::time::Instant::now();
    let (seen, pages) = loop {
        let (seen, pages) = all_pages(&app, &admin.access_token).await;
        if seen.len() == 25 || started.elapsed() > std::time::Duration::from_secs(5) {
            break (seen, pages);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };

    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25, "no user twice");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ids ascend");
}

/// Every user, page by page (10 a page), checking each `Link` header.
async fn all_pages(app: &TestApp, token: &str) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut path = "/api/v1/users?limit=10".to_owned();
    let mut pages = 0;
    loop {
        let response = app.get_with_token(&path, token).await;
        assert_eq!(response.status(), 200);
        let link = header(&response, "link");
        let page: Value = response.json().await.expect("json");
        pages += 1;
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_owned()),
        );
        match page["next_after"].as_str() {
            Some(next) => {
                assert!(link.expect("Link header").contains(&format!("after={next}")));
                path = format!("/api/v1/users?limit=10&after={next}");
            }
            None => return (seen, pages),
        }
    }
}

#[tokio::test]
async fn page_sizes_and_cursors_are_validated() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "after=nope",
        "sort=email",
    ] {
        let response = app
            .get_with_token(&format!("/api/v1/users?{query}"), &admin.access_token)
            .await;
        assert_problem(response, 400).await;
    }
    let max = app
        .get_with_token("/api/v1/users?limit=100", &admin.access_token)
        .await;
    assert_eq!(max.status(), 200);
}

#[tokio::test]
async fn the_admin_cli_refuses_a_taken_email_and_promotes_instead() {
    let app = TestApp::spawn().await;
    app.signed_in("ann@example.org").await;

    let create = app
        .command()
        .args(["admin", "create", "--email", "ann@example.org"])
        .env("OUTGROW_ADMIN_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    assert!(!create.status.success());
    assert!(String::from_utf8_lossy(&create.stderr).contains("admin promote"));

    app.run_cli(&["admin", "promote", "--email", "ann@example.org"]);
    let admin = app.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(
        app.get_status_with_token("/api/v1/users", &admin.access_token)
            .await,
        200
    );
}

#[tokio::test]
async fn the_admin_password_can_come_from_standard_input() {
    use std::io::Write;
    let app = TestApp::spawn().await;
    let mut child = app
        .command()
        .args(["admin", "create", "--email", "root@example.org", "--name", "Root"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"piped admin secret\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());

    let admin = app.sign_in("root@example.org", "piped admin secret").await;
    let me: Value = app.get_json_with_token("/api/v1/me", &admin.access_token).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["name"], "Root");
}
