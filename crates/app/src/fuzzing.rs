//! Fuzz targets: one function per parser of untrusted input, each feeding the bytes to the
//! same function the HTTP path calls and checking what must hold beyond "does not panic".
//!
//! The cargo-fuzz crate in `fuzz/` calls these (one `fuzz_targets/<name>.rs` each), and the
//! unit test at the bottom replays every committed seed (`fuzz/seeds/<name>/`) and every
//! fixed crash (`fuzz/regressions/<name>/`) through them on stable Rust, in the ordinary test
//! run. `docs/fuzzing.md` lists the targets, their invariants and how to run them.
//!
//! Structured inputs are cut from the bytes by [`Bytes`] (a few fixed-size reads and the rest
//! as text) rather than with the `arbitrary` crate: every structure here is a handful of
//! integers plus some text, and the main crate takes no dependency for it.

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Multipart, Request},
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use chrono::{DateTime, TimeZone, Utc};
use ipnet::IpNet;
use outgrow_domain::{
    Currency, Email, ExportId, MAX_AMOUNT_MINOR, MAX_STOCK, Password, ProductDescription, ProductName, Role,
    SearchText, UserId, UserName,
};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{
    auth::{
        keys::JwtKey,
        tokens::{TokenSigner, session_of},
    },
    http::{
        auth::{LoginRequest, RefreshRequest, RegisterRequest},
        error::ApiError,
        events::{self, EventBatch},
        exports::{CreateExportRequest, DownloadQuery, check_format},
        extract::{self, ApiJson, ApiQuery},
        middleware::{HttpsLocation, client_ip as real_client_ip, https_location, over_https},
        orders::{self, CreateOrderRequest, ListOrdersQuery},
        products::{
            CreateProductRequest, UpdateProductRequest, check_new_product, check_product_patch,
            reads::{ListProductsQuery, check_list_query, next_page_link},
        },
        uploads::{FileInspector, public_flag},
        users::{ListUsersQuery, UpdateMeRequest, check_profile_update},
    },
    images, links,
};

/// The pixel limit the image targets enforce: small, so one decode stays in milliseconds.
const FUZZ_MAX_PIXELS: u64 = 512 * 512;
/// The upload size limit of the multipart target.
const FUZZ_UPLOAD_LIMIT: usize = 64 * 1024;
/// A fixed "now" (2026-12-01T00:00:00Z), so a replayed input behaves as it did when found.
const NOW_SECS: i64 = 1_796_083_200;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW_SECS, 0).single().unwrap_or_default()
}

/// A reader that cuts structured values off the front of the fuzzer's bytes; past the end
/// every read is zero, so any input yields a value.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The first line of `data` and what follows it (the whole input when there is no newline).
fn first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&byte| byte == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[], data),
    }
}

/// Polls a future whose inputs are all in memory (request bodies built from a byte slice) to
/// completion on this thread.
fn ready<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// A refusal of client input must be a 4xx problem, never a 500.
fn assert_client_error(error: &ApiError, what: &str) {
    let status = error.status();
    assert!(
        status.is_client_error(),
        "{what}: refused with {status} ({error:?})"
    );
}

/// E-mail addresses (`Email::parse`, as sign-up, login and the account pages call it).
/// Accepted ⇒ normalised (trimmed, lower case, ASCII, at most 254 bytes, one `@`), the same
/// address as typed up to ASCII case, and parsing it again gives it back.
pub fn email(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(email) = Email::parse(text) else {
        return;
    };
    let address = email.as_str();
    assert!(address.is_ascii(), "{address:?} is not ASCII");
    assert_eq!(address, address.trim());
    assert_eq!(address, address.to_ascii_lowercase());
    assert!(address.len() <= 254);
    assert_eq!(address.matches('@').count(), 1, "{address:?}");
    assert!(
        address.eq_ignore_ascii_case(text.trim()),
        "{text:?} was accepted as a different address, {address:?}"
    );
    assert_eq!(Email::parse(address).as_ref(), Ok(&email), "re-parse");
}

