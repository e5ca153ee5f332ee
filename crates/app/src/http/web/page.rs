//! Rendering a page: the layout's data, the HTML response with its ETag (304 when the browser
//! already has it), `Cache-Control: no-cache` (always revalidated, so a deploy or a catalog
//! write shows at once) and the pages' Content-Security-Policy.

use askama::Template;
use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::Digest;

use super::error::PageError;
pub use super::layout::{CONTENT_SECURITY_POLICY, Layout, html_response};
use crate::http::reply::etag_matches;

/// Who may keep a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The same for everyone: shared caches may keep it (and must revalidate it).
    Public,
    /// One visitor's: only their browser may keep it (and must revalidate it).
    Private,
}

/// Renders `template` as a 200 page with a strong ETag, or a 304 when `request` already names it.
pub fn render(
    template: &impl Template,
    audience: Audience,
    request: &HeaderMap,
) -> Result<Response, PageError> {
    let html = template
        .render()
        .map_err(|error| PageError::Internal(error.into()))?;
    let digest = sha2::Sha256::digest(html.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let mut response = if etag_matches(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        html_response(StatusCode::OK, html)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // On the 304 too: a browser merges a 304's headers into the page it keeps (RFC 9111
    // §4.3.4), so without the pages' policy here the security middleware's API policy
    // (`default-src 'none'`) would replace it and the revisited page would load no CSS or JS.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(match audience {
            Audience::Public => "public, no-cache",
            Audience::Private => "private, no-cache",
        }),
    );
    // On a 304 too: a browser replaces the stored page's headers with the 304's, and without
    // this the API's `default-src 'none'` (added to any answer that sets no policy) would block
    // the page's scripts and styles from its first revalidation on.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    Ok(response)
}

/// A `303 See Other` to `location`: the answer to a form POST (so reloading the next page does
/// not post again).
pub fn see_other(location: &str) -> Response {
    axum::response::Redirect::to(location).into_response()
}

/// Whether the request is a browser navigation wanting HTML.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A price for people: `1250` `EUR` → `12.50 EUR`.
pub fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
}

/// A price typed by a person (`12`, `12.5`, `12.50`) in minor units; `None` when it is not one.
pub fn parse_price(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 2 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Template)]
    #[template(source = "<p>{{ text }}</p>", ext = "html")]
    struct Snippet {
        text: &'static str,
    }

    #[test]
    fn a_revalidated_page_keeps_the_pages_content_security_policy() {
        let page = Snippet { text: "hello" };
        let first = render(&page, Audience::Public, &HeaderMap::new()).expect("render");
        let mut revalidation = HeaderMap::new();
        revalidation.insert(header::IF_NONE_MATCH, first.headers()[header::ETAG].clone());
        let again = render(&page, Audience::Public, &revalidation).expect("render");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            again.headers()[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
    }

    #[test]
    fn prices_are_shown_with_two_decimals_and_the_currency() {
        assert_eq!(money(1250, "EUR"), "12.50 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(-100, "EUR"), "-1.00 EUR");
    }

    #[test]
    fn typed_prices_become_minor_units_and_nonsense_is_refused() {
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price(" 12.5 "), Some(1250));
        assert_eq!(parse_price("0.07"), Some(7));
        for bad in ["", "-1", "1.234", "abc", "1.x", ".5", "99999999999999999999"] {
            assert_eq!(parse_price(bad), None, "{bad}");
        }
    }
}
