//! Secrets stay secret (OWASP API2/API8): a whole session's logs, at `debug`, hold none of the
//! passwords, tokens, cookies, signed-link signatures or keys that went through the server;
//! and JWT key rotation (`kid`) is invisible to clients across two instances mid-rotation.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    helpers::*,
    media::upload_png,
    services::{SmtpSink, link_in},
};

const ADMIN_PASSWORD: &str = "an administrator's own passphrase";
const NEW_PASSWORD: &str = "a freshly changed passphrase";

/// Waits for the e-mail whose text contains `marker` and returns it.
async fn mail_containing(sink: &SmtpSink, marker: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(message) = sink.messages().into_iter().find(|m| m.contains(marker)) {
            return message;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no e-mail with {marker:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_whole_session_logs_no_password_token_cookie_signature_or_key() {
    let sink = SmtpSink::up(0);
    let app = TestApp::with_settings(&[
        ("OUTGROW_SMTP_URL", sink.url().as_str()),
        // Everything Outgrow and its libraries say, not only what production logs.
        ("OUTGROW_LOG_LEVEL", "debug"),
    ])
    .await;
    let mut secrets: Vec<(String, String)> = vec![
        ("the user's password".into(), PASSWORD.into()),
        ("the admin's password".into(), ADMIN_PASSWORD.into()),
        ("the changed password".into(), NEW_PASSWORD.into()),
        ("the JWT secret".into(), TEST_JWT_SECRET.into()),
    ];

    // Register, sign in (bearer and cookie), refresh.
    let user = app.signed_in("ann@example.org").await;
    let (cookie, _) = app.cookie_login("ann@example.org", PASSWORD).await;
    let refreshed = json_body(app.refresh(&user.refresh_token).await, 200).await;
    let access = refreshed["access_token"].as_str().expect("token").to_owned();
    let refresh = refreshed["refresh_token"].as_str().expect("refresh").to_owned();
    // A wrong password and a made-up token are logged as failures, without the values.
    assert_eq!(
        app.login("ann@example.org", "a wrong guess entirely")
            .await
            .status(),
        401
    );
    secrets.push(("a wrong password".into(), "a wrong guess entirely".into()));
    let forged = format!("{}.forged", user.access_token);
    app.get_problem_with_token("/api/v1/me", &forged, 401).await;

    // Use the API: profile, an upload, an export mailed as a signed link and downloaded.
    assert_eq!(app.get_status_with_token("/api/v1/me", &access).await, 200);
    upload_png(&app, &access, 40, 30, false).await;
    let export = app.request_export(&access, "json").await;
    assert_eq!(export.status(), 202);
    let link = link_in(&mail_containing(&sink, "data export is ready").await);
    let download = app.client.get(&link).send().await.expect("download");
    assert_eq!(download.status(), 200);
    let signature = link.split("signature=").nth(1).expect("signature").to_owned();
    // Change the password (ends the other sessions), then sign out.
    let changed = app
        .patch_me(
            &access,
            json!({"password": NEW_PASSWORD, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        app.post_with_token("/api/v1/auth/logout", &access).await.status(),
        204
    );

    // Admin actions: create an admin with the CLI, a product, list users.
    let output = app
        .command()
        .args(["admin", "create", "--email", "root@example.org"])
        .env("OUTGROW_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("admin create");
    assert_succeeded(&output, "admin create");
    let admin = app.sign_in("root@example.org", ADMIN_PASSWORD).await;
    create_product_id(&app, &admin, "Lamp", 1500, 3).await;
    let users: Value = app
        .get_json_with_token("/api/v1/users", &admin.access_token)
        .await;
    assert!(
        users["items"].as_array().is_some_and(|items| items.len() >= 2),
        "{users}"
    );

    let cookie_value = cookie.split_once('=').expect("name=value").1.to_owned();
    for (what, token) in [
        ("an access token", user.access_token.clone()),
        ("a refreshed access token", access),
        ("a refresh token", user.refresh_token.clone()),
        ("a rotated refresh token", refresh),
        ("the admin's access token", admin.access_token.clone()),
        ("the admin's refresh token", admin.refresh_token.clone()),
        ("the session cookie", cookie_value),
        ("the export link's signature", signature),
    ] {
        secrets.push((what.into(), token));
    }
    // A JWT's signature part alone is as good as the token for a log reader's purposes.
    for token in [&user.access_token, &admin.access_token] {
        let signature = token.rsplit('.').next().expect("signature");
        secrets.push(("a JWT signature".into(), signature.to_owned()));
    }

    // Wait for the log lines of the last requests to be read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = app.logs();
    assert!(
        logs.len() > 50,
        "a whole session logs plenty: {} lines",
        logs.len()
    );
    assert!(
        logs.iter().any(|line| line.contains("\"level\":\"DEBUG\"")),
        "debug logging was on"
    );
    for (what, secret) in &secrets {
        let leaks: Vec<_> = logs
            .iter()
            .filter(|line| line.contains(secret.as_str()))
            .collect();
        assert!(leaks.is_empty(), "{what} is in the logs: {leaks:#?}");
    }
    // (Column names such as `password_hash` do appear: sqlx logs statements at DEBUG, never
    // their bound values.)
    for marker in ["$argon2", "Bearer ey", "outgrow_session="] {
        let leaks: Vec<_> = logs.iter().filter(|line| line.contains(marker)).collect();
        assert!(leaks.is_empty(), "{marker} is in the logs: {leaks:#?}");
    }
}

/// A rotation as the README prescribes, on two instances sharing one backend: `old` → (some
/// instances on `old,new`: old signs, new verifies) → (`new,old`: new signs) → `new`. At each
/// step every token, export link and form token made by either instance works on the other,
/// so clients see no failure; after the last step the old key is retired and its tokens fail,
/// while refresh tokens (not signed with the key) keep every session going.
#[tokio::test]
async fn scaled_only_jwt_key_rotation_across_two_instances_is_invisible_to_clients() {
    require_scaled();
    let old = "old:fedcba9876543210fedcba9876543210-old";
    let new = "new:0123456789abcdef0123456789abcdef-new";
    let keys = |spec: &str| [("OUTGROW_JWT_KEYS", spec.to_owned())];
    let a = TestApp::builder().settings(&keys(old)).spawn().await;
    let user = a.signed_in("ann@example.org").await;
    assert_eq!(jwt_parts(&user.access_token).0["kid"], "old");

    // Step 1: B knows the new key but still signs with the old one.
    let b = TestApp::builder()
        .backend(&a.backend)
        .settings(&keys(&format!("{old},{new}")))
        .spawn()
        .await;
    let on_b = b.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(jwt_parts(&on_b.access_token).0["kid"], "old");
    for (instance, token) in [(&a, &on_b.access_token), (&b, &user.access_token)] {
        assert_eq!(instance.get_status_with_token("/api/v1/me", token).await, 200);
    }

    // Step 2: C signs with the new key; B (knowing both) and C accept each other's tokens.
    let c = TestApp::builder()
        .backend(&a.backend)
        .settings(&keys(&format!("{new},{old}")))
        .spawn()
        .await;
    let on_c = c.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(jwt_parts(&on_c.access_token).0["kid"], "new");
    assert_eq!(
        b.get_status_with_token("/api/v1/me", &on_c.access_token).await,
        200
    );
    assert_eq!(
        c.get_status_with_token("/api/v1/me", &on_b.access_token).await,
        200
    );
    // Export links and form tokens follow the same keys: B's verify on C and C's on B.
    let mut browser_b = Browser::new(&b);
    let form_on_b = browser_b.get("/register").await.csrf();
    let mut browser_c = Browser::new(&c);
    let form_on_c = browser_c.get("/register").await.csrf();
    assert_ne!(form_on_b, form_on_c, "different signing keys");
    let export = b.request_export(&on_b.access_token, "json").await;
    assert_eq!(export.status(), 202);
    let location = header(&export, "location").expect("Location");
    let ready = b.wait_for_export(&location, &on_b.access_token).await;
    let link_from_b = ready["download_url"].as_str().expect("download_url").to_owned();
    let path = link_from_b
        .split_once("/api/")
        .map(|(_, rest)| format!("/api/{rest}"))
        .expect("path");
    assert_eq!(c.get(&path).await.status(), 200, "B's link opens on C");
    // A form rendered by B posts to C (the cookie binding travels with the browser).
    browser_c.cookies = browser_b.cookies.clone();
    let posted = browser_c
        .post(
            "/login",
            &[
                ("email", "ann@example.org"),
                ("password", PASSWORD),
                ("next", "/account"),
                ("csrf", &form_on_b),
            ],
        )
        .await;
    assert_eq!(posted.redirect(), "/account", "B's form token is good on C");

    // Step 3: the old key is retired. Its access tokens stop working; the refresh token
    // issued alongside one still renews the session, now under the new key.
    drop((a, b));
    let d = TestApp::builder()
        .backend(&c.backend)
        .settings(&keys(new))
        .spawn()
        .await;
    assert_eq!(
        d.get_status_with_token("/api/v1/me", &on_c.access_token).await,
        200
    );
    d.get_problem_with_token("/api/v1/me", &on_b.access_token, 401)
        .await;
    let renewed = json_body(d.refresh(&on_b.refresh_token).await, 200).await;
    let token = renewed["access_token"].as_str().expect("token");
    assert_eq!(jwt_parts(token).0["kid"], "new");
    assert_eq!(d.get_status_with_token("/api/v1/me", token).await, 200);
}
