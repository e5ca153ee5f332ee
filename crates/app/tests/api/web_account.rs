//! The account pages, driven like a browser without JavaScript: GET a form, read its CSRF
//! token, POST it with the cookies and an `Origin`, follow the 303, read the page.

use std::{collections::BTreeMap, io::Cursor};

use serde_json::json;

use crate::helpers::*;

/// A browser without JavaScript: it keeps cookies and sends `Origin` on its posts.
struct Browser<'a> {
    app: &'a TestApp,
    cookies: BTreeMap<String, String>,
}

/// A page as the browser received it.
struct Page {
    status: u16,
    location: Option<String>,
    html: String,
}

impl Page {
    /// The first form's CSRF token on the page.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .html
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field: {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').expect("end of the token");
        self.html[start..start + end].to_owned()
    }

    /// Asserts a 303 and returns where it goes.
    #[track_caller]
    fn redirect(&self) -> &str {
        assert_eq!(self.status, 303, "{}", self.html);
        self.location.as_deref().expect("Location")
    }

    /// Asserts `status` and an HTML body.
    #[track_caller]
    fn assert_html(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.html);
        assert!(self.html.starts_with("<!doctype html>"), "{}", self.html);
    }
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    /// A browser already signed in (through the API's login with `session_cookie: true`).
    async fn signed_in(app: &'a TestApp, email: &str) -> Self {
        let mut browser = Self::new(app);
        let (pair, _) = app.cookie_login(email, PASSWORD).await;
        let (name, value) = pair.split_once('=').expect("cookie pair");
        browser.cookies.insert(name.to_owned(), value.to_owned());
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Reads the response, keeping its cookies (an expired one is forgotten).
    async fn receive(&mut self, response: reqwest::Response) -> Page {
        for set_cookie in response.headers().get_all("set-cookie") {
            let set_cookie = set_cookie.to_str().expect("ascii cookie");
            let (name, value) = set_cookie
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .expect("cookie pair");
            if value.is_empty()
                || cookie_attributes(set_cookie).get("max-age").map(String::as_str) == Some("0")
            {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: header(&response, "location"),
            html: response.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let response = self
            .app
            .client
            .get(self.app.url(path))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.receive(response).await
    }

    /// Posts `fields` as `application/x-www-form-urlencoded`.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            path,
            "application/x-www-form-urlencoded".to_owned(),
            body.into_bytes(),
        )
        .await
    }

    /// Posts `parts` (name, file name for a file part, bytes) as `multipart/form-data`, in order.
    async fn post_multipart(&mut self, path: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Page {
        const BOUNDARY: &str = "outgrow-web-test-boundary";
        let mut body = Vec::new();
        for (name, file_name, bytes) in parts {
            let disposition = match file_name {
                Some(file_name) => format!(
                    "form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream"
                ),
                None => format!("form-data; name=\"{name}\""),
            };
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.send(path, format!("multipart/form-data; boundary={BOUNDARY}"), body)
            .await
    }

    async fn send(&mut self, path: &str, content_type: String, body: Vec<u8>) -> Page {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header("accept", "text/html")
            .header("origin", &self.app.base)
            .header("cookie", self.cookie_header())
            .header("content-type", content_type)
            // A refused upload leaves its body unread and the server closes the connection:
            // no later request may find it in the pool.
            .header("connection", "close")
            .body(body)
            .send()
            .await
            .expect("POST");
        self.receive(response).await
    }

    /// Signs in through the form, asking to come back to `next`.
    async fn sign_in(&mut self, email: &str, password: &str, next: &str) -> Page {
        let form = self.get(&format!("/login?next={}", encode(next))).await;
        form.assert_html(200);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("next", next),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    /// The session cookie's `name=value`, as an API client would send it.
    fn session_cookie(&self) -> String {
        let value = self.cookies.get("outgrow_session").expect("a session cookie");
        format!("outgrow_session={value}")
    }
}

/// Percent-encodes a form value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The `data-order-id`s on an orders page, in order.
fn order_ids(html: &str) -> Vec<String> {
    html.split("data-order-id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().expect("id").to_owned())
        .collect()
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("encode");
    bytes
}

#[tokio::test]
async fn registering_through_the_form_signs_in_and_shows_the_account_page() {
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

    assert_eq!(created.redirect(), "/account");
    let account = browser.get("/account").await;
    account.assert_html(200);
    assert!(account.html.contains("ann@example.org"), "{}", account.html);
    assert!(account.html.contains("value=\"Ann Lee\""), "{}", account.html);
    assert!(account.html.contains(">Sign out</button>"), "{}", account.html);
}

#[tokio::test]
async fn registration_mistakes_are_shown_next_to_their_field_and_a_taken_email_is_a_conflict() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        201
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
    taken.assert_html(409);
    assert!(
        taken.html.contains(
            "<p class=\"error\" id=\"email-error\">An account with this e-mail address already exists"
        ),
        "{}",
        taken.html
    );
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
        201
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

#[tokio::test]
async fn signing_in_goes_to_next_and_refuses_an_external_next() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        201
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
        201
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
        201
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

#[tokio::test]
async fn saving_the_profile_renames_and_a_wrong_csrf_token_changes_nothing() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        201
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

#[tokio::test]
async fn my_orders_lists_only_my_orders_and_cancelling_one_puts_the_stock_back() {
    let app = TestApp::spawn().await;
    let (mug, ann) = product_and_buyer(&app, "Mug", 1250, 10).await;
    let bob = app.signed_in("bob@example.org").await;
    let mut mine = Vec::new();
    for quantity in [1, 2] {
        let placed = order(
            &app,
            &ann,
            json!([{"product_id": mug, "quantity": quantity}]),
            None,
        )
        .await;
        mine.push(
            json_body(placed, 201).await["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    let theirs = order(&app, &bob, json!([{"product_id": mug, "quantity": 3}]), None).await;
    let theirs = json_body(theirs, 201).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(product(&app, &mug).await["stock"], 4);
    let mut browser = Browser::signed_in(&app, "ann@example.org").await;

    let page = browser.get(&format!("/account/orders?placed={}", mine[1])).await;

    page.assert_html(200);
    assert!(page.html.contains("<h1>Your orders</h1>"));
    assert!(
        page.html
            .contains("Order placed. A confirmation e-mail is on its way.")
    );
    assert_eq!(
        order_ids(&page.html),
        vec![mine[1].clone(), mine[0].clone()],
        "newest first"
    );
    assert!(!page.html.contains(&theirs), "another user's order is not listed");
    assert!(
        page.html.contains("<td>Mug</td>") && page.html.contains("25.00 EUR"),
        "{}",
        page.html
    );

    let cancelled = browser
        .post(
            &format!("/account/orders/{}/cancel", mine[1]),
            &[("csrf", &page.csrf())],
        )
        .await;

    assert_eq!(
        cancelled.redirect(),
        format!("/account/orders?cancelled={}", mine[1])
    );
    let after = browser.get(cancelled.redirect()).await;
    assert!(after.html.contains("Order cancelled"), "{}", after.html);
    assert!(
        after
            .html
            .contains("<span class=\"status status-cancelled\">cancelled</span>")
    );
    assert_eq!(
        after.html.matches(">Cancel order</button>").count(),
        1,
        "only the placed order can be cancelled"
    );
    assert_eq!(product(&app, &mug).await["stock"], 6, "the stock came back");
}

#[tokio::test]
async fn cancelling_another_users_order_is_a_404_page_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (mug, ann) = product_and_buyer(&app, "Mug", 1250, 10).await;
    let placed = order(&app, &ann, json!([{"product_id": mug, "quantity": 2}]), None).await;
    let ann_order = json_body(placed, 201).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.signed_in("bob@example.org").await;
    let mut bob = Browser::signed_in(&app, "bob@example.org").await;
    let csrf = bob.get("/account").await.csrf();

    let refused = bob
        .post(&format!("/account/orders/{ann_order}/cancel"), &[("csrf", &csrf)])
        .await;
    let forged = bob
        .post("/account/orders/not-an-id/cancel", &[("csrf", &csrf)])
        .await;

    refused.assert_html(404);
    forged.assert_html(404);
    let still = app
        .get_json_with_token(&format!("/api/v1/orders/{ann_order}"), &ann.access_token)
        .await;
    assert_eq!(still["status"], "placed");
    assert_eq!(product(&app, &mug).await["stock"], 8);
}

#[tokio::test]
async fn an_export_request_shows_up_with_its_status() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        201
    );
    let mut browser = Browser::signed_in(&app, "ann@example.org").await;
    let form = browser.get("/account/exports").await;
    form.assert_html(200);
    assert!(form.html.contains("No exports yet."));

    let requested = browser
        .post("/account/exports", &[("format", "json"), ("csrf", &form.csrf())])
        .await;
    let wrong = browser
        .post("/account/exports", &[("format", "xml"), ("csrf", &form.csrf())])
        .await;

    assert_eq!(requested.redirect(), "/account/exports?requested=1");
    wrong.assert_html(400);
    assert!(wrong.html.contains("id=\"format-error\""), "{}", wrong.html);
    let page = browser.get("/account/exports?requested=1").await;
    assert!(page.html.contains("Export requested."), "{}", page.html);
    assert_eq!(page.html.matches("data-export-id=").count(), 1, "{}", page.html);
    assert!(
        page.html.contains("status-pending\">pending<") || page.html.contains("status-ready\">ready<"),
        "{}",
        page.html
    );
}

#[tokio::test]
async fn an_image_uploaded_through_the_form_appears_in_the_list() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        201
    );
    let mut browser = Browser::signed_in(&app, "ann@example.org").await;
    let csrf = browser.get("/account/uploads").await.csrf();
    let image = png(12, 8);

    let forged = browser
        .post_multipart(
            "/account/uploads",
            &[("csrf", None, b"00"), ("file", Some("a.png"), &image)],
        )
        .await;
    let uploaded = browser
        .post_multipart(
            "/account/uploads",
            &[
                ("csrf", None, csrf.as_bytes()),
                ("public", None, b"on"),
                ("file", Some("a.png"), &image),
            ],
        )
        .await;
    let not_an_image = browser
        .post_multipart(
            "/account/uploads",
            &[
                ("csrf", None, csrf.as_bytes()),
                ("file", Some("notes.png"), b"just some text, not a picture"),
            ],
        )
        .await;

    forged.assert_html(400);
    assert_eq!(uploaded.redirect(), "/account/uploads?uploaded=1");
    not_an_image.assert_html(415);
    assert!(
        not_an_image.html.contains("id=\"file-error\""),
        "{}",
        not_an_image.html
    );
    let page = browser.get("/account/uploads?uploaded=1").await;
    assert_eq!(
        page.html.matches("data-upload-id=").count(),
        1,
        "only the accepted upload: {}",
        page.html
    );
    assert!(page.html.contains("12 × 8 px"), "{}", page.html);
    assert!(page.html.contains("Everyone"), "{}", page.html);
}

#[tokio::test]
async fn an_oversized_upload_gets_a_413_page_naming_the_limit() {
    let app = TestApp::with_settings(&[("OUTGROW_UPLOAD_LIMIT_BYTES", "100000")]).await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        201
    );
    let mut browser = Browser::signed_in(&app, "ann@example.org").await;
    let csrf = browser.get("/account/uploads").await.csrf();
    let oversized = |size: usize| {
        let mut bytes = png(10, 10);
        bytes.resize(size, 0);
        bytes
    };
    // Within the multipart slack the handler reads the file and stops at the limit; far over
    // it the guard refuses the announced length before anything is read.
    let (read, announced) = (oversized(150_000), oversized(300_000));

    let stopped = browser
        .post_multipart(
            "/account/uploads",
            &[("csrf", None, csrf.as_bytes()), ("file", Some("big.png"), &read)],
        )
        .await;
    let refused = browser
        .post_multipart(
            "/account/uploads",
            &[
                ("csrf", None, csrf.as_bytes()),
                ("file", Some("big.png"), &announced),
            ],
        )
        .await;

    for page in [&stopped, &refused] {
        page.assert_html(413);
        assert!(
            page.html.contains("The file is too large: the limit is 0.1 MB."),
            "{}",
            page.html
        );
    }
    let page = browser.get("/account/uploads").await;
    assert!(
        page.html.contains("No uploads yet."),
        "nothing was kept: {}",
        page.html
    );
}
