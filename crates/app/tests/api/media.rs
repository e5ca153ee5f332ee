//! Uploads (sniffed types, limits, WebP variants, authorised downloads with validators) and
//! data exports (a job, an e-mailed signed link, downloads, the strict rate limit).

use std::{
    io::Cursor,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    helpers::*,
    services::{S3Bucket, SmtpSink, link_in},
};

pub fn encode(format: image::ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("encode");
    bytes
}

/// A PNG whose header claims `width`×`height` but whose data is a few bytes: a decompression
/// bomb's calling card.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        out
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &header));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

const BOUNDARY: &str = "outgrow-test-boundary";

/// The head of a multipart `file` part, up to its first byte.
fn file_part_head(file_name: &str, declared: &str) -> Vec<u8> {
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: {declared}\r\n\r\n")
        .into_bytes()
}

/// `POST /api/v1/uploads` of a multipart `body` as the bearer of `token`.
async fn post_upload(app: &TestApp, token: &str, body: reqwest::Body) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/uploads"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload")
}

/// `POST /api/v1/uploads` of `bytes` as one file part (and `public=true` when asked).
pub async fn upload(
    app: &TestApp,
    token: &str,
    bytes: Vec<u8>,
    file_name: &str,
    declared: &str,
    public: bool,
) -> reqwest::Response {
    let mut body = Vec::new();
    if public {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"public\"\r\n\r\ntrue\r\n")
                .as_bytes(),
        );
    }
    body.extend(file_part_head(file_name, declared));
    body.extend_from_slice(&bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    post_upload(app, token, body.into()).await
}

/// Uploads a `width`×`height` PNG as the bearer of `token`, asserting a 201; returns its id.
pub async fn upload_png(app: &TestApp, token: &str, width: u32, height: u32, public: bool) -> String {
    let bytes = encode(image::ImageFormat::Png, width, height);
    let created = json_body(
        upload(app, token, bytes, "picture.png", "image/png", public).await,
        201,
    )
    .await;
    created["id"].as_str().expect("id").to_owned()
}

/// Polls the upload `id` until its variants are finished (or failed); returns it.
async fn wait_ready(app: &TestApp, token: &str, id: &str) -> Value {
    let (within, every) = (Duration::from_secs(20), Duration::from_millis(50));
    poll_until("the variants to finish", within, every, async || {
        let upload: Value = app
            .get_json_with_token(&format!("/api/v1/uploads/{id}"), token)
            .await;
        if upload["status"] != "processing" {
            Ok(upload)
        } else {
            Err(format!("{upload}"))
        }
    })
    .await
}

#[tokio::test]
async fn an_uploaded_image_gets_webp_variants_for_srcset_and_cacheable_downloads() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let original = encode(image::ImageFormat::Png, 1000, 500);

    let created = upload(
        &app,
        &user.access_token,
        original.clone(),
        "../../etc/passwd.png",
        "image/png",
        false,
    )
    .await;

    assert_eq!(created.status(), 201);
    let location = header(&created, "location").expect("Location");
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(
        (body["width"].as_i64(), body["height"].as_i64()),
        (Some(1000), Some(500))
    );
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/api/v1/uploads/{id}"));
    let ready = wait_ready(&app, &user.access_token, &id).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let widths: Vec<i64> = ready["variants"]
        .as_array()
        .expect("variants")
        .iter()
        .map(|v| v["width"].as_i64().expect("w"))
        .collect();
    assert_eq!(widths, [400, 800], "never upscaled to 1200");
    assert_eq!(ready["variants"][0]["height"], 200);
    let srcset = ready["srcset"].as_str().expect("srcset");
    assert!(
        srcset.contains(&format!("/api/v1/uploads/{id}/variants/400 400w")) && srcset.ends_with("800w"),
        "{srcset}"
    );

    let variant = app
        .get_with_token(&format!("/api/v1/uploads/{id}/variants/400"), &user.access_token)
        .await;
    assert_eq!(variant.status(), 200);
    assert_header(&variant, "content-type", Some("image/webp"));
    assert_header(&variant, "cache-control", Some("private, max-age=3600"));
    let etag = header(&variant, "etag").expect("ETag");
    let bytes = variant.bytes().await.expect("bytes");
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WEBP");
    let again = app
        .client
        .get(app.url(&format!("/api/v1/uploads/{id}/variants/400")))
        .bearer_auth(&user.access_token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional get");
    assert_eq!(again.status(), 304);

    let content = app
        .get_with_token(&format!("/api/v1/uploads/{id}/content"), &user.access_token)
        .await;
    assert_header(&content, "content-type", Some("image/png"));
    assert_eq!(
        content.bytes().await.expect("bytes").as_ref(),
        original.as_slice(),
        "the original, byte for byte"
    );
    app.get_problem_with_token(
        &format!("/api/v1/uploads/{id}/variants/1200"),
        &user.access_token,
        404,
    )
    .await;
}

