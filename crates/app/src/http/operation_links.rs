//! OpenAPI links: how one operation's answer feeds the next (register → sign in → use the
//! token; create or list products → read, change, order and delete them; place an order
//! → read and cancel it; upload → read, download a variant; export → poll; list jobs → read,
//! retry, cancel). A client generator or a contract fuzzer
//! (schemathesis's stateful phase) follows them to build call sequences that reach real
//! objects instead of random ids.
//!
//! Links name their target by `operationId`, looked up here from the target's method and path
//! so that renaming a handler cannot leave a link dangling. A link from a list takes the page's
//! first item; an empty page has none, and the link is not followed (schemathesis lists it
//! under "Failed to extract data", a note, not a failure).

use serde_json::{Value, json};
use utoipa::openapi::{OpenApi, extensions::ExtensionsBuilder, link::LinkBuilder, path::Operation};

use super::responses::operations_mut;

/// One link: from `source`'s answer with `status`, to `target`, with its parameters
/// (`path.id`, `header.Authorization`, … → a runtime expression) and request body.
struct Link {
    source: (&'static str, &'static str),
    status: &'static str,
    name: &'static str,
    description: &'static str,
    target: (&'static str, &'static str),
    parameters: &'static [(&'static str, &'static str)],
    body: Option<Value>,
}

const BEARER: &[(&str, &str)] = &[("header.Authorization", "Bearer {$response.body#/access_token}")];
const ID: &[(&str, &str)] = &[("path.id", "$response.body#/id")];
const FIRST_ID: &[(&str, &str)] = &[("path.id", "$response.body#/items/0/id")];
const FIRST_VARIANT: &[(&str, &str)] = &[
    ("path.id", "$response.body#/id"),
    ("path.width", "$response.body#/variants/0/width"),
];

fn links() -> Vec<Link> {
    let link = |source, status, name, description, target, parameters| Link {
        source,
        status,
        name,
        description,
        target,
        parameters,
        body: None,
    };
    let refresh_body = json!({"refresh_token": "$response.body#/refresh_token"});
    vec![
        Link {
            body: Some(json!({"email": "$request.body#/email", "password": "$request.body#/password"})),
            ..link(
                ("POST", "/api/v1/auth/register"),
                "202",
                "login",
                "Sign in with the address and password just registered",
                ("POST", "/api/v1/auth/login"),
                &[],
            )
        },
        link(
            ("POST", "/api/v1/auth/login"),
            "200",
            "me",
            "Use the access token",
            ("GET", "/api/v1/me"),
            BEARER,
        ),
        Link {
            body: Some(refresh_body.clone()),
            ..link(
                ("POST", "/api/v1/auth/login"),
                "200",
                "refresh",
                "Exchange the refresh token for a new pair",
                ("POST", "/api/v1/auth/refresh"),
                &[],
            )
        },
        link(
            ("POST", "/api/v1/auth/refresh"),
            "200",
            "me",
            "Use the new access token",
            ("GET", "/api/v1/me"),
            BEARER,
        ),
        Link {
            body: Some(refresh_body),
            ..link(
                ("POST", "/api/v1/auth/refresh"),
                "200",
                "refresh",
                "Exchange the new refresh token (the old one is spent)",
                ("POST", "/api/v1/auth/refresh"),
                &[],
            )
        },
        link(
            ("GET", "/api/v1/me"),
            "200",
            "user",
            "The same user by id",
            ("GET", "/api/v1/users/{id}"),
            ID,
        ),
        link(
            ("POST", "/api/v1/products"),
            "201",
            "product",
            "Read the new product",
            ("GET", "/api/v1/products/{id}"),
            ID,
        ),
        link(
            ("POST", "/api/v1/products"),
            "201",
            "update",
            "Change the new product",
            ("PATCH", "/api/v1/products/{id}"),
            ID,
        ),
        link(
            ("POST", "/api/v1/products"),
            "201",
            "delete",
            "Delete the new product",
            ("DELETE", "/api/v1/products/{id}"),
            ID,
        ),
        Link {
            body: Some(json!({"items": [{"product_id": "$response.body#/id", "quantity": 1}]})),
            ..link(
                ("POST", "/api/v1/products"),
                "201",
                "order",
                "Order one of the new product",
                ("POST", "/api/v1/orders"),
                &[],
            )
        },
        link(
            ("GET", "/api/v1/products/{id}"),
            "200",
            "update",
            "Change this product",
            ("PATCH", "/api/v1/products/{id}"),
            ID,
        ),
        link(
            ("GET", "/api/v1/products"),
            "200",
            "product",
            "Read the page's first product",
            ("GET", "/api/v1/products/{id}"),
            FIRST_ID,
        ),
        Link {
            body: Some(json!({"items": [{"product_id": "$response.body#/items/0/id", "quantity": 1}]})),
            ..link(
                ("GET", "/api/v1/products"),
                "200",
                "order",
                "Order one of the page's first product",
                ("POST", "/api/v1/orders"),
                &[],
            )
        },
        link(
            ("POST", "/api/v1/orders"),
            "201",
            "order",
            "Read the new order",
            ("GET", "/api/v1/orders/{id}"),
            ID,
        ),
        link(
            ("POST", "/api/v1/orders"),
            "201",
            "cancel",
            "Cancel the new order",
            ("POST", "/api/v1/orders/{id}/cancel"),
            ID,
        ),
        link(
            ("POST", "/api/v1/uploads"),
            "201",
            "upload",
            "Read the new upload",
            ("GET", "/api/v1/uploads/{id}"),
            ID,
        ),
        link(
            ("POST", "/api/v1/uploads"),
            "201",
            "content",
            "Download the original bytes",
            ("GET", "/api/v1/uploads/{id}/content"),
            ID,
        ),
        link(
            ("GET", "/api/v1/uploads/{id}"),
            "200",
            "variant",
            "Download the narrowest variant (once processing has made it)",
            ("GET", "/api/v1/uploads/{id}/variants/{width}"),
            FIRST_VARIANT,
        ),
        link(
            ("GET", "/api/v1/admin/jobs"),
            "200",
            "job",
            "Read the newest job",
            ("GET", "/api/v1/admin/jobs/{id}"),
            FIRST_ID,
        ),
        link(
            ("GET", "/api/v1/admin/jobs"),
            "200",
            "retry",
            "Retry the newest job (when dead or cancelled)",
            ("POST", "/api/v1/admin/jobs/{id}/retry"),
            FIRST_ID,
        ),
        link(
            ("GET", "/api/v1/admin/jobs"),
            "200",
            "cancel",
            "Cancel the newest job (when waiting)",
            ("POST", "/api/v1/admin/jobs/{id}/cancel"),
            FIRST_ID,
        ),
        link(
            ("POST", "/api/v1/exports"),
            "202",
            "export",
            "Poll the export",
            ("GET", "/api/v1/exports/{id}"),
            ID,
        ),
    ]
}

