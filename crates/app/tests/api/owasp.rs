//! The OWASP API Security Top 10 (2023) rows that are checked route by route, with the route
//! list read from the served OpenAPI document — so a new route is covered (or the test fails
//! until someone says why it need not be): API1 object level authorization (BOLA), API5
//! function level authorization (BFLA), API3 object property level authorization (mass
//! assignment, leaked fields), API2 token attacks, API7 SSRF, API8 error bodies, API10 a
//! hostile object store.
//! docs/security.md maps every row to its tests.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    helpers::*,
    media::{encode, upload, upload_png},
};

/// Every operation of the served document: (method, path template, operation).
async fn operations(app: &TestApp) -> Vec<(Method, String, Value)> {
    let document = app.get_json("/api/openapi.json").await;
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if let Ok(method) = method.to_uppercase().parse::<Method>()
                && ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str())
            {
                found.push((method, path.clone(), operation.clone()));
            }
        }
    }
    assert!(found.len() > 30, "the document lists {} operations", found.len());
    found
}

/// Operations only an administrator may call outside the `admin` tag (the catalog's writes and
/// the user list). The BFLA test proves this list complete: any other operation that answers a
/// signed-in user with 403 fails it.
const ADMIN_OUTSIDE_ADMIN_TAG: &[(&str, &str)] = &[
    ("POST", "/api/v1/products"),
    ("PATCH", "/api/v1/products/{id}"),
    ("DELETE", "/api/v1/products/{id}"),
    ("GET", "/api/v1/users"),
];

fn is_admin_only(method: &Method, path: &str, operation: &Value) -> bool {
    operation["tags"]
        .as_array()
        .is_some_and(|tags| tags.iter().any(|tag| tag == "admin"))
        || ADMIN_OUTSIDE_ADMIN_TAG.contains(&(method.as_str(), path))
}

/// `path` with every `{…}` parameter replaced by `id` (and `{width}` by a variant width).
fn concrete(path: &str, id: &str) -> String {
    path.replace("{width}", "320").replace("{id}", id)
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// API5: every admin operation refuses a signed-in user with 403 and an anonymous caller with
/// 401, and no other operation answers a user with 403 — except the two whose 403 is about the
/// caller's own data (another user's record; a wrong current password) — so the admin list
/// cannot silently miss a route.
#[tokio::test]
async fn api5_bfla_every_admin_operation_refuses_users_and_no_other_operation_is_admin_only() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ann@example.org").await;
    let unknown = "01900000-0000-7000-8000-000000000000";
    let mut admin_operations = 0;
    for (method, path, operation) in operations(&app).await {
        let target = concrete(&path, unknown);
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({}));
        if is_admin_only(&method, &path, &operation) {
            admin_operations += 1;
            let as_user = call(
                &app,
                method.clone(),
                &target,
                Some(&user.access_token),
                body.as_ref(),
            )
            .await;
            let problem = assert_problem(as_user, 403).await;
            assert!(problem["detail"].is_string(), "{method} {path}: {problem}");
            let anonymous = call(&app, method.clone(), &target, None, body.as_ref()).await;
            assert_problem(anonymous, 401).await;
        } else if path != "/api/v1/auth/logout" && path != "/api/v1/auth/logout-all" {
            let as_user = call(
                &app,
                method.clone(),
                &target,
                Some(&user.access_token),
                body.as_ref(),
            )
            .await;
            let status = as_user.status().as_u16();
            let own_data_rule = method == Method::GET
                && (path == "/api/v1/users/{id}" || path == "/api/v1/exports/{id}/download");
            assert!(
                status != 403 || own_data_rule,
                "{method} {path} answers a signed-in user 403: an admin-only operation missing from ADMIN_OUTSIDE_ADMIN_TAG"
            );
            assert!(status < 500, "{method} {path} answered {status}");
        }
    }
    assert!(admin_operations >= 10, "{admin_operations} admin operations");

    // The admin pages likewise: a signed-in user is refused, never shown them.
    let mut browser = Browser::new(&app);
    browser.sign_in("ann@example.org", PASSWORD, "/account").await;
    for page in ["/admin/products", "/admin/dashboard"] {
        let refused = browser.get(page).await;
        assert_eq!(refused.status, 403, "{page}");
    }
}

