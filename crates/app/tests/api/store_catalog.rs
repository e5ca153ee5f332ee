//! The catalog: public and cached, with strong ETags and 304s, keyset pages with price and
//! word filters, and writes reserved to admins. Runs on both backends.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn the_catalog_is_public_cached_and_answers_304_to_a_known_etag() {
    let app = TestApp::with_settings(&[("OUTGROW_CATALOG_MAX_AGE", "90s")]).await;
    let admin = app.admin("admin@example.org").await;
    let created = create_product(
        &app,
        &admin,
        json!({"name": "Blue mug", "description": "Stoneware, 300 ml", "price_minor": 1250, "currency": "eur", "stock": 7}),
    )
    .await;
    assert_eq!(created["currency"], "EUR");
    let id = created["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/products/{id}");

    let first = app.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_header(&first, "cache-control", Some("public, max-age=90"));
    let etag = header(&first, "etag").expect("ETag");
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["price_minor"], 1250);
    assert_eq!(body["stock"], 7);

    let revalidated = app.get_with_header(&path, "If-None-Match", &etag).await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag").as_deref(), Some(etag.as_str()));
    assert!(revalidated.bytes().await.expect("body").is_empty());

    // A second read is a cache hit; an admin write invalidates (a new ETag, the new price).
    let metrics = app.metrics().await;
    assert!(
        metric_value(&metrics, r#"cache_requests_total{cache="products",result="hit"}"#) >= Some(1.0),
        "{metrics}"
    );
    let patched = app
        .patch_json_with_token(
            &path,
            &admin.access_token,
            &json!({"price_minor": 990, "currency": "EUR"}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let after = app.get_with_header(&path, "If-None-Match", &etag).await;
    assert_eq!(after.status(), 200, "the old ETag no longer matches");
    assert_ne!(header(&after, "etag"), Some(etag));
    assert_eq!(after.json::<Value>().await.expect("json")["price_minor"], 990);

    // Listing pages are cached too, and a write retires them at once.
    let list = app.get_json("/api/v1/products").await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let deleted = app.delete_with_token(&path, &admin.access_token).await;
    assert_eq!(deleted.status(), 204);
    let list = app.get_json("/api/v1/products").await;
    assert_eq!(list["items"], json!([]), "the deletion retired the cached page");
    assert_problem(app.get(&path).await, 404).await;
}

#[tokio::test]
async fn a_listing_page_answers_304_to_its_etag_until_the_catalog_changes() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    create_product_id(&app, &admin, "Blue mug", 1250, 7).await;
    let path = "/api/v1/products?limit=10";
    let first = app.get(path).await;
    assert_eq!(first.status(), 200);
    let etag = header(&first, "etag").expect("ETag");
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong: {etag}");

    let revalidated = app.get_with_header(path, "If-None-Match", &etag).await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(header(&revalidated, "etag").as_deref(), Some(etag.as_str()));
    assert!(header(&revalidated, "cache-control").is_some_and(|value| value.starts_with("public")));
    assert!(revalidated.bytes().await.expect("body").is_empty());
    // Another page's ETag, or any in a list that does not name this one, is not a match.
    let other = app
        .get_with_header(path, "If-None-Match", "\"0123\", \"4567\"")
        .await;
    assert_eq!(other.status(), 200);

    // A new product changes the page: the old ETag gets the new page, not a 304.
    create_product_id(&app, &admin, "Red mug", 990, 3).await;
    let changed = app.get_with_header(path, "If-None-Match", &etag).await;
    assert_eq!(changed.status(), 200, "the page changed");
    assert_ne!(header(&changed, "etag"), Some(etag));
    assert_eq!(
        json_body(changed, 200).await["items"].as_array().map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn the_catalog_pages_by_keyset_and_filters_by_price_and_words() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    let names = [
        ("Red ceramic mug", 900),
        ("Blue ceramic bowl", 1500),
        ("Oak chair", 12000),
        ("Red linen scarf", 2500),
        ("Glass vase", 3000),
    ];
    for (name, price) in names {
        create_product_id(&app, &admin, name, price, 1).await;
    }
    let get = |query: &'static str| {
        let app = &app;
        async move {
            let response = app.get(&format!("/api/v1/products{query}")).await;
            assert_eq!(response.status(), 200, "{query}");
            let link = header(&response, "link");
            let body: Value = response.json().await.expect("json");
            let names: Vec<String> = body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|item| item["name"].as_str().expect("name").to_owned())
                .collect();
            (names, body["next_after"].as_str().map(str::to_owned), link)
        }
    };
    let (page, next, link) = get("?limit=2").await;
    assert_eq!(page, ["Red ceramic mug", "Blue ceramic bowl"]);
    let next = next.expect("a next page");
    assert!(link.expect("Link").contains(&format!("after={next}")));
    let second = app
        .get_json(&format!("/api/v1/products?limit=2&after={next}"))
        .await;
    assert_eq!(second["items"][0]["name"], "Oak chair");

    assert_eq!(get("?q=red").await.0, ["Red ceramic mug", "Red linen scarf"]);
    assert_eq!(
        get("?q=CERAMIC%20red").await.0,
        ["Red ceramic mug"],
        "every word, any case"
    );
    assert_eq!(get("?min_price=1500&max_price=3000").await.0.len(), 3);
    assert_eq!(get("?q=red&max_price=1000").await.0, ["Red ceramic mug"]);
    // Search syntax in the input is taken literally, never as SQL or FTS operators.
    assert!(get("?q=%22%20OR%201%3D1%20--").await.0.is_empty());
    assert!(get("?q=red%20OR%20oak*").await.0.is_empty());

    for bad in [
        "?limit=0",
        "?limit=101",
        "?min_price=-1",
        "?min_price=10&max_price=5",
        "?after=not-a-uuid",
        "?colour=red",
        "?min_price=cheap",
    ] {
        assert_problem(app.get(&format!("/api/v1/products{bad}")).await, 400).await;
    }
}

