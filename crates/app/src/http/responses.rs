//! The answers that routes document, named once so that a route's
//! `#[utoipa::path(responses(...))]` lists them by name (`Invalid, Forbidden, NotFound`) after
//! its own success answer: the problem answers (most shared by many routes, the rest each
//! particular to a feature, by feature) and the 304s of conditional reads.

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses,
    openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder},
};

use super::error::PROBLEM_JSON;

/// A problem+json answer (the `Problem` schema) under `status`, described by `description`
/// (empty for most: the problem's own `title` and `detail` say enough).
fn problem(status: u16, description: &str) -> BTreeMap<String, RefOr<Response>> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    let response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content)
        .build();
    BTreeMap::from([(status.to_string(), RefOr::T(response))])
}

/// An answer without a body (a 304).
fn bodiless(status: u16, description: &str) -> BTreeMap<String, RefOr<Response>> {
    let response = ResponseBuilder::new().description(description).build();
    BTreeMap::from([(status.to_string(), RefOr::T(response))])
}

/// Declares each named answer as a type whose [`IntoResponses`] is `$answer(status,
/// description)`.
macro_rules! named_responses {
    ($answer:ident: $($(#[doc = $doc:literal])* $name:ident = $status:literal, $description:literal;)*) => {$(
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                $answer($status, $description)
            }
        }
    )*};
}

named_responses! {
    bodiless:
    /// 304 of a catalog read whose `ETag` the client has.
    CatalogUnchanged = 304, "Unchanged since the `ETag` in `If-None-Match`";
    /// 304 of an upload's download whose `ETag` the client has.
    UploadUnchanged = 304, "Unchanged (If-None-Match)";
}

named_responses! {
    problem:
    // shared by many routes
    /// 400: the request does not hold (its fields, query or path).
    Invalid = 400, "";
    /// 400, described as invalid fields (the answer lists them).
    InvalidFields = 400, "Invalid fields";
    /// 401: no valid credential came with the request.
    NotSignedIn = 401, "Not signed in";
    /// 403: the caller may not do this.
    Forbidden = 403, "";
    /// 403 of the routes only admins may use.
    NotAdmin = 403, "Not an admin";
    /// 404: no such resource (or not one the caller may see).
    NotFound = 404, "";
    /// 429: over the route group's rate limit; `Retry-After` says when to come back.
    RateLimited = 429, "Rate limited";

    // auth
    /// 400 of sign-in: the e-mail address or password cannot be one.
    Malformed = 400, "Malformed request";
    /// 401 of sign-in, the same for an unknown e-mail and a wrong password.
    WrongCredentials = 401, "Wrong e-mail or password";
    /// 401 of a refresh: the token cannot be exchanged.
    BadRefreshToken = 401, "Unknown, spent, revoked or expired refresh token";

    // users
    /// 403 of a password change.
    WrongCurrentPassword = 403, "The current password is wrong";
    /// 400: the path names no user id.
    NotAUserId = 400, "Not a user id";
    /// 403: another user's account, and the caller is not an admin.
    NotOwnAccount = 403, "Another user, and the caller is not an admin";
    /// 404: no user has this id.
    NoSuchUser = 404, "No such user";
    /// 400 of a listing: its query does not hold.
    InvalidQuery = 400, "Invalid query";

    // uploads
    /// 400 of an upload: no image to read.
    NoFilePart = 400, "Not a multipart body, or no `file` part";
    /// 413 of an upload.
    UploadTooLarge = 413, "Over `upload_limit_bytes`";
    /// 415 of an upload: its bytes are of no accepted image type.
    NotAnImage = 415, "Not a PNG, JPEG, GIF or WebP image";
    /// 422 of an upload: its dimensions are refused or unreadable.
    UnreadableImage = 422, "Dimensions over the pixel limit (decompression bomb), or an unreadable header";
    /// 404: private uploads of others are not told apart from missing ones.
    NoReadableUpload = 404, "No such upload, or not readable by the caller";

    // exports
    /// 429 of a new export, over `rate_limit_export`.
    ExportRateLimited = 429, "Over the export rate limit";
    /// 404: the caller has no export of this id.
    NoSuchExport = 404, "No such export of the caller's";
    /// 403 of a download link whose signature fails or has expired.
    BadSignature = 403, "Bad or expired signature";

    // products
    /// 403 of the catalog's writes.
    NotAdministrator = 403, "Not an administrator";

    // orders
    /// 429 of a new order, over `rate_limit_order` (per user).
    OrderRateLimited = 429, "Over the order rate limit";
    /// 409 of a new order.
    OrderConflict = 409, "Not enough stock, or the key's first request is still running";
    /// 422 of a new order.
    OrderUnprocessable = 422, "An unknown product, mixed currencies, or the key reused with another body";
    /// 503 of a new order: come back after `Retry-After`.
    RetryAfter = 503, "Retry after `Retry-After`";
    /// 404: the caller may see no order of this id.
    NoSuchOrder = 404, "No such order of the caller's";
    /// 409 of a cancellation.
    AlreadyCancelled = 409, "Already cancelled";

    // events
    /// 503 of a batch of events.
    EventQueueFull = 503, "The queue is full or the server is stopping: retry after `Retry-After`";

    // admin
    /// 409 of a retry.
    NotDeadOrCancelled = 409, "Not dead or cancelled";
    /// 409 of a cancellation.
    RunningOrFinished = 409, "Running or finished";

    // operations
    /// 503 of readiness.
    NotReady = 503, "Draining, or a backend is down";
}

