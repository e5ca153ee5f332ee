//! Reading and cancelling orders: private to their buyer (and admins), listed newest first,
//! cancelled once with the stock given back.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn orders_are_private_listed_newest_first_and_cancelled_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin("admin@example.org").await;
    let mug_id = &create_product_id(&app, &admin, "Mug", 1000, 10).await;
    let lamp_id = &create_product_id(&app, &admin, "Lamp", 5000, 5).await;
    let ann = app.signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;
    let mut ids = Vec::new();
    for quantity in 1..=3 {
        let response = order(
            &app,
            &ann,
            json!([{"product_id": mug_id, "quantity": quantity}, {"product_id": lamp_id, "quantity": 1}]),
            None,
        )
        .await;
        assert_eq!(response.status(), 201);
        let location = header(&response, "location").expect("Location");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            location,
            format!("/api/v1/orders/{}", body["id"].as_str().expect("id"))
        );
        assert_eq!(
            body["total_minor"],
            1000 * quantity + 5000,
            "computed by the server"
        );
        assert_eq!(body["status"], "placed");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(product(&app, mug_id).await["stock"], 4);
    // Each order's confirmation was queued with it and sent.
    let mail_dir = app.data_dir.join("mail");
    let started = std::time::Instant::now();
    loop {
        let confirmed = std::fs::read_dir(&mail_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                    .filter(|message| message.contains("Your Outgrow order"))
                    .count()
            })
            .unwrap_or(0);
        if confirmed == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{confirmed} of 3 confirmations"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let page: Value = app
        .get_json_with_token("/api/v1/orders?limit=2", &ann.access_token)
        .await;
    let listed: Vec<&str> = field_of_each(&page["items"], "id");
    assert_eq!(listed, [ids[2].as_str(), ids[1].as_str()], "newest first");
    let next = page["next_before"].as_str().expect("next page");
    let rest: Value = app
        .get_json_with_token(&format!("/api/v1/orders?before={next}"), &ann.access_token)
        .await;
    assert_eq!(rest["items"][0]["id"], ids[0].as_str());
    let bobs: Value = app.get_json_with_token("/api/v1/orders", &bob.access_token).await;
    assert_eq!(bobs["items"], json!([]));

    let path = format!("/api/v1/orders/{}", ids[0]);
    app.get_problem_with_token(&path, &bob.access_token, 404).await;
    assert_eq!(app.get_status_with_token(&path, &admin.access_token).await, 200);
    app.get_problem_with_token(
        &format!("/api/v1/orders/{}", uuid::Uuid::now_v7()),
        &ann.access_token,
        404,
    )
    .await;

    assert_problem(cancel_order(&app, &bob, &ids[0]).await, 404).await;
    let cancelled = json_body(cancel_order(&app, &ann, &ids[0]).await, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["cancelled_at"].is_string());
    assert_eq!(product(&app, mug_id).await["stock"], 5, "the stock is back");
    assert_eq!(product(&app, lamp_id).await["stock"], 3);
    assert_problem(cancel_order(&app, &ann, &ids[0]).await, 409).await;
    assert_problem(cancel_order(&app, &admin, &ids[0]).await, 409).await;
    assert_eq!(product(&app, mug_id).await["stock"], 5, "and only once");
    let seen: Value = app.get_json_with_token(&path, &ann.access_token).await;
    assert_eq!(seen["status"], "cancelled");
    // An admin may cancel anyone's order.
    let by_admin = cancel_order(&app, &admin, &ids[1]).await;
    assert_eq!(by_admin.status(), 200);
    assert_eq!(product(&app, lamp_id).await["stock"], 4);
}
