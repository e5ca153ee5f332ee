//! `outgrow seed`: users, products and orders written in batches at a reported rate.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn seeding_fills_users_products_and_orders_at_a_reported_rate() {
    let app = TestApp::spawn().await;
    let output = app
        .command()
        .args([
            "seed",
            "--users",
            "300",
            "--products",
            "40",
            "--orders",
            "3000",
            "--batch",
            "1000",
        ])
        .output()
        .expect("run seed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("rows/s"), "{stdout}");
    assert_eq!(count_rows(&app, "orders", "").await, 3000);
    let email = stdout
        .split_whitespace()
        .find(|word| word.starts_with("seed-") && word.ends_with("@example.test"))
        .expect("a seeded e-mail in the output");
    let user = app.sign_in(email, "seeded-password").await;
    let page: Value = app
        .get_json_with_token("/api/v1/orders?limit=100", &user.access_token)
        .await;
    // 3,000 orders over 300 buyers: about ten each, read back from their shard.
    assert!(!page["items"].as_array().expect("items").is_empty(), "{page}");
    // Each order has 1 to 3 lines (of distinct products) of 1 to 3 units each.
    let lines = count_rows(&app, "order_items", "").await;
    assert!((3000..=9000).contains(&lines), "{lines} order lines");
    let units = sum_over_shards(&app, "SELECT COALESCE(SUM(quantity), 0) FROM order_items").await;
    assert!(
        (lines..=3 * lines).contains(&units),
        "{units} units in {lines} lines"
    );
    // The seed wrote the stock on the primary; a listing is read from a replica and then cached
    // for up to `cache_catalog_page_ttl` (10 s): a replica still replaying the seed's last
    // transaction can show (and the cache keep) the stock from before it for that long.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let sold = loop {
        let catalog: Value = app.get_json("/api/v1/products?limit=100").await;
        assert_eq!(catalog["items"].as_array().map(Vec::len), Some(40));
        let sold: i64 = catalog["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| 1_000_000_000 - item["stock"].as_i64().expect("stock"))
            .sum();
        if sold == units || std::time::Instant::now() > deadline {
            break sold;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Every product started with 1,000,000,000 units: the stock went down by exactly the units
    // in the orders' lines.
    assert_eq!(sold, units, "stock went down by exactly what was sold");
}