/// Adds to every operation the problem answers that come from the middleware stack and the
/// extractors rather than from the handler, where the operation can get them and does not
/// document them already: 400 (a malformed query, path or body), 413 and 415 (a body that is
/// too large, or not JSON), 401 (an operation that needs a caller), 403 (the admin-only ones:
/// tagged `admin`, or listed in `admin_only`), 404 (an unknown id) and 429 (the rate limits of
/// `/api/v1`). So the document lists every status an operation answers, each as problem+json.
pub fn document_stack_answers(openapi: &mut utoipa::openapi::OpenApi, admin_only: &[(&str, &str)]) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, operation) in operations_mut(item) {
            let Some(operation) = operation.as_mut() else {
                continue;
            };
            let mut add = |status: u16, description: &str| {
                operation
                    .responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        problem(status, description)
                            .into_values()
                            .next()
                            .expect("one answer")
                    });
            };
            let has_body = operation.request_body.is_some();
            let has_parameters = operation.parameters.as_ref().is_some_and(|list| !list.is_empty());
            let has_path_id = path.contains('{');
            let needs_caller = operation.security.as_ref().is_some_and(|list| !list.is_empty());
            let admin = operation
                .tags
                .as_ref()
                .is_some_and(|tags| tags.iter().any(|tag| tag == "admin"))
                || admin_only.contains(&(method, path.as_str()));
            if has_body || has_parameters || has_path_id {
                add(400, "The request does not hold: a malformed body, query or path");
            }
            if has_body {
                add(413, "The body is over the size limit");
                add(415, "The body is not JSON (`Content-Type: application/json`)");
            }
            if needs_caller {
                add(401, "No valid credential");
            }
            if admin {
                add(403, "Not an administrator");
            }
            if has_path_id {
                add(404, "No such resource (or not one the caller may see)");
            }
            if path.starts_with("/api/v1/") {
                add(
                    429,
                    "Over the route group's rate limit; `Retry-After` says when to come back",
                );
            }
        }
    }
}

/// The operations of a path item the API can have, by method.
pub fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> [(&'static str, &mut Option<utoipa::openapi::path::Operation>); 5] {
    [
        ("GET", &mut item.get),
        ("POST", &mut item.post),
        ("PUT", &mut item.put),
        ("PATCH", &mut item.patch),
        ("DELETE", &mut item.delete),
    ]
}
