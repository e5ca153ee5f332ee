//! The storefront's public pages and the static assets, as a browser without JavaScript sees
//! them: server-rendered HTML, revalidated with ETags, under a strict CSP; assets fingerprinted,
//! immutable and precompressed.

use std::time::Duration;

use reqwest::header;
use serde_json::json;

use crate::helpers::{TestApp, create_product, create_product_id, poll_until, unique_email};

/// The page at `path`, asserting its status and that it is HTML; returns its text.
async fn page(app: &TestApp, path: &str, status: u16) -> String {
    let response = app
        .client
        .get(app.url(path))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), status, "GET {path}");
    let content_type = response.headers()[header::CONTENT_TYPE]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{path}: {content_type}");
    response.text().await.expect("body")
}

/// The values of attribute `name` in `html`, in order (`href="…"` after `marker`).
fn attributes<'a>(html: &'a str, marker: &str, name: &str) -> Vec<&'a str> {
    html.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = &html[at..];
            let start = rest.find(&format!("{name}=\""))? + name.len() + 2;
            rest[start..].split('"').next()
        })
        .collect()
}

#[tokio::test]
async fn the_catalog_page_lists_products_with_their_prices_and_links() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("catalog-admin")).await;
    let mug = create_product_id(&app, &admin, "Blue mug", 1250, 3).await;
    create_product_id(&app, &admin, "Reading lamp", 8900, 0).await;

    let html = page(&app, "/", 200).await;

    assert!(html.contains("<h1>Catalog</h1>"), "{html}");
    assert!(html.contains(&format!("href=\"/products/{mug}\"")));
    assert!(html.contains("12.50 EUR") && html.contains("89.00 EUR"));
    assert!(html.contains("Out of stock"), "the lamp has none left");
}

#[tokio::test]
async fn search_and_the_price_filter_narrow_the_catalog() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("filter-admin")).await;
    create_product_id(&app, &admin, "Blue mug", 1250, 3).await;
    create_product_id(&app, &admin, "Green mug", 3000, 3).await;
    create_product_id(&app, &admin, "Reading lamp", 8900, 3).await;

    let mugs = page(&app, "/?q=mug", 200).await;
    let cheap = page(&app, "/?min=10&max=20.00", 200).await;

    assert!(mugs.contains("Blue mug") && mugs.contains("Green mug") && !mugs.contains("Reading lamp"));
    assert!(mugs.contains("value=\"mug\""), "the search box keeps the words");
    assert!(cheap.contains("Blue mug") && !cheap.contains("Green mug") && !cheap.contains("Reading lamp"));
}

#[tokio::test]
async fn a_malformed_price_is_explained_next_to_its_field_with_a_400() {
    let app = TestApp::spawn().await;

    let html = page(&app, "/?min=cheap&max=5", 400).await;
    let reversed = page(&app, "/?min=9&max=5", 400).await;

    assert!(html.contains("id=\"min-error\"") && html.contains("Enter a price like 12 or 12.50."));
    assert!(html.contains("aria-describedby=\"min-error\""));
    assert!(!html.contains("id=\"max-error\""), "the valid field has no error");
    assert!(reversed.contains("id=\"max-error\""), "{reversed}");
}

#[tokio::test]
async fn the_catalog_pages_through_products_with_a_next_link() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("paging-admin")).await;
    for index in 0..14 {
        create_product_id(&app, &admin, &format!("Thing {index:02}"), 100 + index, 1).await;
    }

    let first = page(&app, "/", 200).await;
    let next = attributes(&first, "rel=\"next\"", "href")
        .first()
        .map(|link| link.replace("&amp;", "&"))
        .expect("a next link");
    let second = page(&app, &next, 200).await;

    assert_eq!(first.matches("class=\"card\"").count(), 12);
    assert_eq!(second.matches("class=\"card\"").count(), 2);
    assert!(second.contains("Thing 13") && !second.contains("Thing 00"));
    assert!(!second.contains("data-next"), "the last page has no next link");
}

