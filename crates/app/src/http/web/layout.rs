//! The layout every page shares (the data `base.html` needs), the pages' Content-Security-Policy
//! and the HTML response that carries it. A leaf below `page` and `error`: both render HTML.

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::visitor::Visitor;

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