#[tokio::test]
async fn jpeg_gif_and_webp_are_accepted_and_small_images_are_not_upscaled() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    for (format, content_type) in [
        (image::ImageFormat::Jpeg, "image/jpeg"),
        (image::ImageFormat::Gif, "image/gif"),
        (image::ImageFormat::WebP, "image/webp"),
    ] {
        // The declared type and name are lies; the bytes decide.
        let response = upload(
            &app,
            &user.access_token,
            encode(format, 300, 200),
            "photo.txt",
            "text/plain",
            false,
        )
        .await;
        assert_eq!(response.status(), 201, "{content_type}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["content_type"], content_type);
        let ready = wait_ready(&app, &user.access_token, body["id"].as_str().expect("id")).await;
        assert_eq!(ready["variants"][0]["width"], 300, "{ready}");
        assert_eq!(ready["variants"].as_array().map(Vec::len), Some(1));
    }
}

#[tokio::test]
async fn files_that_are_not_images_are_refused_with_415() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    for bytes in [
        b"%PDF-1.7 not an image at all".to_vec(),
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>".to_vec(),
        b"MZ\x90\x00 an executable".to_vec(),
    ] {
        let response = upload(&app, &user.access_token, bytes, "cat.png", "image/png", false).await;
        assert_problem(response, 415).await;
    }
}

/// A server refusing uploads over a limit, with a user and one accepted upload: the listings of
/// what is left must see its objects, and only them. On S3, in a bucket of the test's own: the
/// shared one holds every other test's objects.
struct LimitedUploads {
    // Dropped before the bucket, which can only go once the server is gone.
    app: TestApp,
    user: SignedIn,
    /// The accepted upload's key prefix, `uploads/{id}/`.
    accepted: String,
    bucket: Option<S3Bucket>,
}

impl LimitedUploads {
    async fn start(limit: &str) -> Self {
        let bucket = scaled().then(S3Bucket::create);
        let private = bucket.as_ref().map(S3Bucket::setting);
        let mut settings = vec![("OUTGROW_UPLOAD_LIMIT_BYTES", limit)];
        if let Some((key, value)) = &private {
            settings.push((key, value));
        }
        let app = TestApp::with_settings(&settings).await;
        let user = app.signed_in("ann@example.org").await;
        let small = encode(image::ImageFormat::Png, 10, 10);
        let accepted = upload(&app, &user.access_token, small, "small.png", "image/png", false).await;
        let accepted = json_body(accepted, 201).await;
        let accepted = format!("uploads/{}/", accepted["id"].as_str().expect("id"));
        Self {
            app,
            user,
            accepted,
            bucket,
        }
    }

    /// Asserts that `stored` (keys, or `uploads/{id}/` directories) holds the accepted upload
    /// and nothing else.
    fn assert_only_the_accepted_upload_in(&self, stored: &[String]) {
        assert!(
            stored.iter().any(|key| key.starts_with(&self.accepted)),
            "the accepted upload is listed: {stored:?}"
        );
        let left: Vec<&String> = stored
            .iter()
            .filter(|key| !key.starts_with(&self.accepted))
            .collect();
        assert!(left.is_empty(), "a refused upload left {left:?}");
    }
}

#[tokio::test]
async fn oversized_uploads_get_413_and_leave_nothing_behind() {
    let uploads = LimitedUploads::start("100000").await;
    let (app, user) = (&uploads.app, &uploads.user);
    let mut big = encode(image::ImageFormat::Png, 10, 10);
    big.resize(300_000, 0);
    assert_problem(
        upload(app, &user.access_token, big, "big.png", "image/png", false).await,
        413,
    )
    .await;

    let stored: Vec<String> = match &uploads.bucket {
        Some(bucket) => bucket.keys(),
        None => std::fs::read_dir(app.data_dir.join("objects/uploads"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| format!("uploads/{}/", entry.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default(),
    };
    uploads.assert_only_the_accepted_upload_in(&stored);
}

/// Every file under the local object store's `uploads/`, as a key (`uploads/{id}/original`),
/// staged parts of unfinished writes (`original#1`) included.
fn local_upload_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &std::path::Path, key: &str, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let key = format!("{key}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                walk(&entry.path(), &key, found);
            } else {
                found.push(key);
            }
        }
    }
    let mut found = Vec::new();
    walk(&app.data_dir.join("objects/uploads"), "uploads", &mut found);
    found
}

