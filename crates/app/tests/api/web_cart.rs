//! The cart and checkout, as a browser without JavaScript drives them: forms, the cart cookie,
//! 303s, and the order placed once per checkout form however often it is sent.

use reqwest::header;
use serde_json::Value;

use crate::helpers::{Browser, TestApp, create_product_id, product, unique_email};

/// The value of the hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest.split('"').next().expect("value").to_owned()
}

async fn orders_of(app: &TestApp, token: &str) -> Vec<Value> {
    let page: Value = app.get_json_with_token("/api/v1/orders", token).await;
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn adding_updating_and_removing_lines_changes_the_cookie_and_the_page() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("cart-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 10).await;
    let lamp = create_product_id(&app, &admin, "Reading lamp", 8900, 10).await;
    let mut browser = Browser::new(&app);

    let added = browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "2"), ("action", "add")],
        )
        .await;
    browser
        .post(
            "/cart",
            &[("product_id", &lamp), ("quantity", "1"), ("action", "add")],
        )
        .await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "3"), ("action", "set")],
        )
        .await;
    let three_mugs = browser.get("/cart").await.html;
    browser
        .post("/cart", &[("product_id", &lamp), ("action", "remove")])
        .await;
    let mugs_only = browser.get("/cart").await.html;

    assert_eq!(added.redirect(), "/cart");
    assert!(three_mugs.contains("Quantity of Blue mug") && three_mugs.contains("Reading lamp"));
    assert!(three_mugs.contains("37.50 EUR"), "3 × 12.50: {three_mugs}");
    assert!(three_mugs.contains("126.50 EUR"), "the total: {three_mugs}");
    assert_eq!(browser.cookies.get("outgrow_cart"), Some(&format!("{mug}:3")));
    assert!(!mugs_only.contains("Reading lamp"));
    assert!(
        mugs_only.contains("Sign in to check out"),
        "anonymous visitors cannot check out"
    );
}

#[tokio::test]
async fn a_garbage_cart_cookie_shows_an_empty_cart_not_an_error() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser
        .cookies
        .insert("outgrow_cart".into(), "%%%:zz.nope".into());

    let page = browser.get("/cart").await;

    page.assert_html(200);
    assert!(page.html.contains("Your cart is empty."));
}

#[tokio::test]
async fn checkout_asks_an_anonymous_visitor_to_sign_in_first() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let answer = browser
        .post("/checkout", &[("csrf", "x"), ("idempotency_key", "k")])
        .await;

    assert_eq!(answer.redirect(), "/login?next=/checkout");
}

#[tokio::test]
async fn checkout_places_one_order_however_often_the_form_is_sent_and_empties_the_cart() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("checkout-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 10).await;
    let email = unique_email("shopper");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::signed_in(&app, &email).await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "2"), ("action", "add")],
        )
        .await;
    let cart = browser.get("/cart").await.html;
    let (csrf, key) = (hidden(&cart, "csrf"), hidden(&cart, "idempotency_key"));
    let form = [("csrf", csrf.as_str()), ("idempotency_key", key.as_str())];
    let cart_cookie = browser.cookies["outgrow_cart"].clone();

    let first = browser.post("/checkout", &form).await;
    // A double click: the same form again, sent with the cart the browser had then.
    browser.cookies.insert("outgrow_cart".into(), cart_cookie);
    let second = browser.post("/checkout", &form).await;

    let orders = orders_of(&app, &buyer.access_token).await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    let id = orders[0]["id"].as_str().expect("id");
    assert_eq!(first.redirect(), format!("/account/orders?placed={id}"));
    assert_eq!(
        second.redirect(),
        first.redirect(),
        "the replay leads to the same order"
    );
    assert_eq!(product(&app, &mug).await["stock"], 8);
    assert!(
        !browser.cookies.contains_key("outgrow_cart"),
        "the cart was emptied"
    );
}

#[tokio::test]
async fn checkout_with_a_wrong_csrf_token_is_refused_and_places_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("csrf-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 10).await;
    let email = unique_email("victim");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::signed_in(&app, &email).await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "1"), ("action", "add")],
        )
        .await;

    let forged = browser
        .post("/checkout", &[("csrf", "00ff"), ("idempotency_key", "k-1")])
        .await;
    let missing = browser.post("/checkout", &[("idempotency_key", "k-2")]).await;

    forged.assert_html(400);
    missing.assert_html(400);
    assert!(
        forged.html.contains("did not come from this site"),
        "{}",
        forged.html
    );
    assert!(orders_of(&app, &buyer.access_token).await.is_empty());
}

#[tokio::test]
async fn more_than_the_stock_is_explained_next_to_its_line_and_places_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("stock-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 2).await;
    let email = unique_email("eager");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::signed_in(&app, &email).await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "5"), ("action", "add")],
        )
        .await;
    let cart = browser.get("/cart").await.html;
    let (csrf, key) = (hidden(&cart, "csrf"), hidden(&cart, "idempotency_key"));

    let refused = browser
        .post("/checkout", &[("csrf", &csrf), ("idempotency_key", &key)])
        .await;

    assert!(
        cart.contains(&format!("id=\"error-{mug}\"")) && cart.contains("Only 2 left."),
        "{cart}"
    );
    refused.assert_html(409);
    assert!(
        refused
            .html
            .contains(&format!("aria-describedby=\"error-{mug}\"")),
        "{}",
        refused.html
    );
    assert!(refused.html.contains("Only 2 left."));
    assert!(orders_of(&app, &buyer.access_token).await.is_empty());
    assert!(browser.cookies.contains_key("outgrow_cart"), "the cart is kept");
}

#[tokio::test]
async fn a_cross_site_checkout_with_the_session_cookie_gets_a_403_page() {
    let app = TestApp::spawn().await;
    let email = unique_email("csrf-target");
    let buyer = app.signed_in(&email).await;
    let browser = Browser::signed_in(&app, &email).await;

    let response = app
        .client
        .post(app.url("/checkout"))
        .header(header::ACCEPT, "text/html")
        .header(header::ORIGIN, "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header(header::COOKIE, browser.session_cookie())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("idempotency_key=k")
        .send()
        .await
        .expect("request");

    assert_eq!(response.status(), 403);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("text")
            .starts_with("text/html")
    );
    assert!(orders_of(&app, &buyer.access_token).await.is_empty());
}

#[tokio::test]
async fn too_many_sign_in_attempts_get_a_429_page_with_retry_after() {
    let app = TestApp::with_settings(&[("OUTGROW_RATE_LIMIT_AUTH", "2/1m")]).await;
    let mut browser = Browser::new(&app);

    let mut pages = Vec::new();
    for _ in 0..3 {
        pages.push(
            browser
                .post("/login", &[("email", "a@example.org"), ("password", "x")])
                .await,
        );
    }
    let api = app
        .post_json(
            "/api/v1/auth/login",
            &serde_json::json!({"email": "a@example.org", "password": "x"}),
        )
        .await;

    let statuses: Vec<u16> = pages.iter().map(|page| page.status).collect();
    pages[2].assert_html(429);
    assert!(pages[2].html.contains("Too many requests"), "{statuses:?}");
    assert_eq!(api.status(), 429, "the API shares the auth policy's budget");
    assert_eq!(api.headers()[header::CONTENT_TYPE], "application/problem+json");
}