/// API1: every operation that takes an object's id, called by user B with user A's object,
/// answers 404 (the object is not B's to know of) — or, for `/users/{id}`, the 403 the API
/// gives for any id but one's own (decided before the lookup, so ids cannot be probed) — and
/// leaks none of A's data. Admin-only operations are API5's; public ones are listed with why.
#[tokio::test]
async fn api1_bola_every_id_taking_operation_refuses_another_users_object() {
    let app = TestApp::spawn().await;
    let (product, ann) = product_and_buyer(&app, "BOLA lamp", 1200, 5).await;
    let bob = app.signed_in("bob@example.org").await;
    let order = json_body(
        order(&app, &ann, json!([{"product_id": product, "quantity": 1}]), None).await,
        201,
    )
    .await;
    let order_id = order["id"].as_str().expect("order id").to_owned();
    let export = app.request_export(&ann.access_token, "json").await;
    assert_eq!(export.status(), 202);
    let export_id = header(&export, "location")
        .expect("Location")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let upload_id = upload_png(&app, &ann.access_token, 64, 48, false).await;

    let public_by_design = [("GET", "/api/v1/products/{id}", "the catalog is public")];
    let mut exercised = 0;
    for (method, path, operation) in operations(&app).await {
        if !path.contains('{') || is_admin_only(&method, &path, &operation) {
            continue;
        }
        if public_by_design
            .iter()
            .any(|(m, p, _)| *m == method.as_str() && *p == path)
        {
            continue;
        }
        let (id, expected) = match path.as_str() {
            "/api/v1/orders/{id}" | "/api/v1/orders/{id}/cancel" => (order_id.as_str(), 404),
            "/api/v1/exports/{id}" => (export_id.as_str(), 404),
            // The download needs the e-mailed signature: without it, 400; with A's, only A's
            // link (tested in media.rs). B's token changes nothing.
            "/api/v1/exports/{id}/download" => (export_id.as_str(), 400),
            "/api/v1/uploads/{id}"
            | "/api/v1/uploads/{id}/content"
            | "/api/v1/uploads/{id}/variants/{width}" => (upload_id.as_str(), 404),
            "/api/v1/users/{id}" => (ann.id.as_str(), 403),
            other => panic!(
                "{method} {other} takes an id but this test neither exercises it nor lists it as public by design"
            ),
        };
        exercised += 1;
        let body = (method == Method::POST).then(|| json!({}));
        let response = call(
            &app,
            method.clone(),
            &concrete(&path, id),
            Some(&bob.access_token),
            body.as_ref(),
        )
        .await;
        let problem = assert_problem(response, expected).await.to_string();
        assert!(
            !problem.contains("ann@example.org") && !problem.contains("BOLA lamp"),
            "{method} {path} leaks A's data: {problem}"
        );
    }
    assert!(exercised >= 7, "{exercised} id-taking operations exercised");
    // Nothing B tried changed A's objects.
    let still = app
        .get_json_with_token(&format!("/api/v1/orders/{order_id}"), &ann.access_token)
        .await;
    assert_eq!(
        still["status"], order["status"],
        "B's cancel did not cancel A's order"
    );
}