#[tokio::test]
async fn pages_are_revalidated_by_etag_and_carry_a_strict_content_security_policy() {
    let app = TestApp::spawn().await;

    let response = app.get("/").await;
    let etag = response.headers()[header::ETAG].clone();
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("text")
        .to_owned();
    let cache = response.headers()[header::CACHE_CONTROL].clone();
    let again = app
        .client
        .get(app.url("/"))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .expect("request");

    assert_eq!(cache, "public, no-cache");
    assert_eq!(again.status(), 304);
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert!(csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn a_product_page_shows_its_image_as_webp_variants_with_explicit_dimensions() {
    let app = TestApp::spawn().await;
    let admin = app.admin(&unique_email("image-admin")).await;
    let image = crate::media::upload_png(&app, &admin.access_token, 1600, 1200, true).await;
    let product = create_product(
        &app,
        &admin,
        json!({"name": "Framed print", "price_minor": 4500, "currency": "EUR", "stock": 2, "image_id": image}),
    )
    .await;
    let id = product["id"].as_str().expect("id");

    let html = poll_until(
        "the variants",
        Duration::from_secs(30),
        Duration::from_millis(200),
        async || {
            let html = page(&app, &format!("/products/{id}"), 200).await;
            if html.contains("<picture>") {
                Ok(html)
            } else {
                Err("no picture yet".to_owned())
            }
        },
    )
    .await;

    assert!(html.contains("type=\"image/webp\""));
    assert!(
        html.contains(" 400w") && html.contains(" 800w") && html.contains(" 1200w"),
        "{html}"
    );
    assert!(html.contains("sizes=\""));
    assert!(
        html.contains("width=\"1200\" height=\"900\""),
        "the box is reserved: {html}"
    );
    assert!(
        html.contains("fetchpriority=\"high\""),
        "the product image is above the fold"
    );
}

#[tokio::test]
async fn unknown_pages_are_html_for_browsers_and_problems_for_the_api() {
    let app = TestApp::spawn().await;

    let missing_product = page(&app, "/products/0f0f0f0f-0000-4000-8000-000000000000", 404).await;
    let malformed_id = page(&app, "/products/nope", 404).await;
    let unknown = page(&app, "/no/such/page", 404).await;
    let api = app.get("/api/v1/nothing-here").await;

    assert!(missing_product.contains("There is no such product."));
    assert!(malformed_id.contains("There is no such product."));
    assert!(unknown.contains("There is no page here."));
    assert_eq!(api.status(), 404);
    assert_eq!(api.headers()[header::CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn assets_are_fingerprinted_immutable_and_served_precompressed() {
    let app = TestApp::spawn().await;
    let html = page(&app, "/", 200).await;
    let stylesheet = attributes(&html, "rel=\"stylesheet\"", "href")[0].to_owned();
    let fetch = async |encoding: &str| {
        app.client
            .get(app.url(&stylesheet))
            .header(header::ACCEPT_ENCODING, encoding)
            .send()
            .await
            .expect("request")
    };

    let brotli = fetch("gzip, br").await;
    let gzip = fetch("gzip").await;
    let plain = fetch("identity").await;
    let etag = plain.headers()[header::ETAG].clone();
    let revalidated = app
        .client
        .get(app.url(&stylesheet))
        .header(header::IF_NONE_MATCH, etag)
        .send()
        .await
        .expect("request");
    let stale = app.get("/assets/css/app.0000000000.css").await;

    assert!(
        stylesheet.starts_with("/assets/css/app.") && stylesheet.ends_with(".css"),
        "{stylesheet}"
    );
    assert_eq!(
        brotli.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(brotli.headers()[header::CONTENT_ENCODING], "br");
    assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
    assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(plain.headers()[header::VARY], "accept-encoding");
    assert_eq!(plain.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    let compressed = brotli.bytes().await.expect("body").len();
    let original = plain.bytes().await.expect("body").len();
    assert!(compressed * 2 < original, "{compressed} B vs {original} B");
    assert_eq!(revalidated.status(), 304);
    assert_eq!(stale.status(), 404);
    assert_eq!(stale.headers()[header::CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn the_catalog_page_preloads_only_its_own_modules() {
    let app = TestApp::spawn().await;

    let html = page(&app, "/", 200).await;
    let modules = attributes(&html, "rel=\"modulepreload\"", "href");

    let names: Vec<&str> = modules
        .iter()
        .map(|url| {
            url.trim_start_matches("/assets/js/")
                .split('.')
                .next()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(names, ["app", "cart-store", "catalog"], "{modules:?}");
    assert!(html.contains("data-page=\"catalog\""));
}

#[tokio::test]
async fn serve_demo_opens_a_store_with_photographed_products_once() {
    let app = TestApp::builder().demo().spawn().await;

    let products = app.get_json("/api/v1/products?limit=100").await;
    let restarted = TestApp::builder().demo().restart_of(&app).spawn().await;
    let again = restarted.get_json("/api/v1/products?limit=100").await;

    let items = products["items"].as_array().expect("items");
    assert_eq!(items.len(), 24);
    assert!(
        items.iter().all(|item| item["image"]["id"].is_string()),
        "every product has a photograph"
    );
    assert_eq!(
        again["items"].as_array().map(Vec::len),
        Some(24),
        "a second start adds nothing"
    );
    assert!(
        app.logs()
            .iter()
            .any(|line| line.contains("administrator admin@example.test"))
    );
}
