//! Serving the embedded assets: by fingerprinted URL only, so every answer may be cached for
//! a year (`immutable`: a browser does not even revalidate on reload); Brotli or gzip as
//! precompressed at build time, chosen by `Accept-Encoding` (never compressed per request);
//! a strong ETag for the rare revalidation.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use outgrow_assets::Asset;

use crate::http::{
    error::ApiError,
    reply::{etag_matches, header_items},
};

/// `GET /assets/{*path}`: one asset, by its fingerprinted path.
pub async fn serve_asset(uri: Uri, headers: HeaderMap) -> Response {
    match outgrow_assets::by_url(uri.path()) {
        Some(asset) => respond(asset, &headers),
        // The API's 404 (problem+json), with a detail of its own: an asset URL that is not (or
        // no longer) served, e.g. one of the previous deploy's.
        None => ApiError::NotFound("no such asset (asset names change with every build)").into_response(),
    }
}

/// The encodings a client accepts, in the order we prefer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

/// The best encoding of `asset` that `headers` accept (`q=0` refuses one).
fn negotiate(asset: &Asset, headers: &HeaderMap) -> (Encoding, &'static [u8]) {
    let accepts = |wanted: &str| {
        header_items(headers, header::ACCEPT_ENCODING, ',').any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|parameter| {
                parameter
                    .trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            coding.eq_ignore_ascii_case(wanted) && !refused
        })
    };
    match (asset.brotli, asset.gzip) {
        (Some(body), _) if accepts("br") => (Encoding::Brotli, body),
        (_, Some(body)) if accepts("gzip") => (Encoding::Gzip, body),
        _ => (Encoding::Identity, asset.identity),
    }
}

fn respond(asset: &'static Asset, headers: &HeaderMap) -> Response {
    let (encoding, body) = negotiate(asset, headers);
    let mut response = if etag_matches(headers, asset.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Body::from(body).into_response()
    };
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    out.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if asset.brotli.is_some() || asset.gzip.is_some() {
        out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    match encoding {
        Encoding::Brotli => {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        }
        Encoding::Gzip => {
            out.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Encoding::Identity => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("header"),
        );
        headers
    }

    #[test]
    fn brotli_is_preferred_then_gzip_then_the_original() {
        let asset = outgrow_assets::by_name("js/app.js").expect("the entry module");
        assert_eq!(
            negotiate(asset, &accepting("gzip, deflate, br")).0,
            Encoding::Brotli
        );
        assert_eq!(negotiate(asset, &accepting("gzip")).0, Encoding::Gzip);
        assert_eq!(
            negotiate(asset, &accepting("br;q=0, gzip;q=0.5")).0,
            Encoding::Gzip
        );
        assert_eq!(negotiate(asset, &HeaderMap::new()).0, Encoding::Identity);
        assert_eq!(negotiate(asset, &accepting("identity")).1, asset.identity);
    }
}