/// API3, writes: a non-admin body with a field it may not set is refused with 400 naming the
/// field — never silently applied.
#[tokio::test]
async fn api3_mass_assignment_of_protected_fields_is_refused() {
    let app = TestApp::spawn().await;
    let (product, ann) = product_and_buyer(&app, "Mass lamp", 700, 5).await;
    let register = |extra: (&str, Value)| {
        let mut body = json!({"email": "eve@example.org", "password": PASSWORD, "name": "Eve"});
        body[extra.0] = extra.1;
        body
    };
    let order = |extra: (&str, Value)| {
        let mut body = json!({"items": [{"product_id": product, "quantity": 1}]});
        body[extra.0] = extra.1;
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/api/v1/auth/register",
            register(("role", json!("admin"))),
            "role",
        ),
        (
            "/api/v1/auth/register",
            register(("is_admin", json!(true))),
            "is_admin",
        ),
        ("/api/v1/auth/register", register(("id", json!(ann.id))), "id"),
        ("/api/v1/orders", order(("user_id", json!(ann.id))), "user_id"),
        ("/api/v1/orders", order(("status", json!("paid"))), "status"),
        ("/api/v1/orders", order(("total_minor", json!(1))), "total_minor"),
        (
            "/api/v1/orders",
            json!({"items": [{"product_id": product, "quantity": 1, "price_minor": 1}]}),
            "price_minor",
        ),
        (
            "/api/v1/exports",
            json!({"format": "json", "user_id": ann.id}),
            "user_id",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post_json_with_token(path, &ann.access_token, &body).await;
        let problem = assert_problem(response, 400).await;
        assert!(
            problem.to_string().contains(field),
            "{path} with {field}: {problem}"
        );
    }
    for (field, value) in [
        ("role", json!("admin")),
        ("email", json!("x@example.org")),
        ("id", json!(ann.id)),
    ] {
        let response = app.patch_me(&ann.access_token, json!({ field: value })).await;
        let problem = assert_problem(response, 400).await;
        assert!(
            problem.to_string().contains(field),
            "PATCH /me with {field}: {problem}"
        );
    }
    let me = app.get_json_with_token("/api/v1/me", &ann.access_token).await;
    assert_eq!(me["role"], "user");
    assert_eq!(
        app.login("eve@example.org", PASSWORD).await.status(),
        401,
        "no account was made"
    );
    assert_eq!(product_stock(&app, &product).await, 5, "no order was placed");
}

async fn product_stock(app: &TestApp, id: &str) -> i64 {
    crate::helpers::product(app, id).await["stock"]
        .as_i64()
        .expect("stock")
}

/// Walks `value`, calling `visit` with every key path and scalar.
fn walk(value: &Value, at: &str, visit: &mut dyn FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{at}.{key}");
                visit(&path, child);
                walk(child, &path, visit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                walk(child, &format!("{at}[{index}]"), visit);
            }
        }
        scalar => visit(at, scalar),
    }
}

/// API3, reads: a whole session's JSON answers, user's and admin's, hold no password, hash or
/// secret field and no Argon2 string (the token endpoints' own tokens excepted).
#[tokio::test]
async fn api3_no_answer_leaks_a_hash_secret_or_internal_field() {
    let app = TestApp::spawn().await;
    let (product, ann) = product_and_buyer(&app, "Leak lamp", 800, 5).await;
    let admin = app.sign_in("admin@example.org", PASSWORD).await;
    let placed = json_body(
        order(&app, &ann, json!([{"product_id": product, "quantity": 1}]), None).await,
        201,
    )
    .await;
    upload_png(&app, &ann.access_token, 32, 32, false).await;
    let export = app.request_export(&ann.access_token, "json").await;
    let export_path = header(&export, "location").expect("Location");
    let mut answers = vec![
        (
            "login",
            json_body(app.login("ann@example.org", PASSWORD).await, 200).await,
        ),
        (
            "refresh",
            json_body(app.refresh(&ann.refresh_token).await, 200).await,
        ),
        (
            "me",
            app.get_json_with_token("/api/v1/me", &ann.access_token).await,
        ),
        ("order", placed),
        (
            "orders",
            app.get_json_with_token("/api/v1/orders", &ann.access_token).await,
        ),
        (
            "export",
            app.get_json_with_token(&export_path, &ann.access_token).await,
        ),
        (
            "users",
            app.get_json_with_token("/api/v1/users", &admin.access_token)
                .await,
        ),
        (
            "user",
            app.get_json_with_token(&format!("/api/v1/users/{}", ann.id), &admin.access_token)
                .await,
        ),
        (
            "jobs",
            app.get_json_with_token("/api/v1/admin/jobs", &admin.access_token)
                .await,
        ),
        ("products", app.get_json("/api/v1/products").await),
    ];
    answers.push((
        "register",
        json_body(app.register("new@example.org", PASSWORD, "New").await, 202).await,
    ));
    let allowed_tokens = [".access_token", ".refresh_token"];
    for (what, answer) in &answers {
        walk(answer, "", &mut |path, value| {
            let key = path.rsplit('.').next().unwrap_or_default().to_lowercase();
            let is_token_field = allowed_tokens.contains(&path);
            assert!(
                is_token_field
                    || ![
                        "password",
                        "password_hash",
                        "hash",
                        "secret",
                        "refresh_token",
                        "cookie_hash",
                        "token_hash"
                    ]
                    .contains(&key.as_str()),
                "{what}: {path} is exposed"
            );
            if let Value::String(text) = value {
                assert!(
                    !text.starts_with("$argon2"),
                    "{what}: {path} holds a password hash"
                );
                assert!(!text.contains(PASSWORD), "{what}: {path} holds the password");
            }
        });
    }
}