/// The password policy (`Password::parse`): first line an optional e-mail address, the rest
/// the password. Accepted ⇒ 8–128 characters, kept as typed, and not the e-mail address.
pub fn password(data: &[u8]) {
    let (email_line, rest) = first_line(data);
    let (Ok(email_text), Ok(input)) = (std::str::from_utf8(email_line), std::str::from_utf8(rest)) else {
        return;
    };
    let email = Email::parse(email_text).ok();
    let Ok(password) = Password::parse(input, email.as_ref()) else {
        return;
    };
    let chars = input.chars().count();
    assert!((8..=128).contains(&chars), "{chars} characters accepted");
    assert_eq!(password.expose(), input);
    if let Some(email) = &email {
        assert_ne!(input.trim().to_lowercase(), email.as_str());
    }
    // The redacted form is `Password(***)`: a password that is a piece of that text (the
    // fuzzer found `sword(***)`) is trivially "in" it; any other is never shown.
    let shown = format!("{password:?}");
    assert!(
        !shown.contains(input) || "Password(***)".contains(input),
        "{shown}"
    );
}

/// Names and other checked text: display names, product names and descriptions, searches,
/// currency codes, user ids. Accepted ⇒ trimmed, within its length, free of the control
/// characters it refuses, and a fixed point of its parser.
pub fn names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let no_controls =
        |value: &str, allowed: &[char]| !value.chars().any(|c| c.is_control() && !allowed.contains(&c));
    if let Ok(name) = UserName::parse(text) {
        let value = name.as_str();
        assert!(!value.is_empty() && value.chars().count() <= 100 && value == value.trim());
        assert!(no_controls(value, &[]));
        assert_eq!(UserName::parse(value).as_ref(), Ok(&name));
    }
    if let Ok(name) = ProductName::parse(text) {
        let value = name.as_str();
        assert!(!value.is_empty() && value.chars().count() <= 200 && value == value.trim());
        assert!(no_controls(value, &[]));
        assert_eq!(ProductName::parse(value).as_ref(), Ok(&name));
    }
    if let Ok(description) = ProductDescription::parse(text) {
        let value = description.as_str();
        assert!(value.chars().count() <= 5_000 && value == value.trim());
        assert!(no_controls(value, &['\n', '\t', '\r']));
        assert_eq!(ProductDescription::parse(value).as_ref(), Ok(&description));
    }
    if let Ok(Some(search)) = SearchText::parse(text) {
        let value = search.as_str();
        assert!(!value.is_empty() && value.chars().count() <= 200 && value == value.trim());
        assert!(no_controls(value, &[]));
        assert_eq!(SearchText::parse(value).ok().flatten().as_ref(), Some(&search));
    }
    if let Ok(currency) = Currency::parse(text) {
        let code = currency.as_str();
        assert!(code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_uppercase()));
        assert_eq!(Currency::parse(code), Ok(currency));
    }
    if let Ok(id) = UserId::parse(text) {
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
    }
}

/// Runs the JSON extractor of the API (`ApiJson`) over `body` as the handlers receive it.
/// Whatever the route, a body whose parsed form holds U+0000 anywhere must be seen by the
/// extractor's byte scan (the scan may also refuse a NUL the parser would drop, in a repeated
/// key), and a body that holds one is refused.
fn json_body<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    let holds_nul = extract::json_holds_nul(body);
    if let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(body) {
        assert!(
            holds_nul || !extract::holds_nul(&parsed),
            "the NUL scan missed a U+0000 the parser found"
        );
    }
    let request = Request::builder()
        .method("POST")
        .uri("/fuzz")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .ok()?;
    match ready(ApiJson::<T>::from_request(request, &())) {
        Ok(ApiJson(value)) => {
            assert!(!holds_nul, "a body holding U+0000 was accepted");
            Some(value)
        }
        Err(error) => {
            assert!(
                matches!(
                    error.status(),
                    StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE
                ),
                "a JSON body was refused with {}",
                error.status()
            );
            None
        }
    }
}

