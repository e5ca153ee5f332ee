//! Keyset paging, the same for every list: the `limit` parameter (1 to 100, 20 when absent),
//! one row fetched beyond the page to learn whether another follows (no count query), and the
//! `Link: <…>; rel="next"` header pointing at it.

use axum::{
    Json,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::error::FieldError;

/// The page size when `limit` is absent.
pub const DEFAULT_PAGE: u32 = 20;
/// The largest page.
pub const MAX_PAGE: u32 = 100;

/// The `limit` query parameter, checked.
pub fn page_size(limit: Option<u32>) -> Result<u32, FieldError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(FieldError::new("limit", format!("must be 1 to {MAX_PAGE}")))
    }
}

/// Cuts `rows`, fetched with `limit + 1`, to the page; returns the cursor of its last row
/// when another page follows.
pub fn cut_page<T, C>(rows: &mut Vec<T>, limit: u32, cursor: impl Fn(&T) -> C) -> Option<C> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    more.then(|| rows.last().map(cursor)).flatten()
}

/// Adds `Link: <next>; rel="next"` to `response`.
pub fn link_next(response: &mut Response, next: &str) {
    if let Ok(value) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
        response.headers_mut().insert(header::LINK, value);
    }
}

/// A page as JSON, with the link to the next one when there is one.
pub fn page_response<T: Serialize>(page: T, next: Option<String>) -> Response {
    let mut response = Json(page).into_response();
    if let Some(next) = next {
        link_next(&mut response, &next);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_size_defaults_to_twenty_and_stays_within_one_to_a_hundred() {
        assert_eq!(page_size(None).expect("default"), 20);
        assert_eq!(page_size(Some(100)).expect("largest"), 100);
        for refused in [0, 101] {
            let error = page_size(Some(refused)).expect_err("out of range");
            assert_eq!(error, FieldError::new("limit", "must be 1 to 100"));
        }
    }

    #[test]
    fn the_extra_row_is_cut_and_names_the_cursor_of_the_next_page() {
        let mut rows = vec![1, 2, 3];
        assert_eq!(cut_page(&mut rows, 2, |row| row * 10), Some(20));
        assert_eq!(rows, [1, 2]);
        let mut last_page = vec![1, 2];
        assert_eq!(cut_page(&mut last_page, 2, |row| row * 10), None);
        assert_eq!(last_page, [1, 2]);
    }

    #[test]
    fn the_next_page_is_linked_only_when_there_is_one() {
        let linked = page_response(vec![1], Some("/api/v1/things?after=1&limit=1".into()));
        assert_eq!(
            linked.headers()[header::LINK],
            "</api/v1/things?after=1&limit=1>; rel=\"next\""
        );
        assert!(page_response(vec![1], None).headers().get(header::LINK).is_none());
    }
}
