//! The PostgreSQL repositories. Writes and must-be-current reads use the primary; reads of a
//! user's data go through [`PgDatabase::read`], which applies read-your-writes and replica
//! routing. Every statement is parameterised.

use chrono::{DateTime, Utc};
use outgrow_domain::{Email, Role, UserId, UserName};
use sqlx::{Row, postgres::PgRow};
use uuid::Uuid;

use outgrow_platform::jobs::{NewJob, enqueue_postgres};

use super::postgres::PgDatabase;
use crate::repo::{
    Credentials, NewSession, NewUser, Rotation, Session, SessionStore, StoreError, User, UserRepository,
};

/// PostgreSQL's SQLSTATE for a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

/// [`UserRepository`] on PostgreSQL.
pub struct PgUsers {
    db: PgDatabase,
}

impl PgUsers {
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }
}

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: UserId(row.try_get("id")?),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).map_err(|error| StoreError::Corrupt(error.to_string()))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn credentials_from_row(row: &PgRow) -> Result<Credentials, StoreError> {
    Ok(Credentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
    })
}

impl PgUsers {
    /// Runs an `UPDATE … RETURNING` on the primary and marks the user as recently written.
    async fn update_returning(
        &self,
        id: UserId,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Option<User>, StoreError> {
        let mut connection = self.db.write().await?;
        let row = query.fetch_optional(&mut *connection).await?;
        self.db.wrote(id).await;
        row.as_ref().map(user_from_row).transpose()
    }
}

#[async_trait::async_trait]
impl UserRepository for PgUsers {
    async fn create(&self, new: NewUser, jobs: &[NewJob]) -> Result<User, StoreError> {
        let mut tx = self.db.primary().begin().await?;
        metrics::counter!("db_queries_total", "pool" => "primary").increment(1);
        let row = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(new.id.0)
        .bind(new.email.as_str())
        .bind(new.name.as_str())
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(UNIQUE_VIOLATION) => {
                StoreError::Conflict("an account with this e-mail address")
            }
            _ => StoreError::from(error),
        })?;
        for job in jobs {
            enqueue_postgres(&mut tx, job).await?;
        }
        tx.commit().await?;
        self.db.wrote(new.id).await;
        user_from_row(&row)
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = self
            .db
            .read(Some(id), |mut connection| async move {
                sqlx::query("SELECT id, email, name, role, created_at, updated_at FROM users WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&mut *connection)
                    .await
            })
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        // The primary: a login right after registering must find the account.
        let mut connection = self.db.write().await?;
        let row = sqlx::query(
            "SELECT id, email, name, role, created_at, updated_at, password_hash FROM users WHERE email = $1",
        )
        .bind(email.as_str())
        .fetch_optional(&mut *connection)
        .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    async fn credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError> {
        let mut connection = self.db.write().await?;
        let row = sqlx::query(
            "SELECT id, email, name, role, created_at, updated_at, password_hash FROM users WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&mut *connection)
        .await?;
        row.as_ref().map(credentials_from_row).transpose()
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        // Keyset pagination on the primary key; the nil UUID sorts before every real id.
        let after = after.map_or(Uuid::nil(), |id| id.0);
        let rows = self
            .db
            .read(None, |mut connection| async move {
                sqlx::query(
                    "SELECT id, email, name, role, created_at, updated_at FROM users
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&mut *connection)
                .await
            })
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn update_name(
        &self,
        id: UserId,
        name: &UserName,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let query = sqlx::query(
            "UPDATE users SET name = $1, updated_at = $2 WHERE id = $3
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(name.as_str().to_owned())
        .bind(now)
        .bind(id.0);
        self.update_returning(id, query).await
    }

    async fn update_password(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let query = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(password_hash.to_owned())
        .bind(now)
        .bind(id.0);
        self.update_returning(id, query).await
    }

    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        let mut connection = self.db.write().await?;
        let row = sqlx::query(
            "UPDATE users SET role = $1, updated_at = $2 WHERE email = $3
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(role.as_str())
        .bind(now)
        .bind(email.as_str())
        .fetch_optional(&mut *connection)
        .await?;
        let user = row.as_ref().map(user_from_row).transpose()?;
        if let Some(user) = &user {
            self.db.wrote(user.id).await;
        }
        Ok(user)
    }
}

/// [`SessionStore`] on PostgreSQL (when Redis is not configured). Every read is on the primary:
/// a revoked session must stop working at once, everywhere.
pub struct PgSessions {
    db: PgDatabase,
}

impl PgSessions {
    pub fn new(db: PgDatabase) -> Self {
        Self { db }
    }
}

fn session_from_row(row: &PgRow) -> Result<Session, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Session {
        id: row.try_get("id")?,
        user_id: UserId(row.try_get("user_id")?),
        role: Role::parse(&role).map_err(|error| StoreError::Corrupt(error.to_string()))?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait::async_trait]
impl SessionStore for PgSessions {
    async fn create(&self, new: NewSession) -> Result<(), StoreError> {
        let mut tx = self.db.primary().begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, role, cookie_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new.session.id)
        .bind(new.session.user_id.0)
        .bind(new.session.role.as_str())
        .bind(new.cookie_hash.map(|hash| hash.to_vec()))
        .bind(new.now)
        .bind(new.session.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(new.refresh_hash.to_vec())
            .bind(new.session.id)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("db_queries_total", "pool" => "primary").increment(1);
        Ok(())
    }

    async fn rotate(
        &self,
        session_id: Uuid,
        presented: [u8; 32],
        replacement: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.db.primary().begin().await?;
        metrics::counter!("db_queries_total", "pool" => "primary").increment(1);
        // FOR UPDATE serialises concurrent exchanges of one token: the second waits, then
        // sees `rotated_at` set and is treated as reuse.
        let found = sqlx::query(
            "SELECT s.id, s.user_id, s.role, s.expires_at, s.revoked_at, t.rotated_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = $1 AND t.session_id = $2
             FOR UPDATE OF t",
        )
        .bind(presented.to_vec())
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = found else {
            return Ok(Rotation::Invalid);
        };
        let session = session_from_row(&row)?;
        let revoked: Option<DateTime<Utc>> = row.try_get("revoked_at")?;
        let rotated: Option<DateTime<Utc>> = row.try_get("rotated_at")?;
        if revoked.is_some() || session.expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        if rotated.is_some() {
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(session.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Rotation::Reused(session.id));
        }
        sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(presented.to_vec())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(replacement.to_vec())
            .bind(session.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(session))
    }

    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        let mut connection = self.db.write().await?;
        let row = sqlx::query(
            "SELECT id, user_id, role, expires_at FROM sessions
             WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn by_cookie(
        &self,
        session_id: Uuid,
        cookie_hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let mut connection = self.db.write().await?;
        let row = sqlx::query(
            "SELECT id, user_id, role, expires_at FROM sessions
             WHERE id = $1 AND cookie_hash = $2 AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(session_id)
        .bind(cookie_hash.to_vec())
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn revoke(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut connection = self.db.write().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&mut *connection)
            .await?;
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: UserId,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut connection = self.db.write().await?;
        let revoked = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1
             WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL AND expires_at > $1
             RETURNING id",
        )
        .bind(now)
        .bind(user_id.0)
        .bind(keep.unwrap_or(Uuid::nil()))
        .fetch_all(&mut *connection)
        .await?;
        Ok(revoked)
    }

    async fn delete_expired(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut connection = self.db.write().await?;
        let result = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(before)
            .execute(&mut *connection)
            .await?;
        Ok(result.rows_affected())
    }

    fn backend_name(&self) -> &'static str {
        "sql (postgres primary)"
    }
}
