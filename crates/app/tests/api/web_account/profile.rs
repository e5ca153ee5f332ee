//! The profile form, and the account pages' redirect to sign in.

use crate::helpers::*;

#[tokio::test]
async fn saving_the_profile_renames_and_a_wrong_csrf_token_changes_nothing() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
    );
    let mut browser = Browser::signed_in(&app, "ann@example.org").await;
    let csrf = browser.get("/account").await.csrf();

    let forged = browser
        .post("/account", &[("name", "Mallory"), ("csrf", "deadbeef")])
        .await;
    let empty = browser.post("/account", &[("name", ""), ("csrf", &csrf)]).await;
    let wrong_password = browser
        .post(
            "/account",
            &[
                ("name", "Ann"),
                ("current_password", "not it"),
                ("password", "a brand new passphrase"),
                ("csrf", &csrf),
            ],
        )
        .await;
    let saved = browser
        .post("/account", &[("name", "Ann Lee"), ("csrf", &csrf)])
        .await;

    forged.assert_html(400);
    empty.assert_html(400);
    assert!(
        empty.html.contains("<p class=\"error\" id=\"name-error\">Name "),
        "{}",
        empty.html
    );
    wrong_password.assert_html(400);
    assert!(
        wrong_password.html.contains("The current password is wrong."),
        "{}",
        wrong_password.html
    );
    assert_eq!(saved.redirect(), "/account?saved=1");
    let page = browser.get("/account?saved=1").await;
    assert!(page.html.contains("Profile saved"), "{}", page.html);
    let me = json_body(
        app.get_with_header("/api/v1/me", "cookie", &browser.session_cookie())
            .await,
        200,
    )
    .await;
    assert_eq!(me["name"], "Ann Lee", "only the real form changed the name");
}

#[tokio::test]
async fn account_pages_send_visitors_who_are_not_signed_in_to_sign_in() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    for path in [
        "/account",
        "/account/orders",
        "/account/exports",
        "/account/uploads",
    ] {
        assert_eq!(browser.get(path).await.redirect(), format!("/login?next={path}"));
    }
}