/// API2: token attacks beyond tokens.rs — a refresh token as a bearer, an oversized token, an
/// HMAC token claiming an asymmetric algorithm (algorithm confusion), a token signed with an
/// empty key or with its own `kid` as the key.
#[tokio::test]
async fn api2_refresh_tokens_oversized_and_confused_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.signed_in("ann@example.org").await;
    app.get_problem_with_token("/api/v1/me", &user.refresh_token, 401)
        .await;

    let huge = format!("{}{}", user.access_token, "A".repeat(64 * 1024));
    let response = app.get_with_token("/api/v1/me", &huge).await;
    let status = response.status().as_u16();
    assert!((400..500).contains(&status), "a 64 KiB token got {status}");

    let (_, claims) = jwt_parts(&user.access_token);
    for (alg, key) in [
        ("RS256", TEST_JWT_SECRET),
        ("EdDSA", TEST_JWT_SECRET),
        ("HS256", ""),
        ("HS256", TEST_JWT_KID),
    ] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": TEST_JWT_KID});
        let token = sign_jwt_with(&header, &claims, key);
        app.get_problem_with_token("/api/v1/me", &token, 401).await;
    }
}

/// An HMAC-SHA256 signature over `header.claims` with `key`, whatever the header claims.
fn sign_jwt_with(header: &Value, claims: &Value, key: &str) -> String {
    use hmac::{Hmac, Mac};
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// API7: nothing in the API takes a URL to fetch — no parameter or body property is URL-typed
/// or named like one — so there is no server-side request to forge.
#[tokio::test]
async fn api7_no_operation_takes_a_url() {
    let app = TestApp::spawn().await;
    let document = app.get_json("/api/openapi.json").await;
    let mut suspicious = Vec::new();
    walk(&document, "", &mut |path, value| {
        let key = path.rsplit('.').next().unwrap_or_default().to_lowercase();
        let in_input = path.contains(".requestBody")
            || path.contains(".parameters")
            || path.starts_with(".components.schemas");
        let is_response_schema = path.contains(".responses");
        if !in_input || is_response_schema {
            return;
        }
        if (key == "format" && matches!(value.as_str(), Some("uri" | "url" | "uri-reference")))
            || (key == "name"
                && value.as_str().is_some_and(|name| {
                    ["url", "uri", "callback", "webhook"]
                        .iter()
                        .any(|word| name.to_lowercase().contains(word))
                }))
        {
            suspicious.push(path.to_owned());
        }
    });
    // Request schemas' property names (components are shared by requests and responses: the
    // ones named *Request are inputs).
    for (name, schema) in document["components"]["schemas"].as_object().expect("schemas") {
        if !name.ends_with("Request") && !name.ends_with("Patch") && !name.ends_with("Query") {
            continue;
        }
        for property in schema["properties"]
            .as_object()
            .into_iter()
            .flat_map(|map| map.keys())
        {
            let lowered = property.to_lowercase();
            if ["url", "uri", "callback", "webhook", "link"]
                .iter()
                .any(|word| lowered.contains(word))
            {
                suspicious.push(format!("{name}.{property}"));
            }
        }
    }
    assert!(suspicious.is_empty(), "URL-like inputs: {suspicious:?}");
}

/// API7, at the source: outbound HTTP clients appear only where Outgrow talks to services it is
/// configured with (object storage, the error tracker). A new file making HTTP requests — a
/// potential SSRF sink — fails this test until it is reviewed and listed.
#[test]
fn api7_outbound_http_is_made_only_by_the_allowlisted_modules() {
    let allowed = ["crates/platform/src/telemetry/error_tracking"];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut offenders = Vec::new();
    // The crates' own code (`src/`): benches and tests are clients of Outgrow by design.
    let mut stack: Vec<_> = std::fs::read_dir(root.join("crates"))
        .expect("crates")
        .flatten()
        .map(|entry| entry.path().join("src"))
        .filter(|src| src.is_dir())
        .collect();
    assert!(stack.len() >= 4, "the crates' sources: {stack:?}");
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path
                .strip_prefix(&root)
                .expect("inside")
                .to_string_lossy()
                .into_owned();
            let source = std::fs::read_to_string(&path).expect("read");
            let uses_client = [
                "reqwest::",
                "hyper::client",
                "hyper_util::client",
                "ureq::",
                "isahc::",
                "surf::",
            ]
            .iter()
            .any(|client| source.contains(client));
            if uses_client && !allowed.iter().any(|prefix| relative.starts_with(prefix)) {
                offenders.push(relative);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "outbound HTTP outside the allowlist: {offenders:?}"
    );
}

/// API8: every kind of 4xx the API gives is problem+json with nothing of the server's insides:
/// no source paths, panics, SQL, backtraces or Rust type paths.
#[tokio::test]
async fn api8_error_bodies_show_no_internals() {
    let app = TestApp::with_settings(&[
        ("OUTGROW_BODY_LIMIT_BYTES", "2048"),
        ("OUTGROW_RATE_LIMIT_EXPORT", "1/1h"),
    ])
    .await;
    let user = app.signed_in("ann@example.org").await;
    let token = user.access_token.as_str();
    let login_with = |content_type: &'static str, body: String| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let mut errors = vec![
        app.get("/api/v1/nothing-here").await,
        app.client
            .delete(app.url("/api/v1/me"))
            .send()
            .await
            .expect("405"),
        login_with("application/json", "{\"email\": ".into())
            .await
            .expect("400"),
        login_with("text/plain", "hello".into()).await.expect("415"),
        login_with(
            "application/json",
            format!("{{\"email\": \"{}\"}}", "x".repeat(4096)),
        )
        .await
        .expect("413"),
        app.get("/api/v1/me").await,
        app.get_with_token("/api/v1/users", token).await,
        app.get_with_token("/api/v1/orders/not-a-uuid", token).await,
        app.get_with_token("/api/v1/orders/01900000-0000-7000-8000-000000000000", token)
            .await,
        app.post_json_with_token(
            "/api/v1/orders",
            token,
            &json!({"items": [{"product_id": "01900000-0000-7000-8000-000000000000", "quantity": 1}]}),
        )
        .await,
        app.request_export(token, "json").await,
        app.request_export(token, "json").await,
        app.login("ann@example.org", "wrong wrong wrong").await,
    ];
    let mut statuses = Vec::new();
    for response in errors.drain(..) {
        let status = response.status().as_u16();
        statuses.push(status);
        if status < 400 {
            continue;
        }
        let content_type = header(&response, "content-type").unwrap_or_default();
        let body = response.text().await.expect("body");
        assert!(
            content_type.starts_with("application/problem+json"),
            "{status}: {content_type} {body}"
        );
        for internal in [
            "src/",
            ".rs:",
            "panicked",
            "sqlx",
            "SELECT ",
            "INSERT ",
            "backtrace",
            "stack backtrace",
            "::",
        ] {
            assert!(!body.contains(internal), "a {status} shows {internal:?}: {body}");
        }
    }
    for expected in [400, 401, 403, 404, 405, 413, 415, 422, 429] {
        assert!(
            statuses.contains(&expected),
            "no {expected} was triggered: {statuses:?}"
        );
    }
}

