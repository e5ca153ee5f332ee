//! The admin pages over the real binary, driven like a browser without JavaScript: GET a page
//! with the session cookie, read the CSRF token from its form, POST the form (multipart for
//! the product form) with `Origin`, follow the 303 and read the page it leads to.

use std::time::Duration;

use serde_json::json;

use crate::{
    helpers::*,
    services::{SmtpSink, closed_port},
};

const BOUNDARY: &str = "outgrow-admin-form";

/// A browser's session on `app`: its cookie, and a client that shows redirects.
struct Browser<'a> {
    app: &'a TestApp,
    cookie: String,
    client: reqwest::Client,
}

impl<'a> Browser<'a> {
    /// Signs `email` in with the session cookie (the account must exist).
    async fn of(app: &'a TestApp, email: &str) -> Self {
        let (cookie, _) = app.cookie_login(email, PASSWORD).await;
        Self::with_cookie(app, cookie)
    }

    /// Not signed in.
    fn anonymous(app: &'a TestApp) -> Self {
        Self::with_cookie(app, String::new())
    }

    fn with_cookie(app: &'a TestApp, cookie: String) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self { app, cookie, client }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, self.app.url(path))
            .header("accept", "text/html");
        if self.cookie.is_empty() {
            request
        } else {
            request.header("cookie", &self.cookie)
        }
    }

    /// `GET path`: the response itself.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("get")
    }

    /// `GET path`, asserting a 200; the page's HTML.
    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        let status = response.status();
        let body = response.text().await.expect("body");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// `POST path` with a form body of `content_type`, from this site.
    async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.request(reqwest::Method::POST, path)
            .header("origin", &self.app.base)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("post")
    }

    /// `POST path` with url-encoded `fields`.
    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.post(path, "application/x-www-form-urlencoded", body.into_bytes())
            .await
    }

    /// `POST path` with the product form's multipart body.
    async fn post_product(&self, path: &str, form: &ProductForm<'_>) -> reqwest::Response {
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        self.post(path, &content_type, form.body()).await
    }
}

/// The product form as a browser sends it: csrf first, then the fields, then the file.
struct ProductForm<'a> {
    csrf: &'a str,
    name: &'a str,
    price: &'a str,
    currency: &'a str,
    stock: &'a str,
    image: Option<Vec<u8>>,
}

impl<'a> ProductForm<'a> {
    fn valid(csrf: &'a str) -> Self {
        Self {
            csrf,
            name: "Desk lamp",
            price: "12.50",
            currency: "EUR",
            stock: "4",
            image: None,
        }
    }

    fn body(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let fields = [
            ("csrf", self.csrf),
            ("name", self.name),
            ("description", "Warm light."),
            ("price", self.price),
            ("currency", self.currency),
            ("stock", self.stock),
        ];
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        // A browser sends an empty file part when no file is chosen.
        let (file_name, bytes) = match &self.image {
            Some(bytes) => ("lamp.png", bytes.as_slice()),
            None => ("", &[][..]),
        };
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        body
    }
}

/// The CSRF token of the first form on a page.
fn csrf_of(html: &str) -> String {
    let start = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no csrf field in {html}"))
        + "name=\"csrf\" value=\"".len();
    html[start..].split('"').next().expect("token").to_owned()
}

/// The `Location` of a 303.
fn see_other(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 303, "expected a 303");
    header(response, "location").expect("location")
}

/// An app with an admin (`admin@example.org`) and a user (`ann@example.org`).
async fn app_with_admin(settings: &[(&str, &str)]) -> TestApp {
    let app = TestApp::with_settings(settings).await;
    app.admin("admin@example.org").await;
    app.signed_in("ann@example.org").await;
    app
}