/// The JSON body of every route, through the API's own extractor (`ApiJson`) and then the
/// checks its handler runs before touching storage. The first line names the route
/// (`register`, `login`, `refresh`, `update_me`, `create_product`, `update_product`,
/// `create_order`, `events`, `create_export`), the rest is the body. A refusal is a 4xx; an
/// accepted body yields values within their documented bounds.
pub fn json_bodies(data: &[u8]) {
    let (route, body) = first_line(data);
    match route {
        b"register" => {
            let Some(request) = json_body::<RegisterRequest>(body) else {
                return;
            };
            // `register_account`'s checks, in its order.
            let email = Email::parse(&request.email).ok();
            let _ = UserName::parse(&request.name);
            let _ = Password::parse(&request.password, email.as_ref());
        }
        b"login" => {
            let Some(request) = json_body::<LoginRequest>(body) else {
                return;
            };
            let _ = Email::parse(&request.email);
        }
        b"refresh" => {
            let Some(request) = json_body::<RefreshRequest>(body) else {
                return;
            };
            // The session a refresh token names is found by its first part; the same session
            // is named by the canonical form the server issues.
            if let Some(sid) = session_of(&request.refresh_token) {
                let (_, random) = request.refresh_token.split_once('.').expect("a dot");
                assert_eq!(random.len(), 43);
                assert_eq!(session_of(&format!("{}.{random}", sid.simple())), Some(sid));
            }
        }
        b"update_me" => {
            let Some(request) = json_body::<UpdateMeRequest>(body) else {
                return;
            };
            match check_profile_update(&request) {
                Ok((name, password)) => {
                    assert!(name.is_some() || password.is_some());
                    assert!(password.is_none() || request.current_password.is_some());
                }
                Err(error) => assert_client_error(&error, "update_me"),
            }
        }
        b"create_product" => {
            let Some(request) = json_body::<CreateProductRequest>(body) else {
                return;
            };
            if let Ok(product) = check_new_product(&request) {
                assert!((0..=MAX_AMOUNT_MINOR).contains(&product.price.minor));
                assert!((0..=MAX_STOCK).contains(&product.stock));
                assert_eq!(
                    ProductName::parse(&product.name).map(ProductName::into_inner),
                    Ok(product.name)
                );
            }
        }
        b"update_product" => {
            let Some(request) = json_body::<UpdateProductRequest>(body) else {
                return;
            };
            match check_product_patch(&request) {
                Ok(patch) => {
                    assert!(
                        patch
                            .price
                            .is_none_or(|price| (0..=MAX_AMOUNT_MINOR).contains(&price.minor))
                    );
                    assert!(patch.stock.is_none_or(|stock| (0..=MAX_STOCK).contains(&stock)));
                }
                Err(error) => assert_client_error(&error, "update_product"),
            }
        }
        b"create_order" => {
            let Some(request) = json_body::<CreateOrderRequest>(body) else {
                return;
            };
            match orders::validate(&request) {
                Ok(lines) => {
                    assert!((1..=50).contains(&lines.len()));
                    assert!(lines.iter().all(|line| (1..=1_000).contains(&line.quantity)));
                    // The idempotency hash is over this serialisation: it must read back as
                    // the same request, or a retry would hash differently.
                    let canonical = serde_json::to_vec(&request).expect("an order serialises");
                    let again: CreateOrderRequest = serde_json::from_slice(&canonical).expect("reads back");
                    assert_eq!(serde_json::to_vec(&again).expect("serialises"), canonical);
                }
                Err(error) => assert_client_error(&error, "create_order"),
            }
        }
        b"events" => {
            let Some(batch) = json_body::<EventBatch>(body) else {
                return;
            };
            let max_age = std::time::Duration::from_secs(7 * 24 * 3600);
            match events::validate(batch, now(), max_age) {
                Ok(events) => {
                    assert!((1..=events::MAX_EVENTS).contains(&events.len()));
                    for event in events {
                        assert!(event.properties.len() <= 2_048);
                        assert!(
                            serde_json::from_str::<serde_json::Value>(&event.properties)
                                .is_ok_and(|v| v.is_object())
                        );
                    }
                }
                Err(error) => assert_client_error(&error, "events"),
            }
        }
        b"create_export" => {
            let Some(request) = json_body::<CreateExportRequest>(body) else {
                return;
            };
            if let Ok(format) = check_format(request.format) {
                assert!(format == "csv" || format == "json");
            }
        }
        _ => {}
    }
}

