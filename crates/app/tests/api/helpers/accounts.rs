//! Accounts: registering and signing in, admins, cookies, and the tokens tests craft.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{TestApp, header};

/// A fixed signing key for tests that craft their own tokens.
pub const TEST_JWT_KEY: &str = "test-key:0123456789abcdef0123456789abcdef-test";
pub const TEST_JWT_KID: &str = "test-key";
pub const TEST_JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-test";
pub const PASSWORD: &str = "correct horse battery";

/// A registered and signed-in user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub id: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub async fn register(&self, email: &str, password: &str, name: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/register",
            &json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Starts a server with the default test settings and a user `email` signed in on it.
    pub async fn spawn_signed_in(email: &str) -> (TestApp, SignedIn) {
        let app = Self::spawn().await;
        let user = app.signed_in(email).await;
        (app, user)
    }

    /// `POST /api/v1/auth/refresh` with `refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post_json("/api/v1/auth/refresh", &json!({ "refresh_token": refresh_token }))
            .await
    }

    /// `count` refreshes of `refresh_token` at once; returns their statuses.
    pub async fn concurrent_refreshes(&self, refresh_token: &str, count: usize) -> Vec<u16> {
        let attempts = (0..count).map(|_| self.refresh(refresh_token));
        futures::future::join_all(attempts)
            .await
            .iter()
            .map(|response| response.status().as_u16())
            .collect()
    }

    /// `POST /api/v1/exports` of the bearer of `token`'s data in `format`.
    pub async fn request_export(&self, token: &str, format: &str) -> reqwest::Response {
        self.post_json_with_token("/api/v1/exports", token, &json!({ "format": format }))
            .await
    }

    /// Registers a user with a unique address (`buyer{index}-…`) and signs them in.
    pub async fn signed_in_quick(&self, index: usize) -> SignedIn {
        self.signed_in(&unique_email(&format!("buyer{index}"))).await
    }

    /// Registers `email` (with [`PASSWORD`]) and signs in.
    pub async fn signed_in(&self, email: &str) -> SignedIn {
        let registered = self.register(email, PASSWORD, "Test User").await;
        assert_eq!(registered.status(), 202, "register {email}");
        self.sign_in(email, PASSWORD).await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> SignedIn {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200, "login {email}");
        let body: Value = response.json().await.expect("json");
        SignedIn {
            id: body["user"]["id"].as_str().expect("id").to_owned(),

            access_token: body["access_token"].as_str().expect("token").to_owned(),
            refresh_token: body["refresh_token"].as_str().expect("refresh").to_owned(),
        }
    }

    /// Creates an admin through the CLI (the only way) and signs them in.
    pub async fn admin(&self, email: &str) -> SignedIn {
        let output = self
            .command()
            .args(["admin", "create", "--email", email])
            .env("OUTGROW_ADMIN_PASSWORD", PASSWORD)
            .output()
            .expect("run admin create");
        super::assert_succeeded(&output, "admin create");
        self.sign_in(email, PASSWORD).await
    }

    /// `PATCH /api/v1/me` with `body`.
    pub async fn patch_me(&self, token: &str, body: Value) -> reqwest::Response {
        self.patch_json_with_token("/api/v1/me", token, &body).await
    }

    /// Signs in asking for the browser cookie; returns the `name=value` cookie pair and the
    /// login response body.
    pub async fn cookie_login(&self, email: &str, password: &str) -> (String, Value) {
        let response = self
            .post_json(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password, "session_cookie": true}),
            )
            .await;
        assert_eq!(response.status(), 200, "cookie login {email}");
        let set_cookie = header(&response, "set-cookie").expect("Set-Cookie");
        let pair = set_cookie.split(';').next().expect("cookie pair").to_owned();
        (pair, response.json().await.expect("json"))
    }
}

/// The decoded (unverified) header and claims of a JWT.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        let part = parts.next().expect("jwt part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    };
    let header = decode();
    let claims = decode();
    (header, claims)
}

/// A token signed with `secret` (HS256) carrying `header` and `claims`.
pub fn sign_jwt(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac_sha256::sign;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(message.as_bytes(), secret.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// HMAC-SHA256, built from sha2 so tests need no extra crate.
mod hmac_sha256 {
    use sha2::{Digest, Sha256};

    pub fn sign(message: &[u8], key: &[u8]) -> [u8; 32] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let inner_key: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let outer_key: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new()
            .chain_update(&inner_key)
            .chain_update(message)
            .finalize();
        Sha256::new()
            .chain_update(&outer_key)
            .chain_update(inner)
            .finalize()
            .into()
    }
}

/// A unique e-mail address per call, so tests never collide.
pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.org", uuid::Uuid::new_v4().simple())
}