#[tokio::test]
async fn an_upload_refused_mid_stream_aborts_its_object_write_and_leaves_nothing() {
    // Over 5 MiB: the writer has sent a first part when the limit refuses the rest.
    let uploads = LimitedUploads::start("6000000").await;
    let (app, user) = (&uploads.app, &uploads.user);
    // A real PNG's head, so the type is accepted and the writer fills; streamed without a
    // Content-Length, so nothing refuses it before the upload handler has begun writing.
    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(file_part_head("big.png", "image/png")),
        Ok(encode(image::ImageFormat::Png, 10, 10)),
    ];
    chunks.extend((0..112).map(|_| Ok(vec![0; 64 * 1024])));
    chunks.push(Ok(format!("\r\n--{BOUNDARY}--\r\n").into_bytes()));

    let refused = post_upload(
        app,
        &user.access_token,
        reqwest::Body::wrap_stream(futures::stream::iter(chunks)),
    )
    .await;

    let problem = assert_problem(refused, 413).await;
    assert_eq!(problem["type"], "/problems/payload-too-large");
    let (stored, unfinished) = match &uploads.bucket {
        Some(bucket) => (bucket.keys(), bucket.unfinished_uploads()),
        None => (local_upload_files(app), Vec::new()),
    };
    uploads.assert_only_the_accepted_upload_in(&stored);
    assert!(
        unfinished.is_empty(),
        "the refused upload's multipart write was not aborted: {unfinished:?}"
    );
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_before_decoding() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let bomb = png_claiming(50_000, 50_000);
    assert!(bomb.len() < 100, "a tiny file…");
    let problem = assert_problem(
        upload(&app, &user.access_token, bomb, "bomb.png", "image/png", false).await,
        422,
    )
    .await;
    assert_detail_contains(&problem, "50000×50000");
}

/// A GIF can declare a logical screen 0 pixels wide and still decode: refused at upload, it
/// never reaches the variants job (which divided by that width; found by cargo-fuzz).
#[tokio::test]
async fn an_image_without_pixels_is_refused_with_422() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    for (width, height) in [(0u16, 300u16), (300, 0)] {
        let mut gif = encode(image::ImageFormat::Gif, 2, 2);
        gif[6..8].copy_from_slice(&width.to_le_bytes());
        gif[8..10].copy_from_slice(&height.to_le_bytes());
        let refused = upload(&app, &user.access_token, gif, "empty.gif", "image/gif", false).await;
        let problem = assert_problem(refused, 422).await;
        assert_detail_contains(&problem, "declares no pixels");
    }
}

#[tokio::test]
async fn malformed_upload_requests_are_400() {
    let (app, user) = TestApp::spawn_signed_in("ann@example.org").await;
    let json_body = app
        .post_json_with_token("/api/v1/uploads", &user.access_token, &json!({"file": "x"}))
        .await;
    assert_problem(json_body, 400).await;
    let only_public = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"public\"\r\n\r\ntrue\r\n--{BOUNDARY}--\r\n"
    );
    let no_file = post_upload(&app, &user.access_token, only_public.into()).await;
    assert_problem(no_file, 400).await;
    let anonymous = app
        .client
        .post(app.url("/api/v1/uploads"))
        .body("x")
        .send()
        .await
        .expect("post");
    assert_problem(anonymous, 401).await;
}

/// Uploads a 20×20 PNG as `owner`; returns the path of its original's content.
async fn content_path(app: &TestApp, owner: &SignedIn, file_name: &str, public: bool) -> String {
    let image = encode(image::ImageFormat::Png, 20, 20);
    let response = upload(app, &owner.access_token, image, file_name, "image/png", public).await;
    let created = json_body(response, 201).await;
    format!("/api/v1/uploads/{}/content", created["id"].as_str().expect("id"))
}

#[tokio::test]
async fn only_the_owner_an_admin_or_anyone_for_public_uploads_can_download() {
    let (app, ann) = TestApp::spawn_signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;
    let admin = app.admin("admin@example.org").await;
    let private_path = content_path(&app, &ann, "a.png", false).await;
    let public_path = content_path(&app, &ann, "b.png", true).await;

    assert_eq!(
        app.get_status_with_token(&private_path, &ann.access_token).await,
        200
    );
    assert_eq!(
        app.get_status_with_token(&private_path, &admin.access_token)
            .await,
        200
    );
    app.get_problem_with_token(&private_path, &bob.access_token, 404)
        .await;
    assert_problem(app.get(&private_path).await, 404).await;
    let anonymous = app.get(&public_path).await;
    assert_eq!(anonymous.status(), 200);
    assert_header(
        &anonymous,
        "cache-control",
        Some("public, max-age=31536000, immutable"),
    );
    app.get_problem_with_token("/api/v1/uploads/not-an-id", &ann.access_token, 400)
        .await;
}

