//! Users and SQL sessions, one implementation over both backends. Every statement is a
//! constant below, written once; [`with_db!`] routes it (reads of a user's data to SQLite's
//! reader pool or a PostgreSQL replica, with read-your-writes; logins and session checks to
//! what sees every commit; writes to the writer or the primary). Session reads on PostgreSQL
//! all go to the primary: a revoked session must stop working at once, everywhere.

use chrono::{DateTime, Utc};
use outgrow_domain::{Email, Role, UserId, UserName};
use outgrow_platform::{
    jobs::{EnqueueJob, NewJob},
    sql::{Sql, is_unique_violation},
};
use uuid::Uuid;

use super::{Database, route::with_db};
use crate::repo::{
    Credentials, NewSession, NewUser, Rotation, Session, SessionStore, StoreError, User, UserRepository,
};

/// The columns of a [`User`] (a macro, so that the statements below are literals).
macro_rules! user_columns {
    () => {
        "id, email, name, role, created_at, updated_at"
    };
}

/// Registers a user (the unique index on `email` refuses a second account).
pub const USER_INSERT: Sql = Sql::new(
    "users.insert",
    concat!(
        "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING ",
        user_columns!()
    ),
);
/// A user by id.
pub const USER_BY_ID: Sql = Sql::new(
    "users.by_id",
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"),
);
/// Login: a user and their hash by e-mail.
pub const CREDENTIALS_BY_EMAIL: Sql = Sql::new(
    "users.credentials_by_email",
    concat!(
        "SELECT ",
        user_columns!(),
        ", password_hash FROM users WHERE email = $1"
    ),
);
/// A user and their hash by id (password change).
pub const CREDENTIALS_BY_ID: Sql = Sql::new(
    "users.credentials_by_id",
    concat!(
        "SELECT ",
        user_columns!(),
        ", password_hash FROM users WHERE id = $1"
    ),
);
/// A page of users after a keyset cursor (the nil UUID sorts before every real id).
pub const USER_LIST: Sql = Sql::new(
    "users.list",
    concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id > $1 ORDER BY id LIMIT $2"
    ),
);
/// Renames a user.
pub const USER_UPDATE_NAME: Sql = Sql::new(
    "users.update_name",
    concat!(
        "UPDATE users SET name = $1, updated_at = $2 WHERE id = $3 RETURNING ",
        user_columns!()
    ),
);
/// Replaces a user's password hash.
pub const USER_UPDATE_PASSWORD: Sql = Sql::new(
    "users.update_password",
    concat!(
        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 RETURNING ",
        user_columns!()
    ),
);
/// Changes a user's role (found by e-mail: `outgrow admin`).
pub const USER_SET_ROLE: Sql = Sql::new(
    "users.set_role",
    concat!(
        "UPDATE users SET role = $1, updated_at = $2 WHERE email = $3 RETURNING ",
        user_columns!()
    ),
);
/// Creates a session.
pub const SESSION_INSERT: Sql = Sql::new(
    "sessions.insert",
    "INSERT INTO sessions (id, user_id, role, cookie_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
);
/// Stores a refresh token (a session's first, or the replacement of a rotated one).
pub const REFRESH_INSERT: Sql = Sql::new(
    "sessions.refresh_insert",
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
);
/// Finds a refresh token and its session. PostgreSQL locks the token (`FOR UPDATE OF t`), so
/// concurrent exchanges of one token queue and the second sees it rotated; SQLite's single
/// writer connection already serialises the transaction (and has no `FOR UPDATE`).
pub const REFRESH_LOOKUP: Sql = Sql::per_backend(
    "sessions.refresh_lookup",
    "SELECT s.id, s.user_id, s.role, s.expires_at, s.revoked_at, t.rotated_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1 AND t.session_id = $2 FOR UPDATE OF t",
    "SELECT s.id, s.user_id, s.role, s.expires_at, s.revoked_at, t.rotated_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1 AND t.session_id = $2",
);
/// Spends a refresh token; the `rotated_at IS NULL` guard makes a second exchange of it a
/// no-op (reuse) on any backend.
pub const REFRESH_MARK_ROTATED: Sql = Sql::new(
    "sessions.mark_rotated",
    "UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2 AND rotated_at IS NULL",
);
/// An active session by id (the access-token check).
pub const SESSION_ACTIVE: Sql = Sql::new(
    "sessions.active",
    "SELECT id, user_id, role, expires_at FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
);
/// An active session by id and cookie secret.
pub const SESSION_BY_COOKIE: Sql = Sql::new(
    "sessions.by_cookie",
    "SELECT id, user_id, role, expires_at FROM sessions WHERE id = $1 AND cookie_hash = $2 AND revoked_at IS NULL AND expires_at > $3",
);
/// Revokes one session (idempotent).
pub const SESSION_REVOKE: Sql = Sql::new(
    "sessions.revoke",
    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
);
/// Revokes every active session of a user but one (the nil UUID keeps none).
pub const SESSION_REVOKE_ALL: Sql = Sql::new(
    "sessions.revoke_all",
    "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
);
/// Deletes sessions that have ended (their refresh tokens cascade).
pub const SESSION_DELETE_EXPIRED: Sql = Sql::new(
    "sessions.delete_expired",
    "DELETE FROM sessions WHERE expires_at < $1",
);

