//! JWT signing keys: `kid:secret` pairs from `jwt_keys`, or one generated on first start.
//!
//! The first key signs; every key verifies. Rotating is therefore: prepend a new key, deploy,
//! wait one access-token lifetime, drop the old one. Secrets are at least 32 bytes (HS256 wants
//! a key as long as its output) and never logged.

use std::{io::Write, path::Path};

use anyhow::{Context, bail, ensure};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};

/// The shortest accepted secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Where a generated key is kept, inside the data dir.
pub const GENERATED_KEYS_FILE: &str = "jwt-keys";

/// One key: its id (the JWT `kid` header) and secret.
pub struct JwtKey {
    /// Key id, sent in the token header so a verifier picks the right key.
    pub kid: String,
    /// The HMAC secret.
    pub secret: SecretString,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Parses `kid:secret,kid:secret`.
pub fn parse_keys(spec: &str) -> anyhow::Result<Vec<JwtKey>> {
    let mut keys: Vec<JwtKey> = Vec::new();
    for (index, pair) in spec
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let Some((kid, secret)) = pair.split_once(':') else {
            bail!(
                "jwt_keys (OUTGROW_JWT_KEYS): entry {} is not of the form kid:secret",
                index + 1
            );
        };
        let kid = kid.trim();
        ensure!(
            !kid.is_empty()
                && kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "jwt_keys (OUTGROW_JWT_KEYS): entry {} has an empty or non-alphanumeric key id",
            index + 1
        );
        ensure!(
            secret.len() >= MIN_SECRET_BYTES,
            "jwt_keys (OUTGROW_JWT_KEYS): the secret of key {kid:?} is shorter than {MIN_SECRET_BYTES} bytes"
        );
        ensure!(
            keys.iter().all(|key| key.kid != kid),
            "jwt_keys (OUTGROW_JWT_KEYS): key id {kid:?} appears twice"
        );
        keys.push(JwtKey {
            kid: kid.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        });
    }
    ensure!(
        !keys.is_empty(),
        "jwt_keys (OUTGROW_JWT_KEYS) is set but holds no key"
    );
    Ok(keys)
}

/// The configured keys, or those kept in `data_dir/jwt-keys`; `None` when neither exists yet.
/// Reads only (what `outgrow check` uses).
pub fn load(configured: Option<&SecretString>, data_dir: &Path) -> anyhow::Result<Option<Vec<JwtKey>>> {
    if let Some(spec) = configured {
        return parse_keys(spec.expose_secret()).map(Some);
    }
    let path = data_dir.join(GENERATED_KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(spec) => parse_keys(&spec)
            .map(Some)
            .with_context(|| format!("reading the generated keys in {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// The configured keys, or those kept in `data_dir/jwt-keys`, generated (mode 0600) when the
/// file does not exist yet.
pub fn load_or_generate(configured: Option<&SecretString>, data_dir: &Path) -> anyhow::Result<Vec<JwtKey>> {
    if let Some(keys) = load(configured, data_dir)? {
        return Ok(keys);
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let path = data_dir.join(GENERATED_KEYS_FILE);
    let secret: [u8; 48] = rand::random();
    let kid = format!("gen-{}", hex::encode(&secret[..4]));
    let spec = format!("{kid}:{}", URL_SAFE_NO_PAD.encode(secret));
    write_private(&path, &spec).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), kid, "generated a JWT signing key");
    parse_keys(&spec)
}

/// Writes `contents` to a new file readable by the owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The HMAC keys of signed links and CSRF tokens, one derived from each JWT key in order:
/// the first signs, any verifies.
#[derive(Clone)]
pub struct LinkKeys(Vec<[u8; 32]>);

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkKeys({} keys)", self.0.len())
    }
}

impl LinkKeys {
    /// Derives a key from each JWT key (SHA-256 of a fixed prefix and its secret).
    pub fn derive(keys: &[JwtKey]) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        use sha2::{Digest, Sha256};
        anyhow::ensure!(!keys.is_empty(), "no JWT key configured");
        Ok(Self(
            keys.iter()
                .map(|key| {
                    let mut hasher = Sha256::new();
                    hasher.update(b"outgrow signed links v1:");
                    hasher.update(key.secret.expose_secret().as_bytes());
                    hasher.finalize().into()
                })
                .collect(),
        ))
    }

    /// The key that signs.
    pub fn signing(&self) -> &[u8; 32] {
        &self.0[0]
    }

    /// Every key that verifies, the signing one first.
    pub fn verifying(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.0.iter()
    }

    /// The same keys as a slice.
    pub fn all(&self) -> &[[u8; 32]] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn several_keys_parse_in_order() {
        let keys = parse_keys(&format!("new:{SECRET}x, old:{SECRET}")).expect("valid");
        let kids: Vec<&str> = keys.iter().map(|key| key.kid.as_str()).collect();
        assert_eq!(kids, ["new", "old"]);
    }

    #[test]
    fn short_secrets_duplicates_and_malformed_entries_are_refused() {
        for bad in [
            "k1:short",
            SECRET,
            &format!("k1:{SECRET},k1:{SECRET}"),
            ",",
            &format!("bad kid:{SECRET}"),
        ] {
            let error = parse_keys(bad).expect_err(bad);
            assert!(
                !error.to_string().contains(SECRET),
                "secrets must not be echoed: {error}"
            );
        }
    }

    #[test]
    fn a_generated_key_is_kept_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_generate(None, dir.path()).expect("generated");
        let second = load_or_generate(None, dir.path()).expect("reloaded");
        assert_eq!(first[0].kid, second[0].kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(GENERATED_KEYS_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
