//! Registration, login, refresh-token rotation, logout and the session cookie.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn register_returns_202_and_the_account_signs_in_with_a_normalised_email() {
    let app = TestApp::spawn().await;

    let response = app
        .register("  Ann.Lee@Example.ORG ", PASSWORD, "  Ann Lee ")
        .await;

    assert_eq!(response.status(), 202);
    assert!(header(&response, "location").is_none(), "no id to give away");
    let body: Value = response.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("sign in")),
        "{body}"
    );
    assert_eq!(body.as_object().map(|object| object.len()), Some(1), "{body}");
    let login = app.login("ann.lee@example.org", PASSWORD).await;
    assert_eq!(login.status(), 200);
    let user: Value = login.json().await.expect("json");
    assert_eq!(user["user"]["email"], "ann.lee@example.org");
    assert_eq!(user["user"]["name"], "Ann Lee");
    assert_eq!(user["user"]["role"], "user");
}

/// No user enumeration through registration: a taken address (in any case) gets the very
/// same answer as a new one — status, headers that matter, body — after the same password
/// hashing, and the account is unchanged.
#[tokio::test]
async fn registering_a_taken_email_in_any_case_answers_exactly_as_a_new_one() {
    let app = TestApp::spawn().await;
    let first = app.register("ann@example.org", PASSWORD, "Ann").await;
    assert_eq!(first.status(), 202);
    let first_type = header(&first, "content-type");
    let first_body = first.bytes().await.expect("body");

    let again = app
        .register("ANN@example.org", "another good password", "Other Ann")
        .await;

    assert_eq!(again.status(), 202);
    assert_eq!(header(&again, "content-type"), first_type);
    assert_eq!(again.bytes().await.expect("body"), first_body);
    // The account is untouched: the old password still works, the new one does not.
    assert_eq!(app.login("ann@example.org", PASSWORD).await.status(), 200);
    assert_eq!(
        app.login("ann@example.org", "another good password")
            .await
            .status(),
        401
    );
}

/// Timing: a taken address costs the same Argon2id hash as a new one, so the answer does not
/// come back measurably sooner. The bound is loose on purpose (a skipped hash is 50–100×
/// faster, not 2×), so this tells a missing hash from scheduling noise.
#[tokio::test]
async fn a_taken_address_is_not_answered_faster_than_a_new_one() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("taken@example.org", PASSWORD, "Taken")
            .await
            .status(),
        202
    );
    let mut new = Vec::new();
    let mut taken = Vec::new();
    for round in 0..6 {
        let started = Instant::now();
        let response = app
            .register(&format!("new{round}@example.org"), PASSWORD, "New")
            .await;
        assert_eq!(response.status(), 202);
        new.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(
            app.register("taken@example.org", PASSWORD, "Taken")
                .await
                .status(),
            202
        );
        taken.push(started.elapsed());
    }
    new.sort();
    taken.sort();
    let (new, taken) = (new[3], taken[3]);
    assert!(
        taken * 2 > new,
        "a taken address answered in {taken:?}, a new one in {new:?} (medians)"
    );
}

#[tokio::test]
async fn registration_with_invalid_fields_returns_400_naming_each_field() {
    let app = TestApp::spawn().await;

    let response = app.register("not-an-email", "short", "   ").await;

    let problem = assert_problem(response, 400).await;
    assert_eq!(problem["type"], "/problems/validation");
    let fields: Vec<&str> = field_of_each(&problem["errors"], "field");
    assert_eq!(fields, ["email", "name", "password"]);
}

#[tokio::test]
async fn the_password_policy_follows_nist_800_63b() {
    let app = TestApp::spawn().await;
    let cases = [
        ("seven77", false),                // 7 characters
        ("eight8!8", true),                // 8 characters
        (&"x".repeat(128) as &str, true),  // the maximum
        (&"x".repeat(129) as &str, false), // one more
        ("Policy@Example.org", false),     // the e-mail address itself
        ("password123", false),            // a common password
        ("ünïcödé pässwörd", true),        // any script counts
    ];
    for (index, (password, accepted)) in cases.into_iter().enumerate() {
        let email = if password.eq_ignore_ascii_case("policy@example.org") {
            "policy@example.org".to_owned()
        } else {
            format!("policy{index}@example.org")
        };
        let status = app.register(&email, password, "Policy").await.status();
        assert_eq!(status == 202, accepted, "password {password:?} gave {status}");
        if !accepted {
            assert_eq!(status, 400);
        }
    }
}