/// Multipart upload bodies (`POST /api/v1/uploads`): first line the boundary, the rest the
/// body, read by axum's `Multipart` part by part as `create_upload` does, the `public` part
/// through `public_flag` and the `file` part through the `FileInspector` that `store_file`
/// streams it through. Accepted ⇒ the file is one of the four image types by its bytes, within
/// the size and pixel limits.
pub fn multipart(data: &[u8]) {
    let (boundary, body) = first_line(data);
    let Ok(boundary) = std::str::from_utf8(boundary) else {
        return;
    };
    let Ok(request) = Request::builder()
        .method("POST")
        .uri("/api/v1/uploads")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    ready(async {
        let Ok(mut multipart) = Multipart::from_request(request, &()).await else {
            return;
        };
        let mut files = 0;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            match field.name() {
                Some("public") => {
                    if let Ok(text) = field.text().await {
                        let _ = public_flag(&text);
                    }
                }
                Some("file") => {
                    files += 1;
                    let mut inspector = FileInspector::new(FUZZ_UPLOAD_LIMIT);
                    let mut file = Vec::new();
                    let mut refused = false;
                    while let Ok(Some(chunk)) = field.chunk().await {
                        file.extend_from_slice(&chunk);
                        if let Err(error) = inspector.push(&chunk) {
                            assert_client_error(&error, "upload");
                            refused = true;
                            break;
                        }
                    }
                    if refused {
                        continue;
                    }
                    match inspector.finish(FUZZ_MAX_PIXELS) {
                        Ok(inspected) => {
                            assert_eq!(images::sniff(&file), Some(inspected.content_type));
                            assert!(inspected.size == file.len() && file.len() <= FUZZ_UPLOAD_LIMIT);
                            let (width, height) = inspected.dimensions;
                            assert!(u64::from(width) * u64::from(height) <= FUZZ_MAX_PIXELS);
                        }
                        Err(error) => assert_client_error(&error, "upload"),
                    }
                }
                _ => {}
            }
            if files > 4 {
                return;
            }
        }
    });
}

/// Image headers: type sniffing, dimensions read from the header alone, and the upload path's
/// `FileInspector` fed the bytes in chunks. Accepted ⇒ a sniffed type, dimensions within the
/// pixel limit, the same dimensions `images::dimensions` reads.
pub fn image_header(data: &[u8]) {
    let sniffed = images::sniff(data);
    let dimensions = images::dimensions(data);
    let mut inspector = FileInspector::new(usize::MAX);
    for chunk in data.chunks(4096) {
        if inspector.push(chunk).is_err() {
            assert!(sniffed.is_none(), "a sniffed image was refused while streaming");
            return;
        }
    }
    match inspector.finish(FUZZ_MAX_PIXELS) {
        Ok(inspected) => {
            assert_eq!(Some(inspected.content_type), sniffed);
            assert_eq!(Some(inspected.dimensions), dimensions);
            let (width, height) = inspected.dimensions;
            assert!(u64::from(width) * u64::from(height) <= FUZZ_MAX_PIXELS);
        }
        Err(error) => assert_client_error(&error, "image header"),
    }
}

/// Image decoding and the WebP variants (`images::render_variants`, what the variants job
/// runs on an upload). Rendered ⇒ the header was within the pixel limit, and every variant is
/// a WebP no wider than the original and never upscaled.
pub fn image_decode(data: &[u8]) {
    let Ok(variants) = images::render_variants(data, FUZZ_MAX_PIXELS) else {
        return;
    };
    let (width, height) = images::dimensions(data).expect("a rendered image has a header");
    assert!(u64::from(width) * u64::from(height) <= FUZZ_MAX_PIXELS);
    assert!(!variants.is_empty());
    for (variant, bytes) in variants {
        assert!(variant.width >= 1 && variant.width <= width && variant.height >= 1);
        assert_eq!(images::sniff(&bytes), Some("image/webp"));
        assert_eq!(variant.bytes, bytes.len() as u64);
    }
}

