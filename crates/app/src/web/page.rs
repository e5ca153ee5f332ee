//! Rendering a page: the layout's data, the HTML response with its ETag (304 when the browser
//! already has it), `Cache-Control: no-cache` (always revalidated, so a deploy or a catalog
//! write shows at once) and the pages' Content-Security-Policy.

use askama::Template;
use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::Digest;

use super::{error::PageError, visitor::Visitor};
use crate::http::reply::etag_matches;

/// The pages' policy: everything from this origin only, no inline script or style (not even
/// `style=` attributes), forms post only here, no framing. Images may be `data:` (uPlot's
/// legend swatches are drawn on canvas; nothing else uses it) or `blob:` (the product form's
/// preview of the chosen file, which never leaves the browser).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// What every page's layout needs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The `<title>`, before " · Outgrow".
    pub title: String,
    /// The page's module under `web/js/` (`catalog` → `js/catalog.js`), loaded by `js/app.js`;
    /// empty for none.
    pub page: &'static str,
    /// Who is looking: decides the navigation (and the CSRF token of forms).
    pub visitor: Visitor,
    /// The CSRF token for this page's forms (empty on public pages, which carry none).
    pub csrf: String,
    /// A one-line message to show at the top (after a redirect: "Order placed").
    pub notice: Option<String>,
    /// Stylesheets beyond `css/app.css` (a chart page adds uPlot's).
    pub styles: &'static [&'static str],
}

impl Layout {
    /// A public page: the same for everyone (the navigation does not depend on who is signed
    /// in), so any cache may keep it and revalidate it.
    pub fn public(title: impl Into<String>, page: &'static str) -> Self {
        Self {
            title: title.into(),
            page,
            visitor: Visitor::Anonymous,
            csrf: String::new(),
            notice: None,
            styles: &[],
        }
    }

    /// The fingerprinted URL of `web/{name}`.
    pub fn asset(&self, name: &str) -> &'static str {
        outgrow_assets::url(name)
    }

    /// The modules to preload: the entry and the page's module with its static imports,
    /// so the browser fetches them in parallel with no waterfall.
    pub fn preloads(&self) -> Vec<&'static str> {
        let mut assets = outgrow_assets::with_imports("js/app.js");
        if !self.page.is_empty() {
            for asset in outgrow_assets::with_imports(&format!("js/{}.js", self.page)) {
                if !assets.iter().any(|known| known.name == asset.name) {
                    assets.push(asset);
                }
            }
        }
        assets.iter().map(|asset| asset.url).collect()
    }

    /// Whether the visitor is signed in.
    pub fn signed_in(&self) -> bool {
        self.visitor.principal().is_some()
    }

    /// Whether the visitor is an administrator.
    pub fn is_admin(&self) -> bool {
        self.visitor.is_admin()
    }
}

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

/// `html` as a `text/html` response with the pages' CSP; never stored by a shared cache unless
/// the caller says so.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Body::from(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