/// Every named statement of this module, for `scripts/explain-queries`.
pub const STATEMENTS: &[Sql] = &[
    USER_INSERT,
    USER_BY_ID,
    CREDENTIALS_BY_EMAIL,
    CREDENTIALS_BY_ID,
    USER_LIST,
    USER_UPDATE_NAME,
    USER_UPDATE_PASSWORD,
    USER_SET_ROLE,
    SESSION_INSERT,
    REFRESH_INSERT,
    REFRESH_LOOKUP,
    REFRESH_MARK_ROTATED,
    SESSION_ACTIVE,
    SESSION_BY_COOKIE,
    SESSION_REVOKE,
    SESSION_REVOKE_ALL,
    SESSION_DELETE_EXPIRED,
];

/// A row of `users` as stored (the role as text).
#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    role: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: UserId(row.id),
            email: row.email,
            name: row.name,
            role: Role::parse(&row.role).map_err(|error| StoreError::Corrupt(error.to_string()))?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A user with their password hash.
#[derive(sqlx::FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

impl TryFrom<CredentialsRow> for Credentials {
    type Error = StoreError;

    fn try_from(row: CredentialsRow) -> Result<Self, StoreError> {
        Ok(Self {
            user: row.user.try_into()?,
            password_hash: row.password_hash,
        })
    }
}

/// A row of `sessions` as the checks read it.
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    user_id: Uuid,
    role: String,
    expires_at: DateTime<Utc>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            user_id: UserId(row.user_id),
            role: Role::parse(&row.role).map_err(|error| StoreError::Corrupt(error.to_string()))?,
            expires_at: row.expires_at,
        })
    }
}

/// A refresh token's session, and whether either is spent.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    #[sqlx(flatten)]
    session: SessionRow,
    revoked_at: Option<DateTime<Utc>>,
    rotated_at: Option<DateTime<Utc>>,
}

/// [`UserRepository`] on either backend.
pub struct SqlUsers {
    db: Database,
}

impl SqlUsers {
    /// Users on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Runs one of the `UPDATE … RETURNING` statements (`$1` the new value, `$2` the time,
    /// `$3` the key) and marks the user as recently written.
    async fn update_returning(
        &self,
        statement: &Sql,
        value: &str,
        now: DateTime<Utc>,
        key: Key<'_>,
    ) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = with_db!(&self.db, write, |conn, sql| {
            let query = sqlx::query_as(sql(statement)).bind(value).bind(now);
            match key {
                Key::Id(id) => query.bind(id.0),
                Key::Email(email) => query.bind(email.as_str()),
            }
            .fetch_optional(conn)
            .await
        })?;
        let user = row.map(User::try_from).transpose()?;
        if let Some(user) = &user {
            self.db.wrote(user.id.0).await;
        }
        Ok(user)
    }
}

/// How an update finds its user.
#[derive(Clone, Copy)]
enum Key<'a> {
    Id(UserId),
    Email(&'a Email),
}