/// Runs the API's query extractor (`ApiQuery`) over `query`.
fn query<T: DeserializeOwned>(query: &str) -> Option<T> {
    let request = Request::builder().uri(format!("/fuzz?{query}")).body(()).ok()?;
    let (mut parts, ()) = request.into_parts();
    match ready(ApiQuery::<T>::from_request_parts(&mut parts, &())) {
        Ok(ApiQuery(value)) => Some(value),
        Err(error) => {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST);
            None
        }
    }
}

/// The query part of a `Link` target.
fn link_query(link: &str) -> &str {
    link.split_once('?').map_or("", |(_, query)| query)
}

/// Keyset cursors and the query strings that carry them (the catalog's `after` with its
/// filters, the users' `after`, the orders' `before`), through the API's query extractor and
/// the handlers' checks. A cursor that is accepted comes back unchanged through the
/// `Link: rel=next` the handler builds from it, filters included.
pub fn cursors(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(products) = query::<ListProductsQuery>(text)
        && let Ok((limit, search)) = check_list_query(&products)
    {
        let next = products.after.unwrap_or(Uuid::nil());
        let link = next_page_link(&products, limit, search.as_ref().map(SearchText::as_str), next);
        let again: ListProductsQuery =
            query(link_query(&link)).unwrap_or_else(|| panic!("the next link {link:?} does not parse"));
        assert_eq!(again.after, Some(next));
        assert_eq!(again.limit, Some(limit));
        assert_eq!(
            (again.min_price, again.max_price),
            (products.min_price, products.max_price)
        );
        let (_, search_again) = check_list_query(&again).expect("the next link is valid");
        assert_eq!(search_again, search, "the search changed through {link:?}");
    }
    if let Some(users) = query::<ListUsersQuery>(text)
        && let Some(after) = users.after.as_deref()
        && let Ok(id) = UserId::parse(after)
    {
        let again: ListUsersQuery = query(&format!("after={id}&limit=20")).expect("next link parses");
        assert_eq!(again.after.as_deref().map(UserId::parse), Some(Ok(id)));
    }
    if let Some(orders) = query::<ListOrdersQuery>(text)
        && let Some(before) = orders.before
    {
        let again: ListOrdersQuery = query(&format!("before={before}&limit=20")).expect("next link parses");
        assert_eq!(again.before, Some(before));
    }
}

/// The `Idempotency-Key` header (`orders::idempotency_key`). Accepted ⇒ exactly the bytes
/// sent, 1–255 visible ASCII characters; absent ⇒ no key; anything else ⇒ a 400.
pub fn idempotency_key(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("idempotency-key", value);
    match orders::idempotency_key(&headers) {
        Ok(Some(key)) => {
            assert_eq!(key.as_bytes(), data);
            assert!((1..=255).contains(&key.len()));
            assert!(key.bytes().all(|byte| byte.is_ascii_graphic()));
        }
        Ok(None) => panic!("a present header was taken for an absent one"),
        Err(error) => assert_eq!(error.status(), StatusCode::BAD_REQUEST),
    }
}

const KEY_A: &str = "fuzz-a";
const KEY_B: &str = "fuzz-b";

fn fuzz_signer(kids: &[&str]) -> TokenSigner {
    let keys: Vec<JwtKey> = kids
        .iter()
        .map(|kid| JwtKey {
            kid: (*kid).to_owned(),
            secret: SecretString::from(format!("{kid}-secret-0123456789abcdef0123456789")),
        })
        .collect();
    TokenSigner::new(&keys, std::time::Duration::from_secs(900)).expect("a valid fuzz signer")
}