/// The ids of the products the API lists.
async fn product_ids(app: &TestApp) -> Vec<String> {
    let page = app.get_json("/api/v1/products").await;
    field_of_each(&page["items"], "id")
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_admin_page_refuses_users_with_403_and_sends_anonymous_visitors_to_sign_in() {
    let app = app_with_admin(&[]).await;
    let user = Browser::of(&app, "ann@example.org").await;
    let anonymous = Browser::anonymous(&app);
    let some_id = uuid::Uuid::now_v7();
    let pages = [
        "/admin/products".to_owned(),
        "/admin/products/new".to_owned(),
        format!("/admin/products/{some_id}"),
        "/admin/users".to_owned(),
        "/admin/jobs".to_owned(),
        "/admin/jobs?state=dead".to_owned(),
        "/admin/analytics".to_owned(),
    ];
    for path in &pages {
        let refused = user.get(path).await;
        assert_eq!(refused.status(), 403, "{path}");
        assert!(
            refused.text().await.expect("body").contains("for administrators"),
            "{path}"
        );
        let redirected = anonymous.get(path).await;
        let location = see_other(&redirected);
        assert!(location.starts_with("/login?next=/admin/"), "{path}: {location}");
    }
    let retry = user
        .post_form(&format!("/admin/jobs/{some_id}/retry"), &[("csrf", "x")])
        .await;
    assert_eq!(retry.status(), 403);
}

#[tokio::test]
async fn an_admin_creates_a_product_with_an_image_and_its_edit_page_shows_the_variants() {
    let app = app_with_admin(&[]).await;
    let admin = Browser::of(&app, "admin@example.org").await;
    let form = admin.page("/admin/products/new").await;
    for label in ["Name", "Description", "Price", "Currency", "Stock", "Image"] {
        assert!(form.contains(&format!(">{label}</label>")), "label {label}");
    }
    let csrf = csrf_of(&form);

    let created = admin
        .post_product(
            "/admin/products",
            &ProductForm {
                image: Some(png(600, 450)),
                ..ProductForm::valid(&csrf)
            },
        )
        .await;

    let location = see_other(&created);
    assert!(location.ends_with("?saved=1"), "{location}");
    let id = location
        .trim_start_matches("/admin/products/")
        .trim_end_matches("?saved=1")
        .to_owned();
    assert!(admin.page(&location).await.contains("Product saved"));
    let edit = poll_until(
        "the variants to show",
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            let page = admin.page(&format!("/admin/products/{id}")).await;
            if page.contains("<figure>") {
                Ok(page)
            } else {
                Err(page)
            }
        },
    )
    .await;
    assert!(edit.contains("<h2 id=\"variants-heading\">Variants</h2>"));
    assert!(edit.contains("width=\"400\" height=\"300\""), "{edit}");
    assert!(edit.contains("400 × 300 px · "), "{edit}");
    let product = product(&app, &id).await;
    assert_eq!(
        (product["name"].as_str(), product["price_minor"].as_i64()),
        (Some("Desk lamp"), Some(1250))
    );
    assert!(
        product["image"]["srcset"]
            .as_str()
            .is_some_and(|srcset| srcset.contains("400w")),
        "{product}"
    );
    let list = admin.page("/admin/products").await;
    assert!(list.contains("Desk lamp") && list.contains("Ready"), "{list}");
}

#[tokio::test]
async fn an_admin_changes_a_product_through_its_edit_form() {
    let app = app_with_admin(&[]).await;
    let admin = Browser::of(&app, "admin@example.org").await;
    let csrf = csrf_of(&admin.page("/admin/products/new").await);
    let created = admin
        .post_product("/admin/products", &ProductForm::valid(&csrf))
        .await;
    let edit_path = see_other(&created).trim_end_matches("?saved=1").to_owned();
    let edit = admin.page(&edit_path).await;
    assert!(edit.contains("value=\"12.50\"") && edit.contains("This product has no image yet."));

    let changed = admin
        .post_product(
            &edit_path,
            &ProductForm {
                price: "15",
                stock: "9",
                ..ProductForm::valid(&csrf_of(&edit))
            },
        )
        .await;

    assert_eq!(see_other(&changed), format!("{edit_path}?saved=1"));
    let id = edit_path.trim_start_matches("/admin/products/");
    let product = product(&app, id).await;
    assert_eq!(
        (product["price_minor"].as_i64(), product["stock"].as_i64()),
        (Some(1500), Some(9))
    );
}