#[async_trait::async_trait]
impl UserRepository for SqlUsers {
    async fn create(&self, new: NewUser, jobs: &[NewJob]) -> Result<User, StoreError> {
        let row: UserRow = with_db!(&self.db, transaction, |tx, sql| {
            let row = sqlx::query_as(sql(USER_INSERT))
                .bind(new.id.0)
                .bind(new.email.as_str())
                .bind(new.name.as_str())
                .bind(&new.password_hash)
                .bind(new.role.as_str())
                .bind(new.now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|error| {
                    if is_unique_violation(&error) {
                        StoreError::Conflict("an account with this e-mail address")
                    } else {
                        StoreError::from(error)
                    }
                })?;
            for job in jobs {
                tx.enqueue(job).await?;
            }
            tx.commit().await?;
            Ok(row)
        })?;
        self.db.wrote(new.id.0).await;
        row.try_into()
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = with_db!(&self.db, read(Some(id)), |conn, sql| {
            sqlx::query_as(sql(USER_BY_ID))
                .bind(id.0)
                .fetch_optional(conn)
                .await
        })?;
        row.map(User::try_from).transpose()
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        // A login right after registering must find the account.
        let row: Option<CredentialsRow> = with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(CREDENTIALS_BY_EMAIL))
                .bind(email.as_str())
                .fetch_optional(conn)
                .await
        })?;
        row.map(Credentials::try_from).transpose()
    }

    async fn credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError> {
        let row: Option<CredentialsRow> = with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(CREDENTIALS_BY_ID))
                .bind(id.0)
                .fetch_optional(conn)
                .await
        })?;
        row.map(Credentials::try_from).transpose()
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        // Keyset pagination: `id > $1` walks the primary key index, so page 1,000 costs what
        // page 1 costs (OFFSET would scan every skipped row).
        let after = after.map_or(Uuid::nil(), |id| id.0);
        let rows: Vec<UserRow> = with_db!(&self.db, read(None), |conn, sql| {
            sqlx::query_as(sql(USER_LIST))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?;
        rows.into_iter().map(User::try_from).collect()
    }

    async fn update_name(
        &self,
        id: UserId,
        name: &UserName,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        self.update_returning(&USER_UPDATE_NAME, name.as_str(), now, Key::Id(id))
            .await
    }

    async fn update_password(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        self.update_returning(&USER_UPDATE_PASSWORD, password_hash, now, Key::Id(id))
            .await
    }

    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        self.update_returning(&USER_SET_ROLE, role.as_str(), now, Key::Email(email))
            .await
    }
}

/// [`SessionStore`] on either backend (when Redis does not hold the sessions).
pub struct SqlSessions {
    db: Database,
}

impl SqlSessions {
    /// Sessions on `db`.
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl SessionStore for SqlSessions {
    async fn create(&self, new: NewSession) -> Result<(), StoreError> {
        with_db!(&self.db, transaction, |tx, sql| {
            sqlx::query(sql(SESSION_INSERT))
                .bind(new.session.id)
                .bind(new.session.user_id.0)
                .bind(new.session.role.as_str())
                .bind(new.cookie_hash.map(|hash| hash.to_vec()))
                .bind(new.now)
                .bind(new.session.expires_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(sql(REFRESH_INSERT))
                .bind(new.refresh_hash.to_vec())
                .bind(new.session.id)
                .bind(new.now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn rotate(
        &self,
        session_id: Uuid,
        presented: [u8; 32],
        replacement: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        with_db!(&self.db, transaction, |tx, sql| {
            let found: Option<RefreshRow> = sqlx::query_as(sql(REFRESH_LOOKUP))
                .bind(presented.to_vec())
                .bind(session_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(found) = found else {
                return Ok(Rotation::Invalid);
            };
            let session = Session::try_from(found.session)?;
            if found.revoked_at.is_some() || session.expires_at <= now {
                return Ok(Rotation::Invalid);
            }
            let spent = found.rotated_at.is_some()
                || sqlx::query(sql(REFRESH_MARK_ROTATED))
                    .bind(now)
                    .bind(presented.to_vec())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 0;
            if spent {
                sqlx::query(sql(SESSION_REVOKE))
                    .bind(now)
                    .bind(session.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                return Ok(Rotation::Reused(session.id));
            }
            sqlx::query(sql(REFRESH_INSERT))
                .bind(replacement.to_vec())
                .bind(session.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated(session))
        })
    }

    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(SESSION_ACTIVE))
                .bind(id)
                .bind(now)
                .fetch_optional(conn)
                .await
        })?;
        row.map(Session::try_from).transpose()
    }

    async fn by_cookie(
        &self,
        session_id: Uuid,
        cookie_hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let row: Option<SessionRow> = with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(SESSION_BY_COOKIE))
                .bind(session_id)
                .bind(cookie_hash.to_vec())
                .bind(now)
                .fetch_optional(conn)
                .await
        })?;
        row.map(Session::try_from).transpose()
    }

    async fn revoke(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        with_db!(&self.db, write, |conn, sql| {
            sqlx::query(sql(SESSION_REVOKE))
                .bind(now)
                .bind(id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: UserId,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let keep = keep.unwrap_or(Uuid::nil());
        Ok(with_db!(&self.db, write, |conn, sql| {
            sqlx::query_scalar(sql(SESSION_REVOKE_ALL))
                .bind(now)
                .bind(user_id.0)
                .bind(keep)
                .fetch_all(conn)
                .await
        })?)
    }

    async fn delete_expired(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(with_db!(&self.db, write, |conn, sql| {
            sqlx::query(sql(SESSION_DELETE_EXPIRED))
                .bind(before)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?)
    }

    fn backend_name(&self) -> &'static str {
        match self.db {
            Database::Sqlite(_) => "sql (sqlite)",
            Database::Postgres(_) => "sql (postgres primary)",
        }
    }
}
