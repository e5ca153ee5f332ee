//! The orders page: only one's own orders, newest first, and the cancel form.

use serde_json::json;

use crate::helpers::*;

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
