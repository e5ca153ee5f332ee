//! The route inventory: every route the server serves is in the OpenAPI document, or in
//! `http::undocumented_routes()` with a reason, and every documented operation is served.
//!
//! The router's own refusals are told apart from a handler's by what the guard writes into
//! them: an unknown path is a 404 problem whose detail is "no such resource" (a handler's 404
//! names what it did not find), a known path with another method a 405 with an `Allow` header.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use outgrow::http::{UndocumentedRoute, undocumented_routes};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

/// The methods a route may answer (`HEAD` follows `GET` and is not listed on its own).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// The documented operations: path template → methods.
fn documented(spec: &Value) -> BTreeMap<String, BTreeSet<Method>> {
    let paths = spec["paths"].as_object().expect("paths");
    paths
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|method| item.get(method.as_str().to_lowercase()).is_some())
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// `template` with every `{parameter}` (and `{*rest}`) filled with a dummy value.
fn concrete(template: &str) -> String {
    let mut path = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').expect("closing brace") + open;
        path.push_str(&rest[..open]);
        path.push_str(if rest[open..].starts_with("{*") {
            "swagger-ui.css"
        } else {
            "0"
        });
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    path
}

/// How the server answered one probe: whether the router itself refused it.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A handler (or the guard in front of it) answered: the route exists for this method.
    Served(u16),
    /// The router knows no such path.
    NoRoute,
    /// The router knows the path but not this method.
    WrongMethod,
}

async fn probe(app: &TestApp, method: &Method, path: &str) -> Answer {
    let response = app
        .client
        .request(method.clone(), app.url(path))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let allow = response.headers().contains_key("allow");
    let body = response.text().await.expect("body");
    let detail = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|problem| problem["detail"].as_str().map(str::to_owned));
    match status {
        404 if detail.as_deref() == Some("no such resource") => Answer::NoRoute,
        405 if allow => Answer::WrongMethod,
        other => Answer::Served(other),
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_no_other_method_is() {
    let app = TestApp::spawn().await;
    let spec: Value = app.get_json("/api/openapi.json").await;
    let documented = documented(&spec);
    assert!(documented.len() > 20, "{documented:?}");

    let mut wrong = Vec::new();
    for (template, methods) in &documented {
        let path = concrete(template);
        for method in &METHODS {
            let answer = probe(&app, method, &path).await;
            let expected_served = methods.contains(method);
            match (&answer, expected_served) {
                (Answer::Served(_), true) | (Answer::WrongMethod, false) => {}
                _ => wrong.push(format!(
                    "{method} {template} (probed as {path}): {answer:?}, documented: {expected_served}"
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the router and the document disagree:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_undocumented_route_is_listed_with_a_reason_and_served() {
    let app = TestApp::spawn().await;
    let spec: Value = app.get_json("/api/openapi.json").await;
    let documented = documented(&spec);

    for UndocumentedRoute { method, path, reason } in undocumented_routes() {
        assert!(!reason.trim().is_empty(), "{method} {path} needs a reason");
        assert!(
            !documented.contains_key(path),
            "{path} is documented: drop it from the list"
        );
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let served = concrete(path);
        assert!(
            matches!(probe(&app, &method, &served).await, Answer::Served(_)),
            "{method} {path} is listed but not served"
        );
        // A path may be listed once per method (a page's GET and its form's POST).
        let listed: Vec<&str> = undocumented_routes()
            .iter()
            .filter(|route| route.path == path)
            .map(|route| route.method)
            .collect();
        for other in METHODS.iter().filter(|other| !listed.contains(&other.as_str())) {
            assert_eq!(
                probe(&app, other, &served).await,
                Answer::WrongMethod,
                "{other} {path}"
            );
        }
    }
}

/// The sources that build the router: `http` (and everything below it) and `server`, which
/// serves it; the `#[cfg(test)]` module at the end of a file is left out.
fn router_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("server.rs")];
    walk(&src.join("http"), &mut files);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("source");
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            (file, code)
        })
        .collect()
}

#[test]
fn routes_are_mounted_only_documented_or_through_the_undocumented_list() {
    let mut found = Vec::new();
    let mut docs_routers = 0;
    for (file, code) in router_sources() {
        for call in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".fallback_service(",
        ] {
            // The browser routes are mounted by the one `.route(` of the `pages!` macro, which
            // also lists them (`web::routes`).
            let allowed = usize::from(call == ".route(" && file.ends_with("web/mod.rs"));
            if code.matches(call).count() > allowed {
                found.push(format!("{}: {call}", file.display()));
            }
        }
        for (at, _) in code.match_indices(".routes(") {
            let argument = code[at + ".routes(".len()..].trim_start();
            if !argument.starts_with("routes!(") && !argument.starts_with("utoipa_axum::routes!(") {
                found.push(format!("{}: .routes( without routes!", file.display()));
            }
        }
        docs_routers += code.matches("Router::from(").count();
    }
    assert!(
        found.is_empty(),
        "a route is mounted outside `routes!` (documented) and `http::undocumented` (listed in \
         `undocumented_routes`):\n{}",
        found.join("\n")
    );
    assert_eq!(
        docs_routers, 1,
        "only `http::undocumented` builds a router of its own"
    );
}