fn operation_mut<'a>(openapi: &'a mut OpenApi, (method, path): (&str, &str)) -> Option<&'a mut Operation> {
    let item = openapi.paths.paths.get_mut(path)?;
    operations_mut(item)
        .into_iter()
        .find(|(name, _)| *name == method)
        .and_then(|(_, operation)| operation.as_mut())
}

/// Adds the links to the answers they start from.
///
/// # Panics
/// When a link names an operation or an answer the document does not have: a renamed route
/// or a changed status must change its links too (every test that serves the document fails).
pub fn document_links(openapi: &mut OpenApi) {
    for link in links() {
        let target = operation_mut(openapi, link.target)
            .and_then(|operation| operation.operation_id.clone())
            .unwrap_or_else(|| panic!("link {}: no operation id for {:?}", link.name, link.target));
        // A link's body is the whole request: schemathesis would otherwise merge it into a
        // generated one (an order's real product as line 1 of fifty made-up ones).
        let whole_body = link.body.is_some().then(|| {
            ExtensionsBuilder::new()
                .add("x-schemathesis", json!({"merge_body": false}))
                .build()
        });
        let mut builder = LinkBuilder::new()
            .operation_id(target)
            .description(link.description)
            .request_body(link.body)
            .extensions(whole_body);
        for (name, expression) in link.parameters {
            builder = builder.parameter(*name, *expression);
        }
        let source = operation_mut(openapi, link.source)
            .unwrap_or_else(|| panic!("link {}: no operation {:?}", link.name, link.source));
        let Some(utoipa::openapi::RefOr::T(response)) = source.responses.responses.get_mut(link.status)
        else {
            panic!(
                "link {}: {:?} documents no {} answer",
                link.name, link.source, link.status
            );
        };
        response
            .links
            .insert(link.name.to_owned(), builder.build().into());
    }
}