/// JWT access tokens (`TokenSigner::verify`, what the authentication middleware runs on every
/// bearer token). The first byte picks a mode. Raw mode: the rest is a token, which must never
/// verify (no key of the fuzzer's signers ever signed it). Structured mode: claims cut from the
/// bytes are signed with a fresh test key; the token verifies to the same claims, with one
/// key and during a rotation, and a one-byte change anywhere in it is refused.
pub fn jwt(data: &[u8]) {
    let mut bytes = Bytes(data);
    let mode = bytes.u8();
    let one = fuzz_signer(&[KEY_A]);
    let rotating = fuzz_signer(&[KEY_B, KEY_A]);
    if mode % 2 == 0 {
        let Ok(token) = std::str::from_utf8(bytes.rest()) else {
            return;
        };
        assert!(one.verify(token, now()).is_err(), "an unsigned token verified");
        assert!(
            rotating.verify(token, now()).is_err(),
            "an unsigned token verified"
        );
        return;
    }
    let user = UserId(Uuid::from_bytes(bytes.take()));
    let sid = Uuid::from_bytes(bytes.take());
    let role = if bytes.u8() % 2 == 0 {
        Role::User
    } else {
        Role::Admin
    };
    // Issued up to ~18 hours before now: some tokens have expired. The real clock, not the
    // fixed `now()`: jsonwebtoken checks `exp` against the system time.
    let clock = Utc::now();
    let issued = clock - chrono::Duration::seconds(i64::from(bytes.u16()));
    let position = bytes.u16();
    let flip = bytes.u8();
    let token = one.issue(user, sid, role, issued).expect("signing");
    // Expired past the 5 s leeway; within a second of that edge either answer is right.
    let past_expiry = clock.timestamp() - ((issued + one.ttl()).timestamp() + 5);
    for signer in [&one, &rotating] {
        match signer.verify(&token, clock) {
            Ok(claims) => {
                assert!(past_expiry <= 1, "a token expired {past_expiry} s ago verified");
                assert_eq!((claims.sub, claims.sid, claims.role), (user, sid, role));
                assert_eq!(claims.iat, issued.timestamp());
            }
            Err(error) => assert!(past_expiry >= -1, "a fresh token was refused: {error}"),
        }
    }
    let mut mutated = token.clone().into_bytes();
    let at = usize::from(position) % mutated.len();
    mutated[at] ^= flip.max(1);
    if let Ok(mutated) = String::from_utf8(mutated) {
        for signer in [&one, &rotating] {
            assert!(
                signer.verify(&mutated, now()).is_err(),
                "a token changed at byte {at} still verifies: {mutated}"
            );
        }
    }
}

/// The link key of the export-link target.
const LINK_KEY: [u8; 32] = *b"fuzz-link-key-0123456789abcdef!!";