#[tokio::test]
async fn invalid_fields_are_shown_next_to_each_field_with_what_was_typed_and_nothing_is_created() {
    let app = app_with_admin(&[]).await;
    let admin = Browser::of(&app, "admin@example.org").await;
    let csrf = csrf_of(&admin.page("/admin/products/new").await);

    let refused = admin
        .post_product(
            "/admin/products",
            &ProductForm {
                name: "",
                price: "12,50",
                currency: "EURO",
                image: Some(png(20, 20)),
                ..ProductForm::valid(&csrf)
            },
        )
        .await;

    assert_eq!(refused.status(), 400);
    let page = refused.text().await.expect("body");
    for field in ["name", "price", "currency"] {
        assert!(
            page.contains(&format!(
                "aria-invalid=\"true\" aria-describedby=\"{field}-error\""
            )),
            "{field}: {page}"
        );
        assert!(
            page.contains(&format!("<p class=\"error\" id=\"{field}-error\">")),
            "{field}"
        );
    }
    assert!(page.contains("Enter a price like 12 or 12.50."));
    assert!(
        page.contains("value=\"12,50\"") && page.contains("value=\"EURO\""),
        "typed values kept"
    );
    assert!(
        !page.contains("id=\"stock-error\""),
        "a valid field has no message"
    );
    assert!(product_ids(&app).await.is_empty());
}

#[tokio::test]
async fn a_product_form_with_a_wrong_or_missing_csrf_token_is_refused_and_creates_nothing() {
    let app = app_with_admin(&[]).await;
    let admin = Browser::of(&app, "admin@example.org").await;
    let someone_elses = csrf_of(
        &Browser::of(&app, "admin@example.org")
            .await
            .page("/admin/products/new")
            .await,
    );

    for token in [someone_elses.as_str(), "", "not-hex"] {
        let refused = admin
            .post_product(
                "/admin/products",
                &ProductForm {
                    image: Some(png(20, 20)),
                    ..ProductForm::valid(token)
                },
            )
            .await;
        assert_eq!(refused.status(), 400, "token {token:?}");
        assert!(
            refused
                .text()
                .await
                .expect("body")
                .contains("This form has expired")
        );
    }
    assert!(product_ids(&app).await.is_empty());
}

/// The ids (`data-job-id`) and states of the rows of a job list page.
fn job_rows(page: &str) -> Vec<(String, String)> {
    page.split("<tr data-job-id=\"")
        .skip(1)
        .map(|row| {
            let id = row.split('"').next().expect("id").to_owned();
            let state = row
                .split("<span class=\"status\">")
                .nth(1)
                .and_then(|rest| rest.split('<').next())
                .expect("state")
                .to_owned();
            (id, state)
        })
        .collect()
}

#[tokio::test]
async fn the_jobs_page_filters_by_state_and_sends_a_dead_job_back_to_the_queue() {
    // Mail to a closed port fails: the welcome e-mail of a registration dies quickly.
    let port = closed_port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = app_with_admin(&[
        ("OUTGROW_SMTP_URL", smtp.as_str()),
        ("OUTGROW_JOB_BACKOFF_BASE", "50ms"),
        ("OUTGROW_JOB_BACKOFF_MAX", "200ms"),
        ("OUTGROW_JOB_POLL_INTERVAL", "20ms"),
    ])
    .await;
    let admin = Browser::of(&app, "admin@example.org").await;
    let dead_page = poll_until(
        "a job to die",
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            let page = admin.page("/admin/jobs?state=dead").await;
            if job_rows(&page).is_empty() {
                Err(page)
            } else {
                Ok(page)
            }
        },
    )
    .await;
    let rows = job_rows(&dead_page);
    assert!(rows.iter().all(|(_, state)| state == "dead"), "{rows:?}");
    assert!(dead_page.contains(">State</label>"));
    assert!(dead_page.contains("<option value=\"dead\" selected>"));
    let (id, _) = rows[0].clone();
    assert!(
        !job_rows(&admin.page("/admin/jobs?state=done").await)
            .iter()
            .any(|(done, _)| *done == id)
    );
    let forged = admin
        .post_form(
            &format!("/admin/jobs/{id}/retry"),
            &[("csrf", "0000"), ("state", "dead")],
        )
        .await;
    assert_eq!(forged.status(), 400);
    assert!(
        job_rows(&admin.page("/admin/jobs?state=dead").await)
            .iter()
            .any(|(dead, _)| *dead == id)
    );

    // The mail server comes back; the operator presses "Retry".
    let sink = SmtpSink::up_on(port, 0);
    let retried = admin
        .post_form(
            &format!("/admin/jobs/{id}/retry"),
            &[("csrf", &csrf_of(&dead_page)), ("state", "dead")],
        )
        .await;

    assert_eq!(see_other(&retried), "/admin/jobs?state=dead&done=retried");
    let after = admin.page("/admin/jobs?state=dead&done=retried").await;
    assert!(after.contains("Job sent back to the queue"), "{after}");
    poll_until(
        "the retried job to be done",
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || {
            let done = admin.page("/admin/jobs?state=done").await;
            let rows = job_rows(&done);
            if rows.iter().any(|(done, _)| *done == id) {
                Ok(())
            } else {
                Err(format!("{rows:?}"))
            }
        },
    )
    .await;
    wait_until("the e-mail to arrive", Duration::from_secs(5), || {
        !sink.messages().is_empty()
    })
    .await;
}

