//! What the handlers need from storage, as traits: one implementation per backend.
//!
//! Handlers hold `Arc<dyn UserRepository>` and `Arc<dyn SessionStore>` and never learn which
//! database (or, for sessions, which store) is behind them; adding a backend means adding an
//! implementation and a branch where the state is built, not touching a handler.

use chrono::{DateTime, Utc};
use outgrow_domain::{Email, Role, UserId, UserName};
use outgrow_platform::jobs::NewJob;
use uuid::Uuid;

/// A failure of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write; the text names what was duplicated.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// No connection could be had in time: the store is overloaded or down.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken database.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A stored value the application cannot read (e.g. an unknown role).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(error.to_string())
            }
            // The server refused or dropped the connection (SQLSTATE class 08 connection
            // exception, 53 insufficient resources such as too many connections, 57P operator
            // intervention such as a shutdown, 55000 for a database not accepting connections):
            // the database is unavailable, not broken.
            sqlx::Error::Database(ref database)
                if database.code().is_some_and(|code| {
                    // Five characters: a PostgreSQL SQLSTATE (SQLite's codes are numbers).
                    code.len() == 5
                        && (code.starts_with("08")
                            || code.starts_with("53")
                            || code.starts_with("57P")
                            || code == "55000")
                }) =>
            {
                Self::Unavailable(error.to_string())
            }
            other => Self::Database(other),
        }
    }
}

/// A user as the API shows it (no password hash); a `users` row decodes into it directly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct User {
    /// Identifier, time-ordered.
    #[sqlx(try_from = "Uuid")]
    pub id: UserId,
    /// Normalised e-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What the user may do (stored as its text).
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user with their password hash, for login and password changes only.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Credentials {
    /// The account.
    #[sqlx(flatten)]
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Identifier chosen by the caller (UUIDv7).
    pub id: UserId,
    /// Already normalised.
    pub email: Email,
    /// Display name.
    pub name: UserName,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role at creation.
    pub role: Role,
    /// Creation time.
    pub now: DateTime<Utc>,
}

/// Accounts.
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts a user and, in the same transaction, the jobs that follow it (the welcome
    /// e-mail): both commit or neither. A taken e-mail address is [`StoreError::Conflict`].
    async fn create(&self, new: NewUser, jobs: &[NewJob]) -> Result<User, StoreError>;
    /// The user with `id`, if any.
    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The user with `email` and their hash, if any. Backends with replicas must read this
    /// from the primary: a login right after registering has to find the account.
    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError>;
    /// The user with `id` and their hash, if any.
    async fn credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError>;
    /// Up to `limit` users with ids after `after`, in id (creation) order.
    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError>;
    /// Renames a user; `None` if there is no such user.
    async fn update_name(
        &self,
        id: UserId,
        name: &UserName,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
    /// Replaces a user's password hash; `None` if there is no such user.
    async fn update_password(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
    /// Changes a user's role; `None` if there is no such user.
    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError>;
}

/// A live login: what an access token, refresh token or cookie stands for (a `sessions` row
/// decodes into it directly).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Session {
    /// Identifier; access tokens carry it as `sid`.
    pub id: Uuid,
    /// Whose session.
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    /// Role at login.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Absolute end.
    pub expires_at: DateTime<Utc>,
}

/// A session to create, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The session.
    pub session: Session,
    /// SHA-256 of the first refresh token.
    pub refresh_hash: [u8; 32],
    /// SHA-256 of the browser cookie's secret, when one was asked for.
    pub cookie_hash: Option<[u8; 32]>,
    /// Creation time.
    pub now: DateTime<Utc>,
}

/// A refresh token presented for exchange (`<sid>.<secret>`), as hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshExchange {
    /// The session the token names.
    pub session_id: Uuid,
    /// SHA-256 of the presented token.
    pub presented: [u8; 32],
    /// SHA-256 of the token that replaces it.
    pub replacement: [u8; 32],
}

/// A presented session cookie (`<sid>.<secret>`), as the session id and its secret's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCookie {
    /// The session the cookie names.
    pub session_id: Uuid,
    /// SHA-256 of the cookie's secret.
    pub secret_hash: [u8; 32],
}

/// What presenting a refresh token led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now spent and the replacement is current.
    Rotated(Session),
    /// The token had already been exchanged: the session (the token family) is now revoked.
    Reused(Uuid),
    /// Unknown token, or its session is revoked or expired.
    Invalid,
}

/// Sessions and their refresh tokens.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session and its first refresh token.
    async fn create(&self, new: NewSession) -> Result<(), StoreError>;
    /// Exchanges the presented refresh token for its replacement, atomically: of two concurrent
    /// exchanges of one token, one wins and the other is reuse.
    async fn rotate(&self, exchange: RefreshExchange, now: DateTime<Utc>) -> Result<Rotation, StoreError>;
    /// The session `id` if it is neither revoked nor expired.
    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError>;
    /// The active session the cookie names, if the cookie's secret is that session's.
    async fn by_cookie(
        &self,
        cookie: SessionCookie,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;
    /// Revokes one session (idempotent).
    async fn revoke(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Revokes every active session of `user_id` except `keep`; returns their ids.
    async fn revoke_all(
        &self,
        user_id: UserId,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError>;
    /// Deletes sessions that ended before `before`; returns how many.
    async fn delete_expired(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Which backend stores sessions, for the start-up log.
    fn backend_name(&self) -> &'static str;
}

impl From<outgrow_platform::redis_client::RedisError> for StoreError {
    fn from(error: outgrow_platform::redis_client::RedisError) -> Self {
        Self::Unavailable(error.to_string())
    }
}