#[tokio::test]
async fn an_export_is_built_by_a_job_mailed_as_a_signed_link_and_downloadable_once_signed() {
    let sink = SmtpSink::up(0);
    let app = TestApp::with_settings(&[("OUTGROW_SMTP_URL", &sink.url())]).await;
    let user = app.signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;
    upload(
        &app,
        &user.access_token,
        encode(image::ImageFormat::Png, 20, 20),
        "a.png",
        "image/png",
        false,
    )
    .await;

    let accepted = app.request_export(&user.access_token, "csv").await;
    assert_eq!(accepted.status(), 202);
    let location = header(&accepted, "location").expect("Location");
    let export: Value = accepted.json().await.expect("json");
    assert_eq!(export["status"], "pending");

    let started = Instant::now();
    let ready = app.wait_for_export(&location, &user.access_token).await;
    app.get_problem_with_token(&location, &bob.access_token, 404)
        .await;
    while !sink.messages().iter().any(|m| m.contains("data export is ready")) {
        assert!(started.elapsed() < Duration::from_secs(15), "no export e-mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = sink
        .messages()
        .into_iter()
        .find(|m| m.contains("data export is ready"))
        .expect("mail");
    let link = link_in(&message);
    assert!(link.starts_with(&app.base), "{link}");

    let download = app.client.get(&link).send().await.expect("download");
    assert_eq!(download.status(), 200);
    assert!(
        header(&download, "content-disposition")
            .expect("disposition")
            .starts_with("attachment")
    );
    let csv = download.text().await.expect("csv");
    assert!(csv.starts_with("record,id,created_at,field,value"), "{csv}");
    assert!(
        csv.contains("\"email\",\"ann@example.org\"") && csv.contains("\"upload\""),
        "{csv}"
    );
    let status_link = ready["download_url"].as_str().expect("link in status");
    assert_eq!(
        app.client
            .get(status_link)
            .send()
            .await
            .expect("download")
            .status(),
        200
    );

    let tampered = link.replace("signature=", "signature=00");
    assert_problem(app.client.get(&tampered).send().await.expect("get"), 403).await;
    let other_id = link.replace(
        export["id"].as_str().expect("id"),
        &uuid::Uuid::now_v7().to_string(),
    );
    assert_problem(app.client.get(&other_id).send().await.expect("get"), 403).await;
}

#[tokio::test]
async fn json_exports_hold_the_account_and_expired_links_are_refused() {
    let app = TestApp::with_settings(&[("OUTGROW_EXPORT_LINK_TTL", "1s")]).await;
    let user = app.signed_in("ann@example.org").await;
    let export: Value = app
        .request_export(&user.access_token, "json")
        .await
        .json()
        .await
        .expect("json");
    let path = format!("/api/v1/exports/{}", export["id"].as_str().expect("id"));
    let ready = app.wait_for_export(&path, &user.access_token).await;
    let link = ready["download_url"].as_str().expect("link").to_owned();
    let document: Value = app
        .client
        .get(&link)
        .send()
        .await
        .expect("download")
        .json()
        .await
        .expect("json");
    assert_eq!(document["account"]["email"], "ann@example.org");
    assert_eq!(document["orders"], json!([]), "orders are part of the export");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let problem = assert_problem(app.client.get(&link).send().await.expect("get"), 403).await;
    assert_detail_contains(&problem, "expired");
    let bad_format = app.request_export(&user.access_token, "xml").await;
    assert_problem(bad_format, 400).await;
}

#[tokio::test]
async fn exports_have_a_strict_rate_limit_per_user() {
    let app = TestApp::with_settings(&[("OUTGROW_RATE_LIMIT_EXPORT", "2/1h")]).await;
    let ann = app.signed_in("ann@example.org").await;
    let bob = app.signed_in("bob@example.org").await;
    let request = |token: String| {
        let app = &app;
        async move { app.request_export(&token, "csv").await }
    };
    assert_eq!(request(ann.access_token.clone()).await.status(), 202);
    let second = request(ann.access_token.clone()).await;
    assert_eq!(
        header(&second, "ratelimit-policy").as_deref(),
        Some("\"export\";q=2;w=3600")
    );
    assert_eq!(second.status(), 202);
    let third = request(ann.access_token.clone()).await;
    assert!(header(&third, "retry-after").is_some());
    assert_problem(third, 429).await;
    assert_eq!(
        request(bob.access_token.clone()).await.status(),
        202,
        "bob has his own budget"
    );
}