/// Signed export links (`links::verify_export_link` with a fixed key). The first byte picks a
/// mode. Raw mode: the rest is the link's query string, read by the API's extractor
/// (`DownloadQuery`); it never verifies. Structured mode: a link for an id and expiry cut from
/// the bytes verifies before its expiry and is `Expired` after; with one byte of its
/// signature changed, or another id or expiry, it never verifies (unless the change is only
/// the case of a hex digit: the same signature).
pub fn export_link(data: &[u8]) {
    let mut bytes = Bytes(data);
    let mode = bytes.u8();
    let id = ExportId(Uuid::from_bytes(bytes.take()));
    if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(bytes.rest()) else {
            return;
        };
        if let Some(link) = query::<DownloadQuery>(text) {
            let verdict = links::verify_with_key(&[LINK_KEY], id, link.expires, &link.signature, now());
            assert_eq!(
                verdict,
                Err(links::LinkError::BadSignature),
                "a forged link verified"
            );
        }
        return;
    }
    let expires = NOW_SECS + i64::from(bytes.u32() as i32);
    let position = bytes.u16();
    let flip = bytes.u8();
    let other = bytes.u32();
    let signature = links::signature(&LINK_KEY, id, expires);
    let verdict = links::verify_with_key(&[LINK_KEY], id, expires, &signature, now());
    if expires < NOW_SECS {
        assert_eq!(verdict, Err(links::LinkError::Expired));
    } else {
        assert_eq!(verdict, Ok(()));
    }
    let mut mutated = signature.clone().into_bytes();
    let at = usize::from(position) % mutated.len();
    mutated[at] ^= flip.max(1);
    if let Ok(mutated) = String::from_utf8(mutated)
        && !mutated.eq_ignore_ascii_case(&signature)
    {
        assert_eq!(
            links::verify_with_key(&[LINK_KEY], id, expires, &mutated, now()),
            Err(links::LinkError::BadSignature),
            "a link with a changed signature verified: {mutated}"
        );
    }
    let other_expiry = expires.wrapping_add(i64::from(other.max(1)));
    assert_eq!(
        links::verify_with_key(&[LINK_KEY], id, other_expiry, &signature, now()),
        Err(links::LinkError::BadSignature)
    );
    let other_id = ExportId(Uuid::from_u128(id.0.as_u128() ^ u128::from(other.max(1))));
    assert_eq!(
        links::verify_with_key(&[LINK_KEY], other_id, expires, &signature, now()),
        Err(links::LinkError::BadSignature)
    );
}

/// The client address behind trusted proxies (`http::middleware::client_ip`, the rate
/// limiter's key): a peer address and up to two trusted networks cut from the bytes, then one
/// `X-Forwarded-For` header per line of the rest. The answer is the peer when the peer is not
/// a trusted proxy; otherwise the nearest hop that is not a trusted proxy, read from the right
/// (every hop to its right is trusted), or the peer when all hops are trusted. So it never
/// answers an address that only an untrusted hop vouched for.
pub fn client_ip(data: &[u8]) {
    let mut bytes = Bytes(data);
    let peer = ip_from(&mut bytes);
    let mut trusted = Vec::new();
    for _ in 0..(bytes.u8() % 3) {
        let address = ip_from(&mut bytes);
        let max = if address.is_ipv4() { 32 } else { 128 };
        if let Ok(net) = IpNet::new(address, bytes.u8() % (max + 1)) {
            trusted.push(net.trunc());
        }
    }
    let mut request = Request::new(Body::empty());
    for line in bytes.rest().split(|&byte| byte == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            request.headers_mut().append("x-forwarded-for", value);
        }
    }
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer, 443)));
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));

    let answer = real_client_ip(&request, &trusted).expect("a request with a peer has a client");
    if !is_trusted(&peer) {
        assert_eq!(answer, peer, "an untrusted peer's headers were believed");
        return;
    }
    // The rule, stated as a walk from the nearest hop outwards across every line: a readable
    // trusted hop vouches for the next one; the first readable untrusted hop is the client;
    // an unreadable hop ends the walk at the last trusted address (nothing left of it was
    // vouched for). So the answer is never an address only an untrusted or unreadable hop
    // reported.
    let lines: Vec<&[u8]> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    let mut expected = peer;
    for hop in lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(|&byte| byte == b','))
    {
        let parsed = std::str::from_utf8(hop)
            .ok()
            .and_then(|hop| IpAddr::from_str(hop.trim()).ok());
        match parsed {
            Some(ip) if is_trusted(&ip) => expected = ip,
            Some(ip) => {
                expected = ip;
                break;
            }
            None => break,
        }
    }
    assert_eq!(
        answer, expected,
        "not the address the nearest trusted hops vouch for"
    );
}

