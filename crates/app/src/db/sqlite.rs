//! The SQLite repositories. Every statement is parameterised; writes use the writer pool,
//! reads the reader pool (see the module above for why).

use chrono::{DateTime, Utc};
use outgrow_domain::{Email, Role, UserId, UserName};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use uuid::Uuid;

use outgrow_platform::jobs::{NewJob, enqueue_sqlite};

use crate::repo::{
    Credentials, NewSession, NewUser, Rotation, Session, SessionStore, StoreError, User, UserRepository,
};

/// [`UserRepository`] on SQLite.
pub struct SqliteUsers {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteUsers {
    pub fn new(writer: SqlitePool, reader: SqlitePool) -> Self {
        Self { writer, reader }
    }
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
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

fn credentials_from_row(row: &SqliteRow) -> Result<Credentials, StoreError> {
    Ok(Credentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
    })
}

/// SQLite's extended result code for a UNIQUE constraint failure.
const SQLITE_CONSTRAINT_UNIQUE: &str = "2067";

#[async_trait::async_trait]
impl UserRepository for SqliteUsers {
    async fn create(&self, new: NewUser, jobs: &[NewJob]) -> Result<User, StoreError> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query(
            "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(new.id.0)
        .bind(new.email.as_str())
        .bind(new.name.as_str())
        .bind(&new.password_hash)
        .bind(new.role.as_str())
        .bind(new.now)
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|error| match &error {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(SQLITE_CONSTRAINT_UNIQUE) => {
                StoreError::Conflict("an account with this e-mail address")
            }
            _ => StoreError::from(error),
        })?;
        for job in jobs {
            enqueue_sqlite(&mut tx, job).await?;
        }
        tx.commit().await?;
        user_from_row(&row)
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT id, email, name, role, created_at, updated_at FROM users WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        sqlx::query(
            "SELECT id, email, name, role, created_at, updated_at, password_hash FROM users WHERE email = ?",
        )
        .bind(email.as_str())
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(credentials_from_row)
        .transpose()
    }

    async fn credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError> {
        sqlx::query(
            "SELECT id, email, name, role, created_at, updated_at, password_hash FROM users WHERE id = ?",
        )
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(credentials_from_row)
        .transpose()
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        // Keyset pagination: `id > ?` walks the primary key index, so page 1,000 costs what
        // page 1 costs (OFFSET would scan every skipped row). The empty blob sorts first.
        let after: Vec<u8> = after.map(|id| id.0.as_bytes().to_vec()).unwrap_or_default();
        sqlx::query("SELECT id, email, name, role, created_at, updated_at FROM users WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    async fn update_name(
        &self,
        id: UserId,
        name: &UserName,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "UPDATE users SET name = ?, updated_at = ? WHERE id = ?
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(name.as_str())
        .bind(now)
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn update_password(
        &self,
        id: UserId,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(password_hash)
        .bind(now)
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    async fn set_role(
        &self,
        email: &Email,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "UPDATE users SET role = ?, updated_at = ? WHERE email = ?
             RETURNING id, email, name, role, created_at, updated_at",
        )
        .bind(role.as_str())
        .bind(now)
        .bind(email.as_str())
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }
}

/// [`SessionStore`] on SQLite.
pub struct SqliteSessions {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteSessions {
    pub fn new(writer: SqlitePool, reader: SqlitePool) -> Self {
        Self { writer, reader }
    }
}

fn session_from_row(row: &SqliteRow) -> Result<Session, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(Session {
        id: row.try_get("id")?,
        user_id: UserId(row.try_get("user_id")?),
        role: Role::parse(&role).map_err(|error| StoreError::Corrupt(error.to_string()))?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait::async_trait]
impl SessionStore for SqliteSessions {
    async fn create(&self, new: NewSession) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, role, cookie_hash, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(new.session.id)
        .bind(new.session.user_id.0)
        .bind(new.session.role.as_str())
        .bind(new.cookie_hash.map(|hash| hash.to_vec()))
        .bind(new.now)
        .bind(new.session.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)")
            .bind(new.refresh_hash.to_vec())
            .bind(new.session.id)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate(
        &self,
        session_id: Uuid,
        presented: [u8; 32],
        replacement: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Rotation, StoreError> {
        // The writer pool has one connection, so this transaction is serialised against every
        // other write; the `rotated_at IS NULL` guard keeps it correct on any backend anyway.
        let mut tx = self.writer.begin().await?;
        let found = sqlx::query(
            "SELECT s.id, s.user_id, s.role, s.expires_at, s.revoked_at, t.rotated_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = ? AND t.session_id = ?",
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
        let spent = rotated.is_some()
            || sqlx::query(
                "UPDATE refresh_tokens SET rotated_at = ? WHERE token_hash = ? AND rotated_at IS NULL",
            )
            .bind(now)
            .bind(presented.to_vec())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 0;
        if spent {
            sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(session.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Rotation::Reused(session.id));
        }
        sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES (?, ?, ?)")
            .bind(replacement.to_vec())
            .bind(session.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation::Rotated(session))
    }

    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT id, user_id, role, expires_at FROM sessions
             WHERE id = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn by_cookie(
        &self,
        session_id: Uuid,
        cookie_hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT id, user_id, role, expires_at FROM sessions
             WHERE cookie_hash = ? AND id = ? AND revoked_at IS NULL AND expires_at > ?",
        )
        .bind(cookie_hash.to_vec())
        .bind(session_id)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn revoke(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: UserId,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let keep: Vec<u8> = keep.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
        let revoked = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = ?
             WHERE user_id = ? AND id <> ? AND revoked_at IS NULL AND expires_at > ?
             RETURNING id",
        )
        .bind(now)
        .bind(user_id.0)
        .bind(keep)
        .bind(now)
        .fetch_all(&self.writer)
        .await?;
        Ok(revoked)
    }

    async fn delete_expired(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }

    fn backend_name(&self) -> &'static str {
        "sql (sqlite)"
    }
}