#[tokio::test]
async fn login_returns_a_jwt_with_sub_exp_iat_kid_and_a_refresh_token() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );

    let response = app.login("ANN@example.org", PASSWORD).await;

    assert_eq!(response.status(), 200);
    assert_header(&response, "cache-control", Some("no-store"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["refresh_token"].as_str().expect("refresh").len() >= 43);
    let (jwt_header, claims) = jwt_parts(body["access_token"].as_str().expect("token"));
    assert_eq!(jwt_header["alg"], "HS256");
    assert_eq!(jwt_header["kid"], TEST_JWT_KID);
    assert_eq!(claims["sub"], body["user"]["id"]);
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert_eq!(exp - iat, 15 * 60);
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 60);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401_after_the_same_work() {
    let app = TestApp::spawn().await;
    app.register("ann@example.org", PASSWORD, "Ann").await;

    let mut wrong_password = Vec::new();
    let mut unknown_email = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..5 {
        for (email, times) in [
            ("ann@example.org", &mut wrong_password),
            ("nobody@example.org", &mut unknown_email),
        ] {
            let started = Instant::now();
            let response = app.login(email, "not the password").await;
            times.push(started.elapsed());
            let mut problem = assert_problem(response, 401).await;
            problem.as_object_mut().expect("object").remove("request_id");
            bodies.push(problem);
        }
    }

    assert!(
        bodies.windows(2).all(|pair| pair[0] == pair[1]),
        "bodies differ: {bodies:?}"
    );
    wrong_password.sort();
    unknown_email.sort();
    let (known, unknown) = (wrong_password[2], unknown_email[2]);
    // An unknown e-mail still runs a full Argon2id verification: no short cut to time.
    assert!(
        unknown * 2 >= known,
        "unknown e-mail answered in {unknown:?}, wrong password in {known:?}"
    );
    assert!(
        unknown > Duration::from_millis(5),
        "unknown e-mail answered in {unknown:?}: no hash computed"
    );
}

#[tokio::test]
async fn refresh_rotates_the_token_and_the_new_pair_works() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;

    let response = app.refresh(&user.refresh_token).await;

    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.expect("json");
    let new_refresh = pair["refresh_token"].as_str().expect("refresh");
    assert_ne!(new_refresh, user.refresh_token);
    let me = app
        .get_with_token("/api/v1/me", pair["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(me.status(), 200);
    let again = app.refresh(new_refresh).await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_session() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let rotated: Value = app.refresh(&user.refresh_token).await.json().await.expect("json");

    let replay = app.refresh(&user.refresh_token).await;

    let problem = assert_problem(replay, 401).await;
    assert_detail_contains(&problem, "revoked");
    // The thief's replay also killed the legitimate holder's newer tokens.
    let newer = app
        .refresh(rotated["refresh_token"].as_str().expect("refresh token"))
        .await;
    assert_problem(newer, 401).await;
    let access = app
        .get_with_token("/api/v1/me", rotated["access_token"].as_str().expect("token"))
        .await;
    assert_problem(access, 401).await;
    assert!(app.metrics().await.contains("auth_refresh_reuse_total 1"));
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_let_exactly_one_win() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let statuses = app.concurrent_refreshes(&user.refresh_token, 8).await;

    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;

    let response = app
        .post_with_token("/api/v1/auth/logout", &user.access_token)
        .await;

    assert_eq!(response.status(), 204);
    app.get_problem_with_token("/api/v1/me", &user.access_token, 401)
        .await;
    let refresh = app.refresh(&user.refresh_token).await;
    assert_problem(refresh, 401).await;
}

#[tokio::test]
async fn logout_all_ends_every_session_of_the_user_only() {
    let (app, laptop) = TestApp::spawn_signed_in("ann@example.org").await;
    let phone = app.sign_in("ann@example.org", PASSWORD).await;
    let bob = app.signed_in("bob@example.org").await;

    let response = app
        .post_with_token("/api/v1/auth/logout-all", &phone.access_token)
        .await;

    assert_eq!(response.status(), 204);
    for token in [&laptop.access_token, &phone.access_token] {
        app.get_problem_with_token("/api/v1/me", token, 401).await;
    }
    let refresh = app.refresh(&laptop.refresh_token).await;
    assert_problem(refresh, 401).await;
    assert_eq!(
        app.get_status_with_token("/api/v1/me", &bob.access_token).await,
        200
    );
}

#[tokio::test]
async fn a_browser_login_sets_a_secure_httponly_samesite_cookie_that_authenticates() {
    let app = TestApp::spawn().await;
    app.register("ann@example.org", PASSWORD, "Ann").await;

    let response = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "ann@example.org", "password": PASSWORD, "session_cookie": true}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let set_cookie = header(&response, "set-cookie").expect("Set-Cookie");
    let attributes = cookie_attributes(&set_cookie);
    let value = attributes.get("outgrow_session").expect("cookie").clone();
    for flag in ["httponly", "secure", "path"] {
        assert!(attributes.contains_key(flag), "{flag} missing in {set_cookie}");
    }
    assert_eq!(attributes["samesite"], "Lax");
    let cookie = format!("outgrow_session={value}");
    let me = app.get_with_header("/api/v1/me", "cookie", &cookie).await;
    assert_eq!(me.status(), 200);

    let logout = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 204);
    let cleared = cookie_attributes(&header(&logout, "set-cookie").expect("clearing cookie"));
    assert_eq!(cleared["max-age"], "0");
    let after = app.get_with_header("/api/v1/me", "cookie", &cookie).await;
    assert_problem(after, 401).await;
}

#[tokio::test]
async fn a_cross_site_write_with_the_session_cookie_is_refused() {
    let app = TestApp::spawn().await;
    app.register("ann@example.org", PASSWORD, "Ann").await;
    let (cookie, _) = app.cookie_login("ann@example.org", PASSWORD).await;

    let forged = app
        .client
        .patch(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&json!({"name": "Pwned"}))
        .send()
        .await
        .expect("patch");

    assert_problem(forged, 403).await;
    let same_site = app
        .client
        .patch(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .header("origin", app.base.clone())
        .json(&json!({"name": "Ann B"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(same_site.status(), 200);
}
