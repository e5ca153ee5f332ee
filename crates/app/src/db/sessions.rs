//! SQL sessions and their refresh tokens, one implementation over both backends (when Redis
//! does not hold them: [`redis_sessions`](super::redis_sessions)). Every statement is a
//! constant below, written once; [`with_db!`] routes it. Session reads on PostgreSQL all go to
//! the primary (`current`): a revoked session must stop working at once, everywhere. Rows
//! decode straight into [`Session`].

use chrono::{DateTime, Utc};
use outgrow_domain::UserId;
use outgrow_platform::statements;
use uuid::Uuid;

use super::{Database, route::with_db};
use crate::repo::{NewSession, RefreshExchange, Rotation, Session, SessionCookie, SessionStore, StoreError};

statements! {
    /// Creates a session.
    SESSION_INSERT("sessions.insert") =
        "INSERT INTO sessions (id, user_id, role, cookie_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)";
    /// Stores a refresh token (a session's first, or the replacement of a rotated one).
    REFRESH_INSERT("sessions.refresh_insert") =
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)";
    /// Finds a refresh token and its session. PostgreSQL locks the token (`FOR UPDATE OF t`), so
    /// concurrent exchanges of one token queue and the second sees it rotated; SQLite's single
    /// writer connection already serialises the transaction (and has no `FOR UPDATE`).
    REFRESH_LOOKUP("sessions.refresh_lookup") =
        "SELECT s.id, s.user_id, s.role, s.expires_at, s.revoked_at, t.rotated_at FROM refresh_tokens t \
         JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1 \
         AND t.session_id = $2 FOR UPDATE OF t",
        sqlite =
            "SELECT s.id, s.user_id, s.role, s.expires_at, s.revoked_at, t.rotated_at FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1 AND t.session_id = $2";
    /// Spends a refresh token; the `rotated_at IS NULL` guard makes a second exchange of it a
    /// no-op (reuse) on any backend.
    REFRESH_MARK_ROTATED("sessions.mark_rotated") =
        "UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2 AND rotated_at IS NULL";
    /// An active session by id (the access-token check).
    SESSION_ACTIVE("sessions.active") =
        "SELECT id, user_id, role, expires_at FROM sessions WHERE id = $1 AND revoked_at IS NULL \
         AND expires_at > $2";
    /// An active session by id and cookie secret.
    SESSION_BY_COOKIE("sessions.by_cookie") =
        "SELECT id, user_id, role, expires_at FROM sessions WHERE id = $1 AND cookie_hash = $2 \
         AND revoked_at IS NULL AND expires_at > $3";
    /// Revokes one session (idempotent).
    SESSION_REVOKE("sessions.revoke") =
        "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
    /// Revokes every active session of a user but one (the nil UUID keeps none).
    SESSION_REVOKE_ALL("sessions.revoke_all") =
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL \
         AND expires_at > $1 RETURNING id";
    /// Deletes sessions that have ended (their refresh tokens cascade).
    SESSION_DELETE_EXPIRED("sessions.delete_expired") = "DELETE FROM sessions WHERE expires_at < $1";
}

/// A refresh token's session, and whether either is spent.
#[derive(sqlx::FromRow)]
struct RefreshRow {
    #[sqlx(flatten)]
    session: Session,
    revoked_at: Option<DateTime<Utc>>,
    rotated_at: Option<DateTime<Utc>>,
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

    async fn rotate(&self, exchange: RefreshExchange, now: DateTime<Utc>) -> Result<Rotation, StoreError> {
        with_db!(&self.db, transaction, |tx, sql| {
            let found: Option<RefreshRow> = sqlx::query_as(sql(REFRESH_LOOKUP))
                .bind(exchange.presented.to_vec())
                .bind(exchange.session_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(found) = found else {
                return Ok(Rotation::Invalid);
            };
            let session = found.session;
            if found.revoked_at.is_some() || session.expires_at <= now {
                return Ok(Rotation::Invalid);
            }
            let spent = found.rotated_at.is_some()
                || sqlx::query(sql(REFRESH_MARK_ROTATED))
                    .bind(now)
                    .bind(exchange.presented.to_vec())
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
                .bind(exchange.replacement.to_vec())
                .bind(session.id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated(session))
        })
    }

    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        Ok(with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(SESSION_ACTIVE))
                .bind(id)
                .bind(now)
                .fetch_optional(conn)
                .await
        })?)
    }

    async fn by_cookie(
        &self,
        cookie: SessionCookie,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        Ok(with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(SESSION_BY_COOKIE))
                .bind(cookie.session_id)
                .bind(cookie.secret_hash.to_vec())
                .bind(now)
                .fetch_optional(conn)
                .await
        })?)
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
