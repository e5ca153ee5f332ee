//! Credential stuffing and password guessing (OWASP API2): sign-in attempts are throttled per
//! account and per client address with progressive delays, and the throttle answers the same
//! whether or not the account exists.

use std::time::Duration;

use crate::helpers::*;

/// A server whose account throttle starts after `free` attempts with a 2 s first delay, and
/// whose address throttle is out of the way.
async fn per_account(free: u32) -> TestApp {
    TestApp::with_settings(&[
        (
            "OUTGROW_LOGIN_FREE_ATTEMPTS_PER_ACCOUNT",
            free.to_string().as_str(),
        ),
        ("OUTGROW_LOGIN_DELAY_BASE", "2s"),
    ])
    .await
}

/// The statuses of `count` sign-ins of `email` with a wrong password, in a row.
async fn wrong_attempts(app: &TestApp, email: &str, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(
            app.login(email, "not the password at all")
                .await
                .status()
                .as_u16(),
        );
    }
    statuses
}

#[tokio::test]
async fn an_account_is_delayed_after_its_free_attempts_even_for_the_right_password() {
    let app = per_account(3).await;
    app.signed_in("ann@example.org").await;

    // Three free attempts, a fourth that is answered but makes the next one wait.
    assert_eq!(
        wrong_attempts(&app, "ann@example.org", 4).await,
        [401, 401, 401, 401]
    );
    let early = app.login("ann@example.org", PASSWORD).await;
    let retry_after: u64 = header(&early, "retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    let problem = assert_problem(early, 429).await;
    assert_eq!(problem["type"], "/problems/rate-limited");
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");

    // After the wait the right password works, and clears the account's attempts.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(app.login("ann@example.org", PASSWORD).await.status(), 200);
    assert_eq!(wrong_attempts(&app, "ann@example.org", 3).await, [401, 401, 401]);
    // Other accounts were never slowed.
    app.signed_in("bob@example.org").await;
}

#[tokio::test]
async fn delays_grow_with_each_attempt_after_the_free_ones() {
    let app = TestApp::with_settings(&[
        ("OUTGROW_LOGIN_FREE_ATTEMPTS_PER_ACCOUNT", "1"),
        ("OUTGROW_LOGIN_DELAY_BASE", "1s"),
    ])
    .await;
    let mut waits = Vec::new();
    // Attempt 1 is free; attempt 2 makes the next wait 1 s, attempt 3 2 s, attempt 4 4 s.
    assert_eq!(wrong_attempts(&app, "nobody@example.org", 2).await, [401, 401]);
    for _ in 0..2 {
        let early = app.login("nobody@example.org", "guess").await;
        assert_eq!(early.status(), 429);
        let wait: u64 = header(&early, "retry-after")
            .expect("Retry-After")
            .parse()
            .expect("s");
        waits.push(wait);
        tokio::time::sleep(Duration::from_secs(wait)).await;
        assert_eq!(app.login("nobody@example.org", "guess").await.status(), 401);
    }
    let early = app.login("nobody@example.org", "guess").await;
    waits.push(
        header(&early, "retry-after")
            .expect("Retry-After")
            .parse()
            .expect("s"),
    );
    assert_eq!(waits, [1, 2, 4], "doubling delays");
}

/// No enumeration through the throttle: an address without an account is throttled on the
/// same schedule, with the same answers, as one with an account.
#[tokio::test]
async fn the_throttle_treats_unknown_and_known_accounts_alike() {
    let app = per_account(2).await;
    app.signed_in("ann@example.org").await;
    let known = wrong_attempts(&app, "ann@example.org", 5).await;
    let unknown = wrong_attempts(&app, "nobody@example.org", 5).await;
    assert_eq!(known, [401, 401, 401, 429, 429]);
    assert_eq!(unknown, known);
    let refused_known = assert_problem(app.login("ann@example.org", "x").await, 429).await;
    let refused_unknown = assert_problem(app.login("nobody@example.org", "x").await, 429).await;
    assert_eq!(refused_known["detail"], refused_unknown["detail"]);
}

#[tokio::test]
async fn one_address_guessing_across_many_accounts_is_delayed() {
    let app = TestApp::with_settings(&[
        ("OUTGROW_LOGIN_FREE_ATTEMPTS_PER_ADDRESS", "4"),
        ("OUTGROW_LOGIN_DELAY_BASE", "2s"),
    ])
    .await;
    app.signed_in("ann@example.org").await;
    // Each account is tried once (under its own limit); the address pays for all of them.
    let mut statuses = Vec::new();
    for index in 0..6 {
        let email = format!("victim{index}@example.org");
        statuses.push(app.login(&email, "Summer2026!").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    // Successes count nothing against the address: a shared address's honest users are slowed
    // only by its failures (here, once the delay they earned has passed).
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..3 {
        assert_eq!(app.login("ann@example.org", PASSWORD).await.status(), 200);
    }
}

#[tokio::test]
async fn the_sign_in_page_says_how_long_to_wait() {
    let app = per_account(1).await;
    let mut browser = Browser::new(&app);
    for _ in 0..2 {
        let page = browser
            .sign_in("ann@example.org", "wrong wrong wrong", "/account")
            .await;
        page.assert_html(400);
    }
    let page = browser
        .sign_in("ann@example.org", "wrong wrong wrong", "/account")
        .await;
    page.assert_html(429);
    assert!(
        page.html.contains("Too many sign-in attempts. Try again in"),
        "{}",
        page.html
    );
}

/// With Redis the attempts are shared: guessing on one instance is delayed on another.
#[tokio::test]
async fn scaled_only_the_throttle_is_shared_by_every_instance() {
    require_scaled();
    let settings = [
        ("OUTGROW_LOGIN_FREE_ATTEMPTS_PER_ACCOUNT", "2"),
        ("OUTGROW_LOGIN_DELAY_BASE", "5s"),
    ];
    let (a, b) = TestApp::pair(&settings).await;
    a.signed_in("ann@example.org").await;
    assert_eq!(wrong_attempts(&a, "ann@example.org", 3).await, [401, 401, 401]);
    assert_problem(b.login("ann@example.org", PASSWORD).await, 429).await;
}
