//! The browser UI's static files (`web/` at the repository root), as built by `build.rs`:
//! fingerprinted by content, precompressed with Brotli and gzip, embedded in the binary. One
//! artifact serves them offline; serving is a table lookup, and a name never changes meaning,
//! so every asset may be cached for a year (`immutable`).
//!
//! A separate crate so that editing a stylesheet rebuilds this small crate and relinks, not the
//! whole application.

/// One embedded asset.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `web/` (`js/app.js`): how templates name it.
    pub name: &'static str,
    /// Where it is served: `/assets/` + the path with the content hash before the extension.
    pub url: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// A strong ETag (part of the SHA-256 of the bytes).
    pub etag: &'static str,
    /// The `web/` paths of the modules it imports statically (for `modulepreload`); modules it
    /// loads on demand (`import('./x.js')`) are not listed.
    pub imports: &'static [&'static str],
    /// The bytes.
    pub identity: &'static [u8],
    /// Brotli (quality 11), when that saves at least 5 %.
    pub brotli: Option<&'static [u8]>,
    /// gzip (level 9), when that saves at least 5 %.
    pub gzip: Option<&'static [u8]>,
}

/// Every asset, ordered by name.
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset served at `url` (`/assets/js/app.3f2a9c1b0d.js`).
pub fn by_url(url: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.url == url)
}

/// The asset built from `web/{name}`.
pub fn by_name(name: &str) -> Option<&'static Asset> {
    ASSETS
        .binary_search_by(|asset| asset.name.cmp(name))
        .ok()
        .map(|index| &ASSETS[index])
}

/// The URL of `web/{name}`; an unknown name yields a URL that answers 404 (and fails the
/// asset test), not a panic in a page.
pub fn url(name: &str) -> &'static str {
    by_name(name).map_or("/assets/missing", |asset| asset.url)
}

/// `name` and every module it imports, directly or not, depth first (each once): the
/// `modulepreload` list of a page whose entry is `name`.
pub fn with_imports(name: &str) -> Vec<&'static Asset> {
    fn visit(name: &str, seen: &mut Vec<&'static Asset>) {
        let Some(asset) = by_name(name) else { return };
        if seen.iter().any(|known| known.name == asset.name) {
            return;
        }
        seen.push(asset);
        for import in asset.imports {
            visit(import, seen);
        }
    }
    let mut seen = Vec::new();
    visit(name, &mut seen);
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_named_by_its_content_and_found_by_url_and_name() {
        assert!(!ASSETS.is_empty());
        for asset in ASSETS {
            assert!(asset.url.starts_with("/assets/"), "{}", asset.url);
            assert_eq!(by_url(asset.url).map(|a| a.name), Some(asset.name));
            assert_eq!(by_name(asset.name).map(|a| a.url), Some(asset.url));
            let hash = asset.url.rsplit('.').nth(1).unwrap_or_default();
            assert_eq!(hash.len(), 10, "{}", asset.url);
        }
    }

    #[test]
    fn precompressed_bodies_are_smaller_than_the_original() {
        for asset in ASSETS {
            for body in [asset.brotli, asset.gzip].into_iter().flatten() {
                assert!(body.len() < asset.identity.len(), "{}", asset.name);
            }
        }
        let script = by_name("js/app.js").expect("the entry module");
        assert!(script.brotli.is_some() && script.gzip.is_some());
    }

    #[test]
    fn pages_are_loaded_on_demand_not_preloaded_with_the_entry() {
        let entry: Vec<&str> = with_imports("js/app.js").iter().map(|asset| asset.name).collect();
        assert_eq!(entry, ["js/app.js", "js/cart-store.js"]);
        let text = std::str::from_utf8(by_name("js/app.js").expect("entry").identity).expect("UTF-8");
        let catalog = by_name("js/catalog.js").expect("catalog module");
        assert!(text.contains(catalog.url.rsplit('/').next().unwrap_or_default()));
    }

    #[test]
    fn relative_imports_point_at_fingerprinted_names() {
        for asset in ASSETS.iter().filter(|asset| asset.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.identity).expect("UTF-8");
            for import in asset.imports {
                let target = by_name(import).expect("an imported module");
                let file = target.url.rsplit('/').next().unwrap_or_default();
                assert!(text.contains(file), "{} should import {}", asset.name, target.url);
            }
        }
    }

    #[test]
    fn an_unknown_name_maps_to_a_url_that_is_not_served() {
        assert_eq!(url("js/none.js"), "/assets/missing");
        assert!(by_url("/assets/missing").is_none());
    }
}
