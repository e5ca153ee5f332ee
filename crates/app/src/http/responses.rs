//! The problem answers that many routes document alike, named once so that a route's
//! `#[utoipa::path(responses(...))]` lists them by name (`Invalid, Forbidden, NotFound`) after
//! its own success answer. An answer whose description is particular to one route stays
//! written out in that route's list.

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

/// Declares each named answer as a type whose [`IntoResponses`] is that one problem answer.
macro_rules! problem_responses {
    ($($(#[doc = $doc:literal])* $name:ident = $status:literal, $description:literal;)*) => {$(
        $(#[doc = $doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                problem($status, $description)
            }
        }
    )*};
}

problem_responses! {
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
}