/// Words only the hostile store says: they must never reach a client.
const HOSTILE_MARKER: &str = "HOSTILE-STORE-WORDS";

/// An "S3" on 127.0.0.1 that answers every request with `answer` and hangs up, or (an empty
/// answer) reads the request and never says a word; its endpoint.
async fn hostile_store(answer: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0_u8; 4096];
                let _ = socket.read(&mut head).await;
                if answer.is_empty() {
                    tokio::time::sleep(Duration::from_secs(120)).await;
                }
                let _ = socket.write_all(answer).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{address}")
}

/// API10, unsafe consumption of APIs: what the object store answers is untrusted input. A
/// store that refuses with its own words, answers with an oversized lie, or does not speak
/// HTTP at all, or never answers costs the client a 503 problem with a generic detail (never
/// the store's words), within the bounded storage timeouts (`s3_request_timeout` 1 s here:
/// the silent store is retried within 1.25 s), and the instance stays healthy.
#[tokio::test]
async fn api10_a_hostile_object_store_costs_a_503_and_never_its_words() {
    let answers: [&'static [u8]; 4] = [
        b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 96\r\nConnection: close\r\n\r\n<Error><Code>AccessDenied</Code><Message>HOSTILE-STORE-WORDS</Message></Error>                ",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\nHOSTILE-STORE-WORDS",
        b"\x00\xffHOSTILE-STORE-WORDS not HTTP at all\r\n\r\n",
        b"",
    ];
    for answer in answers {
        let store = hostile_store(answer).await;
        let app = TestApp::builder()
            .settings(&[
                ("OUTGROW_OBJECT_STORE_URL", "s3://hostile"),
                ("OUTGROW_S3_ENDPOINT", store.as_str()),
                ("AWS_ACCESS_KEY_ID", "hostile"),
                ("AWS_SECRET_ACCESS_KEY", "hostile"),
                ("AWS_REGION", "us-east-1"),
                ("OUTGROW_S3_REQUEST_TIMEOUT", "1s"),
            ])
            .spawn()
            .await;
        let ann = app.signed_in(&unique_email("ann")).await;
        let started = Instant::now();
        let bytes = encode(image::ImageFormat::Png, 8, 8);
        let response = upload(&app, &ann.access_token, bytes, "picture.png", "image/png", false).await;
        let elapsed = started.elapsed();
        let shown = String::from_utf8_lossy(&answer[..answer.len().min(40)]).into_owned();
        let problem = assert_problem(response, 503).await;
        assert!(
            !problem.to_string().contains(HOSTILE_MARKER),
            "{shown}: the store's words reached the client: {problem}"
        );
        assert!(elapsed < Duration::from_secs(8), "{shown:?}: {elapsed:?}");
        assert_eq!(app.get("/healthz").await.status(), 200, "{shown}");
    }
}

