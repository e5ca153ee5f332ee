//! Argon2id password hashing on a bounded blocking pool.
//!
//! One Argon2id computation with OWASP's parameters (19 MiB, 2 passes, 1 lane) takes tens of
//! milliseconds of CPU. Run on the async reactor it would stall every other request, so it runs
//! on Tokio's blocking pool; a semaphore caps how many run at once so a login flood queues
//! instead of exhausting memory (19 MiB each) and threads.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _, phc::PasswordHash},
};
use chrono::Utc;
use outgrow_domain::{Email, Password, Role, UserId, UserName};
use tokio::sync::Semaphore;

use crate::repo::NewUser;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    /// A real hash of a random password: a login for an unknown e-mail verifies against it,
    /// so it costs the same time as a login with a wrong password (no user enumeration).
    dummy_hash: Arc<str>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("available_permits", &self.permits.available_permits())
            .finish()
    }
}

impl PasswordHasher {
    /// A hasher allowing `concurrency` computations at once (0 = one per CPU core).
    pub async fn new(concurrency: usize) -> anyhow::Result<Self> {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism().map(usize::from).unwrap_or(2),
            n => n,
        };
        // OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1.
        let params = Params::new(
            Params::DEFAULT_M_COST,
            Params::DEFAULT_T_COST,
            Params::DEFAULT_P_COST,
            None,
        )
        .map_err(|error| anyhow::anyhow!("argon2 parameters: {error}"))?;
        let mut hasher = Self {
            argon: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy_hash: Arc::from(""),
        };
        let random: [u8; 32] = rand::random();
        let dummy = Password::parse(&hex::encode(random), None)
            .map_err(|error| anyhow::anyhow!("dummy password: {error}"))?;
        hasher.dummy_hash = Arc::from(hasher.hash(dummy).await?);
        Ok(hasher)
    }

    /// A PHC string for `password`, with a fresh random salt.
    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        let argon = self.argon.clone();
        self.run("hash", move || {
            argon
                .hash_password(password.expose().as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|error| anyhow::anyhow!("hashing a password: {error}"))
        })
        .await?
    }

    /// A new account to store: a fresh id, created now, with `password` hashed. Sign-up and
    /// `outgrow admin create` both make accounts this way.
    pub async fn new_account(
        &self,
        email: Email,
        name: UserName,
        password: Password,
        role: Role,
    ) -> anyhow::Result<NewUser> {
        Ok(NewUser {
            id: UserId::new(),
            email,
            name,
            password_hash: self.hash(password).await?,
            role,
            now: Utc::now(),
        })
    }

    /// Whether `password` matches `stored`. With `stored = None` (unknown user) it verifies
    /// against the dummy hash and returns false, spending the same time as a real check.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<bool> {
        let known = stored.is_some();
        let hash = stored
            .map(Arc::<str>::from)
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_owned();
        let argon = self.argon.clone();
        let matches = self
            .run("verify", move || match PasswordHash::new(&hash) {
                Ok(parsed) => argon.verify_password(password.as_bytes(), &parsed).is_ok(),
                Err(error) => {
                    tracing::error!(%error, "a stored password hash is not a valid PHC string");
                    false
                }
            })
            .await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(
        &self,
        operation: &'static str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let started = Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .context("the password hasher is shut down")?;
        let result = tokio::task::spawn_blocking(work)
            .await
            .context("the password hashing task failed")?;
        metrics::histogram!("password_hash_duration_seconds", "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::parse(text, None).expect("valid password")
    }

    #[tokio::test]
    async fn a_hash_is_an_argon2id_phc_string_that_verifies() {
        let hasher = PasswordHasher::new(1).await.expect("hasher");
        let hash = hasher.hash(password("correct horse")).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify("correct horse", Some(&hash)).await.expect("verify"));
        assert!(!hasher.verify("wrong horse", Some(&hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = PasswordHasher::new(1).await.expect("hasher");
        let first = hasher.hash(password("correct horse")).await.expect("hash");
        let second = hasher.hash(password("correct horse")).await.expect("hash");
        assert_ne!(first, second, "salts must differ");
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1).await.expect("hasher");
        assert!(!hasher.verify("anything at all", None).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_fails_closed() {
        let hasher = PasswordHasher::new(1).await.expect("hasher");
        assert!(
            !hasher
                .verify("anything at all", Some("not-a-hash"))
                .await
                .expect("verify")
        );
    }
}