#[tokio::test]
async fn only_admins_write_the_catalog_and_bad_products_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    let user = app.signed_in("ann@example.org").await;
    let mug = json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1});
    let forbidden = app
        .post_json_with_token("/api/v1/products", &user.access_token, &mug)
        .await;
    assert_problem(forbidden, 403).await;
    let anonymous = app.post_json("/api/v1/products", &mug).await;
    assert_problem(anonymous, 401).await;

    let long_name = "x".repeat(201);
    for bad in [
        json!({"name": "", "price_minor": 100, "currency": "EUR", "stock": 1}),
        json!({"name": long_name, "price_minor": 100, "currency": "EUR", "stock": 1}),
        json!({"name": "Mug", "price_minor": -1, "currency": "EUR", "stock": 1}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EURO", "stock": 1}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": -5}),
        json!({"name": "Mug", "price_minor": "cheap", "currency": "EUR", "stock": 1}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1, "colour": "red"}),
        json!({"name": "Mug", "price_minor": 100, "currency": "EUR", "stock": 1, "image_id": uuid::Uuid::now_v7()}),
        json!({"price_minor": 100, "currency": "EUR", "stock": 1}),
    ] {
        let response = app
            .post_json_with_token("/api/v1/products", &admin.access_token, &bad)
            .await;
        assert_problem(response, 400).await;
    }
    // Injection strings are data: stored and shown as sent.
    let injection = "Robert'); DROP TABLE products;--";
    let created = create_product(
        &app,
        &admin,
        json!({"name": injection, "description": "' OR '1'='1", "price_minor": 1, "currency": "EUR", "stock": 1}),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(product(&app, id).await["name"], injection);
    let patch = app
        .patch_json_with_token(
            &format!("/api/v1/products/{id}"),
            &admin.access_token,
            &json!({"price_minor": 5}),
        )
        .await;
    assert_problem(patch, 400).await;
    let unknown = app
        .patch_json_with_token(
            &format!("/api/v1/products/{}", uuid::Uuid::now_v7()),
            &admin.access_token,
            &json!({"stock": 5}),
        )
        .await;
    assert_problem(unknown, 404).await;
}