/// Words only the hostile mail server says, with markup an admin page must not run.
const HOSTILE_MAIL_MARKER: &str = "<script>HOSTILE-MAIL-WORDS</script>";

/// How a hostile "SMTP server" behaves on every connection.
#[derive(Debug, Clone, Copy)]
enum HostileMail {
    /// Refuses in its own words, at length: a 100-line multi-line 554 reply.
    Refuses,
    /// A greeting line far longer than SMTP allows.
    LongLine,
    /// Accepts the connection and never says a word.
    Silent,
    /// Sends an unterminated line forever, as fast as it can.
    Endless,
    /// Sends an unterminated line a byte every 100 ms, for ever.
    Trickle,
    /// Does not speak SMTP at all.
    Garbage,
}

/// A mail server on 127.0.0.1 that behaves as `how`; its `smtp://` URL.
async fn hostile_mail_server(how: HostileMail) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let line = format!("{HOSTILE_MAIL_MARKER} {}", "x".repeat(900));
                match how {
                    HostileMail::Refuses => {
                        let mut reply = String::new();
                        for _ in 0..99 {
                            reply.push_str(&format!("554-{line}\r\n"));
                        }
                        reply.push_str(&format!("554 {line}\r\n"));
                        let _ = socket.write_all(reply.as_bytes()).await;
                    }
                    HostileMail::LongLine => {
                        let reply = format!("220 {}\r\n", line.repeat(100));
                        let _ = socket.write_all(reply.as_bytes()).await;
                    }
                    HostileMail::Silent => {
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    HostileMail::Endless => {
                        let _ = socket.write_all(b"220-").await;
                        let chunk = vec![b'x'; 64 * 1024];
                        let until = Instant::now() + Duration::from_secs(120);
                        while Instant::now() < until && socket.write_all(&chunk).await.is_ok() {}
                    }
                    HostileMail::Trickle => {
                        let until = Instant::now() + Duration::from_secs(120);
                        while Instant::now() < until && socket.write_all(b"2").await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    HostileMail::Garbage => {
                        let _ = socket
                            .write_all(b"\x00\xff\xfe HOSTILE-MAIL-WORDS \x1b[2J\r\n\r\n")
                            .await;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("smtp://{address}")
}

/// API10, unsafe consumption of APIs, for the mail server: what it answers (or does not) is
/// untrusted. A server that refuses at length, answers with an oversized line, never speaks,
/// streams an endless line (fast: the byte cap; slowly: the session deadline), or does not
/// speak SMTP fails the `email.send` run within `smtp_timeout` and without the instance's
/// memory growing; the job keeps a bounded error (for the admins, never a user) and waits for
/// its retry, and the instance stays healthy.
#[tokio::test]
async fn api10_a_hostile_mail_server_fails_the_job_within_its_timeout() {
    for (how, said) in [
        (HostileMail::Refuses, "554"),
        (HostileMail::LongLine, "line too long"),
        (HostileMail::Silent, "within 2000 ms (smtp_timeout)"),
        (HostileMail::Endless, "more than 262144 bytes"),
        (HostileMail::Trickle, "within 2000 ms (smtp_timeout)"),
        (HostileMail::Garbage, "UTF-8"),
    ] {
        let server = hostile_mail_server(how).await;
        let app = TestApp::builder()
            .settings(&[
                ("OUTGROW_SMTP_URL", server.as_str()),
                ("OUTGROW_SMTP_TIMEOUT", "2s"),
                ("OUTGROW_JOB_BACKOFF_BASE", "1h"),
                ("OUTGROW_JOB_BACKOFF_MAX", "1h"),
                ("OUTGROW_JOB_POLL_INTERVAL", "20ms"),
            ])
            .spawn()
            .await;
        let admin = app.admin(&unique_email("admin")).await;
        let started = Instant::now();
        let ann = app.register(&unique_email("ann"), PASSWORD, "Ann").await;
        assert_eq!(ann.status(), 202, "{how:?}");
        let failed = poll_until(
            &format!("{how:?}: a failed e-mail run"),
            Duration::from_secs(20),
            Duration::from_millis(50),
            async || {
                let jobs = app
                    .get_json_with_token("/api/v1/admin/jobs?queue=mail", &admin.access_token)
                    .await;
                let items = jobs["items"].as_array().expect("items");
                items
                    .iter()
                    .find(|job| job["last_error"].is_string())
                    .cloned()
                    .ok_or_else(|| format!("{items:?}"))
            },
        )
        .await;
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(8),
            "{how:?}: failed after {elapsed:?}"
        );
        assert_eq!(failed["state"], "ready", "{how:?}: waits for its retry: {failed}");
        assert_eq!(failed["attempts"], 1, "{how:?}: {failed}");
        let error = failed["last_error"].as_str().expect("last_error");
        assert!(error.contains(said), "{how:?}: {error:.300}");
        assert!(
            error.len() <= 2_100,
            "{how:?}: an error of {} bytes was kept: {error:.300}",
            error.len()
        );
        // The endless line would have grown lettre's reply buffer by hundreds of MB a second.
        let peak_kib = peak_memory_kib(app.child.id());
        assert!(
            peak_kib < 200 * 1024,
            "{how:?}: the instance peaked at {peak_kib} KiB"
        );
        assert_eq!(app.get("/healthz").await.status(), 200, "{how:?}");
    }
}

/// The peak resident memory (VmHWM) of process `pid`, in KiB.
fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