/// The other headers a trusted proxy forwards: `X-Forwarded-Proto`
/// (`http::middleware::over_https`: HSTS, secure cookies) and `X-Forwarded-Host` / `Host`
/// (`https_location`: the plain-HTTP redirect). Input: a byte (bit 0: the peer is a trusted
/// proxy), then lines: `X-Forwarded-Proto`, `X-Forwarded-Host`, `Host` (each absent when empty
/// or not a header value), and the request target.
pub fn forwarded(data: &[u8]) {
    let mut bytes = Bytes(data);
    let trusted_peer = bytes.u8() & 1 == 1;
    let mut lines = bytes.rest().splitn(4, |&byte| byte == b'\n');
    let mut request = Request::new(Body::empty());
    for name in ["x-forwarded-proto", "x-forwarded-host", "host"] {
        let line = lines.next().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_bytes(line)
            && !line.is_empty()
        {
            request.headers_mut().insert(name, value);
        }
    }
    if let Ok(target) = axum::http::Uri::try_from(lines.next().unwrap_or_default()) {
        *request.uri_mut() = target;
    }
    let trusted: Vec<IpNet> = vec![IpNet::new(IpAddr::from([10, 0, 0, 0]), 8).expect("a network")];
    let peer = IpAddr::from(if trusted_peer {
        [10, 0, 0, 1]
    } else {
        [203, 0, 113, 7]
    });
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer, 443)));
    let headers = request.headers();

    // HTTPS only when a trusted proxy says so, in any case of the word.
    let said_https = headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
    assert_eq!(over_https(&request, &trusted), trusted_peer && said_https);

    // The redirect goes to the forwarded host, with the request's own path, and nowhere else.
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let chosen = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(axum::http::header::HOST))
        .and_then(|value| value.to_str().ok());
    match https_location(headers, path) {
        HttpsLocation::At(location) => {
            let host = chosen.expect("a redirect has a host");
            assert_eq!(location.scheme_str(), Some("https"));
            assert_eq!(
                location.authority().map(|authority| authority.as_str()),
                Some(host),
                "the redirect left the forwarded host"
            );
            let expected_path = if path.starts_with('/') { path } else { "/" };
            assert_eq!(
                location.path_and_query().map(|pq| pq.as_str()),
                Some(expected_path)
            );
            assert!(location.to_string().starts_with(&format!("https://{host}/")));
        }
        HttpsLocation::NoHost => assert!(chosen.is_none_or(|host| {
            host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })),
        HttpsLocation::NotAUri => {}
    }
}

fn ip_from(bytes: &mut Bytes<'_>) -> IpAddr {
    if bytes.u8().is_multiple_of(2) {
        IpAddr::from(bytes.take::<4>())
    } else {
        IpAddr::from(bytes.take::<16>())
    }
}

#[cfg(test)]
mod tests {
    //! Replays the committed seeds and fixed crashes through every target on stable Rust.

    use std::path::{Path, PathBuf};

    type Target = fn(&[u8]);

    /// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs`.
    const TARGETS: &[(&str, Target)] = &[
        ("email", super::email),
        ("password", super::password),
        ("names", super::names),
        ("json_bodies", super::json_bodies),
        ("multipart", super::multipart),
        ("image_header", super::image_header),
        ("image_decode", super::image_decode),
        ("cursors", super::cursors),
        ("idempotency_key", super::idempotency_key),
        ("jwt", super::jwt),
        ("export_link", super::export_link),
        ("client_ip", super::client_ip),
        ("forwarded", super::forwarded),
    ];

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn every_fuzz_target_has_a_source_file_and_seeds() {
        for (name, _) in TARGETS {
            let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
            assert!(source.is_file(), "{} is missing", source.display());
            let seeds = files(&fuzz_dir().join("seeds").join(name));
            assert!(
                !seeds.is_empty(),
                "fuzz target {name} has no seeds in fuzz/seeds/{name}/"
            );
        }
        let sources = files(&fuzz_dir().join("fuzz_targets"));
        assert_eq!(sources.len(), TARGETS.len(), "a fuzz target is not replayed here");
    }

    #[test]
    fn every_seed_and_regression_input_passes_its_fuzz_target() {
        for (name, target) in TARGETS {
            let inputs = files(&fuzz_dir().join("seeds").join(name))
                .into_iter()
                .chain(files(&fuzz_dir().join("regressions").join(name)));
            for input in inputs {
                let data = std::fs::read(&input).expect("readable input");
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "fuzz target {name} fails on {}", input.display());
            }
        }
    }
}
