//! Orders on shards (scaled pass only): each order lands on the shard of its user's bucket,
//! survives a bucket move, and a reservation whose order never reached its shard is released.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// `ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}` for each of `names`, on `primary`.
async fn allow_connections(primary: &mut sqlx::PgConnection, names: &[String], allow: bool) {
    for name in names {
        let statement = format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}");
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *primary)
            .await
            .unwrap_or_else(|error| panic!("allow connections to {name}: {allow}: {error}"));
    }
}

#[tokio::test]
async fn scaled_only_orders_land_on_the_shard_of_their_bucket_and_survive_a_bucket_move() {
    require_scaled();
    let app = TestApp::with_settings(&[("OUTGROW_SHARD_MAP_REFRESH", "200ms")]).await;
    let (id, user) = product_and_buyer(&app, "Mug", 1000, 100).await;
    let mut placed = Vec::new();
    for _ in 0..5 {
        let response = order(&app, &user, json!([{"product_id": id, "quantity": 1}]), None).await;
        assert_eq!(response.status(), 201);
        let body = json_body(response, 201).await;
        placed.push(body["id"].as_str().expect("id").to_owned());
    }
    let shard_urls = shard_urls(&app);
    let shown = app.run_cli(&["shards", "show", "--user", &user.id]);
    assert!(
        shown.contains("shard-0") && shown.contains("512 bucket(s)"),
        "{shown}"
    );
    let line = shown
        .lines()
        .find(|line| line.starts_with("user "))
        .expect("the user's line");
    let bucket: u16 = line
        .split("bucket ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|bucket| bucket.parse().ok())
        .expect("bucket");
    let home: usize = if line.ends_with("shard-0") { 0 } else { 1 };
    let on = |shard: usize| {
        let url = shard_urls[shard].clone();
        let user = user.id.clone();
        async move {
            use sqlx::Connection;
            let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE user_id = $1::uuid")
                .bind(user)
                .fetch_one(&mut connection)
                .await
                .expect("count")
        }
    };
    assert_eq!(on(home).await, 5, "all on the shard of bucket {bucket}");
    assert_eq!(on(1 - home).await, 0);

    let moved = app.run_cli(&[
        "shards",
        "move",
        "--bucket",
        &bucket.to_string(),
        "--to",
        &(1 - home).to_string(),
        "--settle",
        "1s",
    ]);
    assert!(moved.contains("5 orders"), "{moved}");
    assert_eq!(on(home).await, 0, "deleted from the old shard");
    assert_eq!(on(1 - home).await, 5, "copied to the new one");
    // The server routes by the new map: every order is still readable, new ones land there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for order_id in &placed {
        let response = app
            .get_with_token(&format!("/api/v1/orders/{order_id}"), &user.access_token)
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = order(&app, &user, json!([{"product_id": id, "quantity": 1}]), None).await;
    assert_eq!(response.status(), 201);
    assert_eq!(on(1 - home).await, 6);
    let cancelled = cancel_order(&app, &user, &placed[0]).await;
    assert_eq!(cancelled.status(), 200);
}

#[tokio::test]
async fn scaled_only_a_reservation_whose_order_never_reached_its_shard_is_released() {
    require_scaled();
    use sqlx::Connection;
    let app = TestApp::with_settings(&[
        ("OUTGROW_REQUEST_TIMEOUT", "2s"),
        ("OUTGROW_ORDER_RECONCILE_AFTER", "3s"),
        ("OUTGROW_DATABASE_ACQUIRE_TIMEOUT", "1s"),
        ("OUTGROW_JOB_POLL_INTERVAL", "200ms"),
    ])
    .await;
    let (id, user) = product_and_buyer(&app, "Mug", 1000, 10).await;
    let primary = backend_setting(&app, "OUTGROW_DATABASE_URL").expect("primary");
    let shards = shard_urls(&app);
    // Both shards refuse connections: the stock is reserved on the primary, the order cannot
    // be written, and the request fails without taking the stock for good.
    let mut admin_connection = sqlx::PgConnection::connect(primary).await.expect("connect");
    let names: Vec<String> = shards
        .iter()
        .map(|url| url.rsplit('/').next().expect("database").to_owned())
        .collect();
    allow_connections(&mut admin_connection, &names, false).await;
    for name in &names {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(name)
            .execute(&mut admin_connection)
            .await
            .expect("drop its connections");
    }
    let refused = order(&app, &user, json!([{"product_id": id, "quantity": 4}]), None).await;
    // A shard that refuses connections is unavailable (503 + Retry-After), not an error of ours.
    assert_header(&refused, "retry-after", Some("1"));
    assert_problem(refused, 503).await;
    allow_connections(&mut admin_connection, &names, true).await;
    // The reconciler settles it: the order does not exist, so the 4 units come back.
    let mut stock = Value::Null;
    for _ in 0..100 {
        let current = product(&app, &id).await;
        stock = current["stock"].clone();
        if stock == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stock, 10, "the reservation was released");
    assert_eq!(count_rows(&app, "orders", "WHERE status = 'placed'").await, 0);
    // And ordering works again.
    let placed = order(&app, &user, json!([{"product_id": id, "quantity": 4}]), None).await;
    assert_eq!(placed.status(), 201);
}

#[tokio::test]
async fn scaled_only_writes_to_a_bucket_being_moved_answer_503_and_reads_keep_working() {
    require_scaled();
    let app = TestApp::with_settings(&[("OUTGROW_SHARD_MAP_REFRESH", "200ms")]).await;
    let (id, user) = product_and_buyer(&app, "Mug", 1000, 100).await;
    let items = json!([{"product_id": id, "quantity": 1}]);
    let first = json_body(order(&app, &user, items.clone(), None).await, 201).await;
    let first_path = format!("/api/v1/orders/{}", first["id"].as_str().expect("id"));
    let shown = app.run_cli(&["shards", "show", "--user", &user.id]);
    let line = shown
        .lines()
        .find(|line| line.starts_with("user "))
        .expect("the user's line");
    let bucket = line
        .split("bucket ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("bucket")
        .to_owned();
    let to = if line.ends_with("shard-0") { "1" } else { "0" };

    // The move holds the bucket `moving` for about twice --settle.
    let mut mover = app
        .command()
        .args([
            "shards", "move", "--bucket", &bucket, "--to", to, "--settle", "3s",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("shards move");
    let started = Instant::now();
    let mut placed = 1;
    let refused = loop {
        let response = order(&app, &user, items.clone(), None).await;
        if response.status() == 503 {
            break response;
        }
        // Until the servers read the map that marks the bucket moving.
        assert_eq!(response.status(), 201);
        placed += 1;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no write was refused while the bucket moved"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_header(&refused, "retry-after", Some("1"));
    assert_problem(refused, 503).await;
    let keyed = order(&app, &user, items.clone(), Some("k-moving")).await;
    assert_header(&keyed, "retry-after", Some("1"));
    assert_problem(keyed, 503).await;
    let cancel = cancel_order(&app, &user, first["id"].as_str().expect("id")).await;
    assert_problem(cancel, 503).await;
    // Reads keep working.
    assert_eq!(
        app.get_status_with_token(&first_path, &user.access_token).await,
        200
    );
    // No order was written for a refused one (a reservation it made is released by its
    // reconciler, as after any failed write).
    assert_eq!(
        count_rows(&app, "orders", "WHERE status = 'placed'").await,
        placed
    );

    let status = tokio::task::spawn_blocking(move || mover.wait().expect("wait"))
        .await
        .expect("join");
    assert!(status.success(), "the move finished");
    // Once the servers read the new map, writes go through again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let response = order(&app, &user, items.clone(), None).await;
        if response.status() == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after the move");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
