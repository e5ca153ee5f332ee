//! Time-limited signed links (export downloads): `?expires=<unix>&signature=<hex>`, where the
//! signature is HMAC-SHA256 over the resource id and the expiry, keyed by a key derived from
//! the JWT signing key. Any instance can verify a link any other made; nothing is stored.
//!
//! Like tokens, links survive a key rotation: one link key is derived from each configured JWT
//! key ([`LinkKeys`]); the first signs, every one verifies. So while a fleet moves from
//! `old` to `new,old`, a link made by either kind of instance opens on both.
//!
//! Refusals are a [`LinkError`] of this module's own; the HTTP layer maps it to its 403.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use outgrow_domain::ExportId;
use sha2::Sha256;

use crate::state::AppState;

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a signature this service made for this resource and expiry.
    BadSignature,
    /// A genuine link, past its expiry.
    Expired,
}

impl LinkError {
    /// What to tell the user, as is.
    pub fn message(self) -> &'static str {
        match self {
            Self::BadSignature => "the link's signature is not valid",
            Self::Expired => "the link has expired; request a new export",
        }
    }
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for LinkError {}

fn mac(key: &[u8; 32], id: ExportId, expires: i64) -> Hmac<Sha256> {
    // A 32-byte key is always valid for HMAC.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(format!("export:{id}:{expires}").as_bytes());
    mac
}

/// The hex signature of a link to export `id` expiring at `expires` (Unix seconds).
pub(crate) fn signature(key: &[u8; 32], id: ExportId, expires: i64) -> String {
    hex::encode(mac(key, id, expires).finalize().into_bytes())
}

/// A download link for export `id`, valid for `export_link_ttl` from `now`.
pub fn export_link(state: &AppState, id: ExportId, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let expires_at = now
        + chrono::Duration::from_std(state.settings.export_link_ttl).unwrap_or(chrono::Duration::hours(24));
    let expires = expires_at.timestamp();
    let signature = signature(state.link_keys.signing(), id, expires);
    let url = format!(
        "{}/api/v1/exports/{id}/download?expires={expires}&signature={signature}",
        state.settings.public_base_url()
    );
    (url, expires_at)
}

/// Checks a link's signature (in constant time) and expiry.
pub fn verify_export_link(
    state: &AppState,
    id: ExportId,
    expires: i64,
    signature: &str,
    now: DateTime<Utc>,
) -> Result<(), LinkError> {
    verify_with_key(state.link_keys.all(), id, expires, signature, now)
}

/// [`verify_export_link`] with the link keys given, any of which may have signed (what the
/// fuzz target calls).
pub(crate) fn verify_with_key(
    keys: &[[u8; 32]],
    id: ExportId,
    expires: i64,
    signature: &str,
    now: DateTime<Utc>,
) -> Result<(), LinkError> {
    let signature = hex::decode(signature).map_err(|_| LinkError::BadSignature)?;
    let genuine = keys
        .iter()
        .any(|key| mac(key, id, expires).verify_slice(&signature).is_ok());
    if !genuine {
        return Err(LinkError::BadSignature);
    }
    if now.timestamp() > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}
