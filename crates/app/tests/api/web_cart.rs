//! The cart and checkout, as a browser without JavaScript drives them: forms, the cart cookie,
//! 303s, and the order placed once per checkout form however often it is sent.

use reqwest::header;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, create_product_id, product, unique_email};

/// A browser's view of one site: the cookies it holds.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().expect("text").split(';').next().expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(known, _)| known != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        let response = self
            .app
            .client
            .get(self.app.url(path))
            .header(header::ACCEPT, "text/html")
            .header(header::COOKIE, self.cookie_header())
            .send()
            .await
            .expect("request");
        self.keep_cookies(&response);
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    /// Posts `form` like a same-origin browser form; returns the status, the `Location` and
    /// the body.
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header(header::ACCEPT, "text/html")
            .header(header::ORIGIN, &self.app.base)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(form))
            .send()
            .await
            .expect("request");
        self.keep_cookies(&response);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|value| value.to_str().expect("text").to_owned());
        (
            response.status().as_u16(),
            location,
            response.text().await.expect("body"),
        )
    }

    /// Signs in through the API's cookie login (the sign-in page is tested on its own).
    async fn sign_in(&mut self, email: &str) {
        let (pair, _) = self.app.cookie_login(email, PASSWORD).await;
        let (name, value) = pair.split_once('=').expect("pair");
        self.cookies.push((name.to_owned(), value.to_owned()));
    }
}

/// `form` as `application/x-www-form-urlencoded`.
pub fn form_body(form: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (byte as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    form.iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

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

    let (status, location, _) = browser
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
    let (_, three_mugs) = browser.get("/cart").await;
    browser
        .post("/cart", &[("product_id", &lamp), ("action", "remove")])
        .await;
    let (_, mugs_only) = browser.get("/cart").await;

    assert_eq!((status, location.as_deref()), (303, Some("/cart")));
    assert!(three_mugs.contains("Quantity of Blue mug") && three_mugs.contains("Reading lamp"));
    assert!(three_mugs.contains("37.50 EUR"), "3 × 12.50: {three_mugs}");
    assert!(three_mugs.contains("126.50 EUR"), "the total: {three_mugs}");
    assert_eq!(browser.cookie("outgrow_cart"), Some(format!("{mug}:3").as_str()));
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
        .push(("outgrow_cart".into(), "%%%:zz.nope".into()));

    let (status, html) = browser.get("/cart").await;

    assert_eq!(status, 200);
    assert!(html.contains("Your cart is empty."));
}

#[tokio::test]
async fn checkout_asks_an_anonymous_visitor_to_sign_in_first() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let (status, location, _) = browser
        .post("/checkout", &[("csrf", "x"), ("idempotency_key", "k")])
        .await;

    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/login?next=/checkout"));
}

#[tokio::test]
async fn checkout_places_one_order_however_often_the_form_is_sent_and_empties_the_cart() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("checkout-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 10).await;
    let email = unique_email("shopper");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&email).await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "2"), ("action", "add")],
        )
        .await;
    let (_, cart) = browser.get("/cart").await;
    let (csrf, key) = (hidden(&cart, "csrf"), hidden(&cart, "idempotency_key"));
    let form = [("csrf", csrf.as_str()), ("idempotency_key", key.as_str())];
    let cart_cookie = browser.cookie("outgrow_cart").expect("a cart").to_owned();

    let (first, first_location, _) = browser.post("/checkout", &form).await;
    // A double click: the same form again, sent with the cart the browser had then.
    browser.cookies.push(("outgrow_cart".into(), cart_cookie));
    let (second, second_location, _) = browser.post("/checkout", &form).await;

    let orders = orders_of(&app, &buyer.access_token).await;
    assert_eq!((first, second), (303, 303));
    assert_eq!(orders.len(), 1, "{orders:?}");
    let id = orders[0]["id"].as_str().expect("id");
    assert_eq!(first_location, Some(format!("/account/orders?placed={id}")));
    assert_eq!(
        second_location, first_location,
        "the replay leads to the same order"
    );
    assert_eq!(product(&app, &mug).await["stock"], 8);
    assert_eq!(browser.cookie("outgrow_cart"), None, "the cart was emptied");
}

#[tokio::test]
async fn checkout_with_a_wrong_csrf_token_is_refused_and_places_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("csrf-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 10).await;
    let email = unique_email("victim");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&email).await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "1"), ("action", "add")],
        )
        .await;

    let (forged, _, page) = browser
        .post("/checkout", &[("csrf", "00ff"), ("idempotency_key", "k-1")])
        .await;
    let (missing, _, _) = browser.post("/checkout", &[("idempotency_key", "k-2")]).await;

    assert_eq!((forged, missing), (400, 400));
    assert!(page.contains("did not come from this site"), "{page}");
    assert!(orders_of(&app, &buyer.access_token).await.is_empty());
}

#[tokio::test]
async fn more_than_the_stock_is_explained_next_to_its_line_and_places_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("stock-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 2).await;
    let email = unique_email("eager");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&email).await;
    browser
        .post(
            "/cart",
            &[("product_id", &mug), ("quantity", "5"), ("action", "add")],
        )
        .await;
    let (_, cart) = browser.get("/cart").await;
    let form = [
        ("csrf", hidden(&cart, "csrf")),
        ("idempotency_key", hidden(&cart, "idempotency_key")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(name, value)| (*name, value.as_str())).collect();

    let (status, _, page) = browser.post("/checkout", &form).await;

    assert!(
        cart.contains(&format!("id=\"error-{mug}\"")) && cart.contains("Only 2 left."),
        "{cart}"
    );
    assert_eq!(status, 409);
    assert!(
        page.contains(&format!("aria-describedby=\"error-{mug}\"")),
        "{page}"
    );
    assert!(page.contains("Only 2 left."));
    assert!(orders_of(&app, &buyer.access_token).await.is_empty());
    assert!(browser.cookie("outgrow_cart").is_some(), "the cart is kept");
}

#[tokio::test]
async fn a_cross_site_checkout_with_the_session_cookie_gets_a_403_page() {
    let app = TestApp::spawn().await;
    let email = unique_email("csrf-target");
    let buyer = app.signed_in(&email).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&email).await;

    let response = app
        .client
        .post(app.url("/checkout"))
        .header(header::ACCEPT, "text/html")
        .header(header::ORIGIN, "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header(header::COOKIE, browser.cookie_header())
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

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
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

    let (status, _, page) = &statuses[2];
    assert_eq!(*status, 429, "{statuses:?}");
    assert!(page.contains("Too many requests"), "{page}");
    assert_eq!(api.status(), 429, "the API shares the auth policy's budget");
    assert_eq!(api.headers()[header::CONTENT_TYPE], "application/problem+json");
}