#[tokio::test]
async fn the_users_page_lists_every_account_with_its_role() {
    let app = app_with_admin(&[]).await;
    let admin = Browser::of(&app, "admin@example.org").await;

    let page = admin.page("/admin/users").await;

    assert!(
        page.contains("<th scope=\"row\">admin@example.org</th>"),
        "{page}"
    );
    assert!(page.contains("<th scope=\"row\">ann@example.org</th>"), "{page}");
    assert!(page.contains("<td>admin</td>") && page.contains("<td>user</td>"));
    assert_eq!(admin.get("/admin/users?after=nonsense").await.status(), 400);
}

#[tokio::test]
async fn a_revalidated_admin_page_keeps_the_pages_content_security_policy() {
    let app = app_with_admin(&[]).await;
    let admin = Browser::of(&app, "admin@example.org").await;
    let first = admin.get("/admin/users").await;
    let etag = header(&first, "etag").expect("etag");

    let revalidated = admin
        .request(reqwest::Method::GET, "/admin/users")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");

    assert_eq!(revalidated.status(), 304);
    // The browser keeps the 304's headers: the API's `default-src 'none'` would block the
    // page's own scripts and styles.
    assert_eq!(
        header(&revalidated, "content-security-policy"),
        header(&first, "content-security-policy")
    );
}

#[tokio::test]
async fn the_analytics_page_renders_events_per_hour_and_top_products_as_captioned_tables() {
    let app = app_with_admin(&[("OUTGROW_ANALYTICS_ROLLUP_SCHEDULE", "*/1 * * * * *")]).await;
    let admin_token = app.sign_in("admin@example.org", PASSWORD).await.access_token;
    let admin_api = SignedIn {
        id: String::new(),
        access_token: admin_token,
        refresh_token: String::new(),
    };
    let product = create_product_id(&app, &admin_api, "Teapot", 2500, 10).await;
    let buyer = app.sign_in("ann@example.org", PASSWORD).await;
    assert_eq!(
        post_events(&app, &buyer, &events(3, "page.viewed"))
            .await
            .status(),
        201
    );
    let ordered = order(
        &app,
        &buyer,
        json!([{"product_id": product, "quantity": 2}]),
        None,
    )
    .await;
    assert_eq!(ordered.status(), 201);
    let admin = Browser::of(&app, "admin@example.org").await;

    let page = poll_until(
        "the roll-up to reach the page",
        Duration::from_secs(20),
        Duration::from_millis(200),
        async || {
            let page = admin.page("/admin/analytics").await;
            if page.contains("<th scope=\"row\">Teapot</th>") && page.contains(">page.viewed</th>") {
                Ok(page)
            } else {
                Err(page)
            }
        },
    )
    .await;

    assert!(page.contains("<caption>Events per hour and type, last 48 hours</caption>"));
    assert!(page.contains("<caption>Best sellers by units sold, last 48 hours</caption>"));
    assert_eq!(page.matches("<tr data-time=").count(), 48, "one row per hour");
    assert!(page.contains("Best sellers by units sold: Teapot (2)."), "{page}");
    assert!(page.contains("uplot"), "the chart stylesheet is linked");
    assert!(page.contains("data-page=\"analytics\""));
}
