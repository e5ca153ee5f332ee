//! Talking to a [`TestApp`] over HTTP, and reading what it answered.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;

use super::TestApp;

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `GET path`, anonymously.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// `GET path`, anonymously, with one extra header (`If-None-Match`, `Cookie`, `Origin`…).
    pub async fn get_with_header(&self, path: &str, name: &str, value: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header(name, value)
            .send()
            .await
            .expect("request")
    }

    /// `GET path`, anonymously, asserting a 200; returns the JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        json_body(self.get(path).await, 200).await
    }

    /// `GET path` as the bearer of `token`, asserting a 200; returns the JSON body.
    pub async fn get_json_with_token(&self, path: &str, token: &str) -> Value {
        json_body(self.get_with_token(path, token).await, 200).await
    }

    /// `POST path` with a JSON `body` as the bearer of `token`.
    pub async fn post_json_with_token(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send_with_token(Method::POST, path, token, Some(body)).await
    }

    /// `POST path` without a body as the bearer of `token`.
    pub async fn post_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.send_with_token(Method::POST, path, token, None).await
    }

    /// `PATCH path` with a JSON `body` as the bearer of `token`.
    pub async fn patch_json_with_token(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.send_with_token(Method::PATCH, path, token, Some(body)).await
    }

    /// `DELETE path` as the bearer of `token`.
    pub async fn delete_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.send_with_token(Method::DELETE, path, token, None).await
    }

    /// `GET path` as the bearer of `token`.
    pub async fn get_with_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.send_with_token(Method::GET, path, token, None).await
    }

    /// `method path` as the bearer of `token`, with a JSON `body` when given.
    async fn send_with_token(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let request = self.client.request(method, self.url(path)).bearer_auth(token);
        match body {
            Some(body) => request.json(body),
            None => request,
        }
        .send()
        .await
        .expect("request")
    }

    /// The status of `GET path` as the bearer of `token`.
    pub async fn get_status_with_token(&self, path: &str, token: &str) -> u16 {
        self.get_with_token(path, token).await.status().as_u16()
    }

    /// `GET path` as the bearer of `token`, asserting a problem+json with `status`; returns it.
    pub async fn get_problem_with_token(&self, path: &str, token: &str, status: u16) -> Value {
        assert_problem(self.get_with_token(path, token).await, status).await
    }
}

/// Asserts that `response` has `status`; returns its JSON body.
pub async fn json_body(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("body");
    assert_eq!(actual, status, "body: {body}");
    assert_eq!(content_type, "application/problem+json", "body: {body}");
    let problem: Value = serde_json::from_str(&body).expect("problem json");
    assert_eq!(problem["status"], status);
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "{problem}"
    );
    assert!(problem["title"].is_string(), "{problem}");
    problem
}

/// Asserts that a problem's `detail` contains `text`.
pub fn assert_detail_contains(problem: &Value, text: &str) {
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains(text)),
        "{problem}"
    );
}

/// The text `field` of every element of the array `list` (`page["items"]`, `problem["errors"]`).
pub fn field_of_each<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|element| {
            element[field]
                .as_str()
                .unwrap_or_else(|| panic!("no text {field}: {element}"))
        })
        .collect()
}

/// Header lookup as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asserts that `response`'s header `name` is `expected` (`None`: absent).
#[track_caller]
pub fn assert_header(response: &reqwest::Response, name: &str, expected: Option<&str>) {
    assert_eq!(header(response, name).as_deref(), expected, "header {name}");
}

/// Parses `a=1; b=2` attribute lists of a Set-Cookie header.
pub fn cookie_attributes(set_cookie: &str) -> HashMap<String, String> {
    set_cookie
        .split(';')
        .map(|part| {
            let part = part.trim();
            match part.split_once('=') {
                Some((k, v)) => (k.to_ascii_lowercase(), v.to_owned()),
                None => (part.to_ascii_lowercase(), String::new()),
            }
        })
        .collect()
}
