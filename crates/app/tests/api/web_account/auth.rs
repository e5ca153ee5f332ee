//! Registration, sign-in and sign-out through their forms.

use crate::helpers::*;

#[tokio::test]
async fn registering_through_the_form_leads_to_sign_in_and_then_the_account_page() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/register").await;
    form.assert_html(200);
    assert!(
        browser.cookies.contains_key("outgrow_csrf"),
        "the form sets the anonymous binding"
    );

    let csrf = form.csrf();
    let created = browser
        .post(
            "/register",
            &[
                ("name", "Ann Lee"),
                ("email", "ann@example.org"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;

    assert_eq!(created.redirect(), "/login?registered=true");
    assert!(
        !browser.cookies.contains_key("outgrow_session"),
        "not signed in by registering"
    );
    let login = browser.get("/login?registered=true").await;
    login.assert_html(200);
    assert!(
        login.html.contains("If this address can be registered"),
        "{}",
        login.html
    );
    let signed_in = browser.sign_in("ann@example.org", PASSWORD, "/account").await;
    assert_eq!(signed_in.redirect(), "/account");
    let account = browser.get("/account").await;
    account.assert_html(200);
    assert!(account.html.contains("ann@example.org"), "{}", account.html);
    assert!(account.html.contains("value=\"Ann Lee\""), "{}", account.html);
    assert!(account.html.contains(">Sign out</button>"), "{}", account.html);
}

#[tokio::test]
async fn registration_mistakes_are_shown_next_to_their_field_and_a_taken_email_looks_like_a_new_one() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    let mut browser = Browser::new(&app);
    let csrf = browser.get("/register").await.csrf();

    let short = browser
        .post(
            "/register",
            &[
                ("name", "Bob"),
                ("email", "bob@example.org"),
                ("password", "short"),
                ("csrf", &csrf),
            ],
        )
        .await;
    let taken = browser
        .post(
            "/register",
            &[
                ("name", "Ann"),
                ("email", "ann@example.org"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;

    short.assert_html(400);
    assert!(short.html.contains("id=\"password-error\""), "{}", short.html);
    assert!(
        short.html.contains("value=\"bob@example.org\""),
        "what was typed stays"
    );
    assert!(
        !short.html.contains("value=\"short\""),
        "the password is never sent back"
    );
    // No enumeration: the same redirect a new address gets.
    assert_eq!(taken.redirect(), "/login?registered=true");
    assert!(
        !browser.cookies.contains_key("outgrow_session"),
        "nobody was signed in"
    );
}

#[tokio::test]
async fn signing_in_with_a_wrong_password_shows_the_error_on_the_form() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    let mut browser = Browser::new(&app);

    let refused = browser
        .sign_in("ann@example.org", "not the password", "/account")
        .await;

    refused.assert_html(400);
    assert!(
        refused.html.contains("The e-mail or password is wrong."),
        "{}",
        refused.html
    );
    assert!(
        refused.html.contains("value=\"ann@example.org\""),
        "{}",
        refused.html
    );
    assert!(!browser.cookies.contains_key("outgrow_session"));
}

/// A NUL character in any form field is a 400 page before the handler reads the form: here a
/// password, which no validator looks at (a wrong one would be the form's own error).
#[tokio::test]
async fn a_form_field_holding_a_nul_character_is_a_400_page() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let refused = browser
        .sign_in("ann@example.org", "not the\0password", "/account")
        .await;
    refused.assert_html(400);
    assert!(refused.html.contains("U+0000"), "{}", refused.html);
    assert!(!refused.html.contains("The e-mail or password is wrong."));
}

#[tokio::test]
async fn signing_in_goes_to_next_and_refuses_an_external_next() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );

    let local = Browser::new(&app)
        .sign_in("ann@example.org", PASSWORD, "/account/orders")
        .await;
    let external = Browser::new(&app)
        .sign_in("ann@example.org", PASSWORD, "https://evil.example/account")
        .await;
    let protocol_relative = Browser::new(&app)
        .sign_in("ann@example.org", PASSWORD, "//evil.example")
        .await;

    assert_eq!(local.redirect(), "/account/orders");
    assert_eq!(external.redirect(), "/account");
    assert_eq!(protocol_relative.redirect(), "/account");
}

#[tokio::test]
async fn sign_in_and_registration_forms_without_their_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    let mut browser = Browser::new(&app);
    let csrf = browser.get("/login").await.csrf();

    let forged = browser
        .post(
            "/login",
            &[
                ("email", "ann@example.org"),
                ("password", PASSWORD),
                ("csrf", "00"),
            ],
        )
        .await;
    let mut cookieless = Browser::new(&app);
    let replayed = cookieless
        .post(
            "/login",
            &[
                ("email", "ann@example.org"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await;

    forged.assert_html(400);
    replayed.assert_html(400);
    assert!(!browser.cookies.contains_key("outgrow_session"));
    assert!(!cookieless.cookies.contains_key("outgrow_session"));
}

#[tokio::test]
async fn signing_out_ends_the_session_so_the_cookie_no_longer_works_on_the_api() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    let mut browser = Browser::new(&app);
    browser
        .sign_in("ann@example.org", PASSWORD, "/account")
        .await
        .redirect();
    let cookie = browser.session_cookie();
    assert_eq!(
        app.get_with_header("/api/v1/me", "cookie", &cookie)
            .await
            .status(),
        200
    );
    let csrf = browser.get("/account").await.csrf();

    let signed_out = browser.post("/logout", &[("csrf", &csrf)]).await;

    assert_eq!(signed_out.redirect(), "/");
    assert!(
        !browser.cookies.contains_key("outgrow_session"),
        "the cookie is cleared"
    );
    assert_eq!(
        app.get_with_header("/api/v1/me", "cookie", &cookie)
            .await
            .status(),
        401
    );
    assert_eq!(browser.get("/account").await.redirect(), "/login?next=/account");
}
