//! A browser without JavaScript for the page tests: it keeps cookies, sends `Origin` on its
//! posts, and reads the CSRF token of a page's forms.

use std::{collections::BTreeMap, io::Cursor};

use super::{PASSWORD, TestApp, cookie_attributes, header};

/// A browser without JavaScript: it keeps cookies and sends `Origin` on its posts.
pub struct Browser<'a> {
    app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
}

/// A page as the browser received it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub html: String,
}

impl Page {
    /// The first form's CSRF token on the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .html
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf field: {}", self.html))
            + marker.len();
        let end = self.html[start..].find('"').expect("end of the token");
        self.html[start..start + end].to_owned()
    }

    /// Asserts a 303 and returns where it goes.
    #[track_caller]
    pub fn redirect(&self) -> &str {
        assert_eq!(self.status, 303, "{}", self.html);
        self.location.as_deref().expect("Location")
    }

    /// Asserts `status` and an HTML body.
    #[track_caller]
    pub fn assert_html(&self, status: u16) {
        assert_eq!(self.status, status, "{}", self.html);
        assert!(self.html.starts_with("<!doctype html>"), "{}", self.html);
    }
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    /// A browser already signed in (through the API's login with `session_cookie: true`).
    pub async fn signed_in(app: &'a TestApp, email: &str) -> Self {
        let mut browser = Self::new(app);
        let (pair, _) = app.cookie_login(email, PASSWORD).await;
        let (name, value) = pair.split_once('=').expect("cookie pair");
        browser.cookies.insert(name.to_owned(), value.to_owned());
        browser
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Reads the response, keeping its cookies (an expired one is forgotten).
    async fn receive(&mut self, response: reqwest::Response) -> Page {
        for set_cookie in response.headers().get_all("set-cookie") {
            let set_cookie = set_cookie.to_str().expect("ascii cookie");
            let (name, value) = set_cookie
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .expect("cookie pair");
            if value.is_empty()
                || cookie_attributes(set_cookie).get("max-age").map(String::as_str) == Some("0")
            {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status().as_u16(),
            location: header(&response, "location"),
            html: response.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .app
            .client
            .get(self.app.url(path))
            .header("accept", "text/html")
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.receive(response).await
    }

    /// Posts `fields` as `application/x-www-form-urlencoded`.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            path,
            "application/x-www-form-urlencoded".to_owned(),
            body.into_bytes(),
        )
        .await
    }

    /// Posts `parts` (name, file name for a file part, bytes) as `multipart/form-data`, in order.
    pub async fn post_multipart(&mut self, path: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Page {
        const BOUNDARY: &str = "outgrow-web-test-boundary";
        let mut body = Vec::new();
        for (name, file_name, bytes) in parts {
            let disposition = match file_name {
                Some(file_name) => format!(
                    "form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream"
                ),
                None => format!("form-data; name=\"{name}\""),
            };
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.send(path, format!("multipart/form-data; boundary={BOUNDARY}"), body)
            .await
    }

    async fn send(&mut self, path: &str, content_type: String, body: Vec<u8>) -> Page {
        let response = self
            .app
            .client
            .post(self.app.url(path))
            .header("accept", "text/html")
            .header("origin", &self.app.base)
            .header("cookie", self.cookie_header())
            .header("content-type", content_type)
            // A refused upload leaves its body unread and the server closes the connection:
            // no later request may find it in the pool.
            .header("connection", "close")
            .body(body)
            .send()
            .await
            .expect("POST");
        self.receive(response).await
    }

    /// Signs in through the form, asking to come back to `next`.
    pub async fn sign_in(&mut self, email: &str, password: &str, next: &str) -> Page {
        let form = self.get(&format!("/login?next={}", encode(next))).await;
        form.assert_html(200);
        let csrf = form.csrf();
        self.post(
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("next", next),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    /// The session cookie's `name=value`, as an API client would send it.
    pub fn session_cookie(&self) -> String {
        let value = self.cookies.get("outgrow_session").expect("a session cookie");
        format!("outgrow_session={value}")
    }
}

/// Percent-encodes a form value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The `data-order-id`s on an orders page, in order.
pub fn order_ids(html: &str) -> Vec<String> {
    html.split("data-order-id=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().expect("id").to_owned())
        .collect()
}

/// A PNG of `width`×`height` (a gradient, so it compresses like an image, not like a blank).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("encode");
    bytes
}
