//! Data exports and uploads through their forms.

use crate::helpers::*;

#[tokio::test]
async fn an_export_request_shows_up_with_its_status() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.register("ann@example.org", PASSWORD, "Ann").await.status(),
        202
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
        202
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
        202
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
