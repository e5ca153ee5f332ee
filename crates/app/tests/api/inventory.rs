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

/// Found by schemathesis: `/users` and `/admin/jobs` declared their query parameters as path
/// parameters (utoipa's default without `parameter_in`), so clients generated from the document
/// sent them nowhere. Every parameter not in the path template must be declared elsewhere, and
/// every path parameter must be in the template.
#[tokio::test]
async fn parameters_are_declared_where_they_are_sent() {
    let app = TestApp::spawn().await;
    let document = app.get_json("/api/openapi.json").await;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().expect("name");
                let in_template = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"] == "path",
                    in_template,
                    "{method} {path}: parameter {name} is declared in {}",
                    parameter["in"]
                );
            }
        }
    }
}

/// The document's links (how one answer feeds the next, which schemathesis's stateful phase
/// follows) name operations it has, path parameters their targets take, and answers their
/// sources give; and the flows the store is built around are linked.
#[tokio::test]
async fn every_link_names_a_documented_operation_and_its_parameters() {
    let app = TestApp::spawn().await;
    let document = app.get_json("/api/openapi.json").await;
    let mut operations = BTreeMap::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            if let Some(id) = operation["operationId"].as_str() {
                let previous = operations.insert(id.to_owned(), (method.to_uppercase(), path.clone()));
                assert!(previous.is_none(), "operationId {id} is used twice");
            }
        }
    }
    let mut flows = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            for (status, answer) in operation["responses"].as_object().into_iter().flatten() {
                for (name, link) in answer["links"].as_object().into_iter().flatten() {
                    let target = link["operationId"].as_str().expect("operationId");
                    let (target_method, target_path) = operations.get(target).unwrap_or_else(|| {
                        panic!("{method} {path} {status} → {name}: no operation {target}")
                    });
                    assert!(status.starts_with('2'), "{method} {path}: a link from a {status}");
                    for (parameter, expression) in link["parameters"].as_object().into_iter().flatten() {
                        let (place, parameter) = parameter.split_once('.').expect("place.name");
                        assert!(
                            ["path", "query", "header"].contains(&place),
                            "{name}: parameter in {place}"
                        );
                        if place == "path" {
                            assert!(
                                target_path.contains(&format!("{{{parameter}}}")),
                                "{name}: {target_path} takes no {parameter}"
                            );
                        }
                        assert!(
                            expression
                                .as_str()
                                .is_some_and(|text| text.contains("$response.body#/")),
                            "{name}: {expression}"
                        );
                    }
                    flows.insert(format!(
                        "{} {path} → {target_method} {target_path}",
                        method.to_uppercase()
                    ));
                }
            }
        }
    }
    for flow in [
        "POST /api/v1/auth/register → POST /api/v1/auth/login",
        "POST /api/v1/auth/login → GET /api/v1/me",
        "POST /api/v1/auth/login → POST /api/v1/auth/refresh",
        "POST /api/v1/products → POST /api/v1/orders",
        "POST /api/v1/products → GET /api/v1/products/{id}",
        "POST /api/v1/orders → GET /api/v1/orders/{id}",
        "POST /api/v1/orders → POST /api/v1/orders/{id}/cancel",
        "POST /api/v1/uploads → GET /api/v1/uploads/{id}",
        "POST /api/v1/exports → GET /api/v1/exports/{id}",
    ] {
        assert!(flows.contains(flow), "no link {flow}; the links are {flows:#?}");
    }
}
