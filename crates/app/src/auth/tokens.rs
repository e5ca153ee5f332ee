//! Access tokens (JWT, HS256) and the opaque secrets behind refresh tokens and cookies.
//!
//! Access tokens are verified without a lookup (signature, `exp`, `iat`, `kid`), then the
//! session they name (`sid`) is checked for revocation, so logout takes effect at once on every
//! instance. Refresh tokens and cookie secrets are 256-bit random strings; only their SHA-256
//! is stored, which suffices for high-entropy secrets (a slow hash protects guessable ones).

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use outgrow_domain::{Role, UserId};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::keys::JwtKey;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The session the token was issued for; revoking it kills the token.
    pub sid: Uuid,
    /// The user's role at issue time.
    pub role: Role,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Why a token was refused; the HTTP layer answers all of these with the same 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Bad structure, signature, algorithm or key id.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
}

/// Signs and verifies access tokens with the configured key set.
pub struct TokenSigner {
    signing_kid: String,
    signing_key: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    validation: Validation,
    ttl: chrono::Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("signing_kid", &self.signing_kid)
            .field("verifying_kids", &self.verifying.keys())
            .finish_non_exhaustive()
    }
}

/// Clock skew tolerated between instances, in seconds.
const LEEWAY_SECS: u64 = 5;

impl TokenSigner {
    /// A signer whose first key signs and all keys verify; tokens live `ttl`.
    pub fn new(keys: &[JwtKey], ttl: std::time::Duration) -> anyhow::Result<Self> {
        let first = keys
            .first()
            .ok_or_else(|| anyhow::anyhow!("no JWT key configured"))?;
        let signing_key = EncodingKey::from_secret(first.secret.expose_secret().as_bytes())
            .map_err(|error| anyhow::anyhow!("JWT key {:?}: {error}", first.kid))?;
        let mut verifying = HashMap::new();
        for key in keys {
            let decoding = DecodingKey::from_secret(key.secret.expose_secret().as_bytes())
                .map_err(|error| anyhow::anyhow!("JWT key {:?}: {error}", key.kid))?;
            verifying.insert(key.kid.clone(), decoding);
        }
        // Only HS256 is accepted: `alg: none` and algorithm-confusion tokens fail here.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            signing_kid: first.kid.clone(),
            signing_key,
            verifying,
            validation,
            ttl: chrono::Duration::from_std(ttl)?,
        })
    }

    /// Lifetime of issued tokens.
    pub fn ttl(&self) -> chrono::Duration {
        self.ttl
    }

    /// A signed access token for `user` in session `sid`.
    pub fn issue(&self, user: UserId, sid: Uuid, role: Role, now: DateTime<Utc>) -> anyhow::Result<String> {
        let claims = Claims {
            sub: user,
            sid,
            role,
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing_key)
            .map_err(|error| anyhow::anyhow!("signing an access token: {error}"))
    }

    /// The claims of a valid token.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        // With one key (no rotation under way) the header is parsed once, by `decode`, and its
        // `kid` checked after; with several, it is read first to pick the key.
        let key = if self.verifying.len() == 1 {
            self.verifying.get(&self.signing_kid)
        } else {
            let header =
                jsonwebtoken::decode_header(token).map_err(|error| TokenError::Invalid(error.to_string()))?;
            let kid = header
                .kid
                .ok_or_else(|| TokenError::Invalid("no kid header".into()))?;
            Some(
                self.verifying
                    .get(&kid)
                    .ok_or_else(|| TokenError::Invalid(format!("unknown kid {kid:?}")))?,
            )
        };
        let key = key.ok_or_else(|| TokenError::Invalid("no verifying key".into()))?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|error| {
                match error.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid(error.to_string()),
                }
            })?;
        match data.header.kid.as_deref() {
            Some(kid) if self.verifying.contains_key(kid) => {}
            Some(kid) => return Err(TokenError::Invalid(format!("unknown kid {kid:?}"))),
            None => return Err(TokenError::Invalid("no kid header".into())),
        }
        let claims = data.claims;
        // A token from the future means a forged `iat` or a badly skewed clock.
        if claims.iat > now.timestamp() + LEEWAY_SECS as i64 {
            return Err(TokenError::Invalid("issued in the future".into()));
        }
        Ok(claims)
    }
}

/// A fresh opaque secret (refresh token or cookie value) for session `sid`:
/// `<session id>.<256 random bits, base64url>`. Naming the session lets a store find the
/// session's keys directly (one Redis hash slot per session).
pub fn new_session_secret(sid: Uuid) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{}.{}", sid.simple(), URL_SAFE_NO_PAD.encode(bytes))
}

/// The session a secret names, or `None` for a malformed secret.
pub fn session_of(secret: &str) -> Option<Uuid> {
    let (sid, random) = secret.split_once('.')?;
    (random.len() == 43).then_some(())?;
    Uuid::try_parse(sid).ok()
}

/// What is stored for an opaque secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::parse_keys;

    const KEY_A: &str = "a:0123456789abcdef0123456789abcdef";
    const KEY_B: &str = "b:fedcba9876543210fedcba9876543210";

    fn signer(spec: &str) -> TokenSigner {
        TokenSigner::new(
            &parse_keys(spec).expect("keys"),
            std::time::Duration::from_secs(900),
        )
        .expect("signer")
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let signer = signer(KEY_A);
        let (user, sid, now) = (UserId::new(), Uuid::new_v4(), Utc::now());
        let token = signer.issue(user, sid, Role::User, now).expect("token");
        let claims = signer.verify(&token, now).expect("valid");
        assert_eq!(
            (claims.sub, claims.sid, claims.exp - claims.iat),
            (user, sid, 900)
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let signer = signer(KEY_A);
        let issued = Utc::now() - chrono::Duration::hours(1);
        let token = signer
            .issue(UserId::new(), Uuid::new_v4(), Role::User, issued)
            .expect("token");
        assert!(matches!(
            signer.verify(&token, Utc::now()),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn tokens_signed_by_an_older_key_verify_during_rotation() {
        let old = signer(KEY_B);
        let rotated = signer(&format!("{KEY_A},{KEY_B}"));
        let token = old
            .issue(UserId::new(), Uuid::new_v4(), Role::User, Utc::now())
            .expect("token");
        assert!(rotated.verify(&token, Utc::now()).is_ok());
        assert!(
            signer(KEY_A).verify(&token, Utc::now()).is_err(),
            "a dropped key no longer verifies"
        );
    }

    #[test]
    fn a_token_with_a_tampered_payload_is_refused() {
        let signer = signer(KEY_A);
        let token = signer
            .issue(UserId::new(), Uuid::new_v4(), Role::User, Utc::now())
            .expect("token");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).expect("b64")).expect("utf8");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("\"user\"", "\"admin\""));
        assert!(signer.verify(&parts.join("."), Utc::now()).is_err());
    }

    #[test]
    fn secrets_name_their_session_are_random_and_hash_to_32_bytes() {
        let sid = Uuid::new_v4();
        let (a, b) = (new_session_secret(sid), new_session_secret(sid));
        assert_ne!(a, b);
        assert_eq!(session_of(&a), Some(sid));
        assert_eq!(session_of("nonsense"), None);
        assert_eq!(session_of(&format!("{}.short", sid.simple())), None);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
    }
}
