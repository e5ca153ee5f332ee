//! Users, one implementation over both backends (their SQL sessions are in
//! [`sessions`](super::sessions)). Every statement is a constant below, written once;
//! [`with_db!`] routes it (reads of a user's data to SQLite's reader pool or a PostgreSQL
//! replica, with read-your-writes; logins to what sees every commit; writes to the writer or
//! the primary). Rows decode straight into [`User`] and [`Credentials`].

use chrono::{DateTime, Utc};
use outgrow_domain::{Email, Role, UserId, UserName};
use outgrow_platform::statements;
use outgrow_platform::{
    jobs::{EnqueueJob, NewJob},
    sql::{Sql, is_unique_violation},
};
use uuid::Uuid;

use super::{Database, markers::Subject, route::with_db};
use crate::repo::{Credentials, NewUser, StoreError, User, UserRepository};

/// The columns of a [`User`] (a macro, so that the statements below are literals).
macro_rules! user_columns {
    () => {
        "id, email, name, role, created_at, updated_at"
    };
}

statements! {
    /// Registers a user (the unique index on `email` refuses a second account).
    USER_INSERT("users.insert") = concat!(
        "INSERT INTO users (id, email, name, password_hash, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             RETURNING ",
        user_columns!()
    );
    /// A user by id.
    USER_BY_ID("users.by_id") = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
    /// Login: a user and their hash by e-mail.
    CREDENTIALS_BY_EMAIL("users.credentials_by_email") = concat!(
        "SELECT ",
        user_columns!(),
        ", password_hash FROM users WHERE email = $1"
    );
    /// A user and their hash by id (password change).
    CREDENTIALS_BY_ID("users.credentials_by_id") = concat!(
        "SELECT ",
        user_columns!(),
        ", password_hash FROM users WHERE id = $1"
    );
    /// A page of users after a keyset cursor (the nil UUID sorts before every real id).
    USER_LIST("users.list") = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id > $1 ORDER BY id LIMIT $2"
    );
    /// Renames a user.
    USER_UPDATE_NAME("users.update_name") = concat!(
        "UPDATE users SET name = $1, updated_at = $2 WHERE id = $3 RETURNING ",
        user_columns!()
    );
    /// Replaces a user's password hash.
    USER_UPDATE_PASSWORD("users.update_password") = concat!(
        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 RETURNING ",
        user_columns!()
    );
    /// Changes a user's role (found by e-mail: `outgrow admin`).
    USER_SET_ROLE("users.set_role") = concat!(
        "UPDATE users SET role = $1, updated_at = $2 WHERE email = $3 RETURNING ",
        user_columns!()
    );
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
        let user: Option<User> = with_db!(&self.db, write, |conn, sql| {
            let query = sqlx::query_as(sql(statement)).bind(value).bind(now);
            match key {
                Key::Id(id) => query.bind(id.0),
                Key::Email(email) => query.bind(email.as_str()),
            }
            .fetch_optional(conn)
            .await
        })?;
        if let Some(user) = &user {
            self.db.wrote(Subject::User(user.id)).await;
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
        let user: User = with_db!(&self.db, transaction, |tx, sql| {
            let user = sqlx::query_as(sql(USER_INSERT))
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
            Ok(user)
        })?;
        self.db.wrote(Subject::User(new.id)).await;
        Ok(user)
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(with_db!(&self.db, read(Some(Subject::User(id))), |conn, sql| {
            sqlx::query_as(sql(USER_BY_ID))
                .bind(id.0)
                .fetch_optional(conn)
                .await
        })?)
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        // A login right after registering must find the account.
        Ok(with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(CREDENTIALS_BY_EMAIL))
                .bind(email.as_str())
                .fetch_optional(conn)
                .await
        })?)
    }

    async fn credentials_by_id(&self, id: UserId) -> Result<Option<Credentials>, StoreError> {
        Ok(with_db!(&self.db, current, |conn, sql| {
            sqlx::query_as(sql(CREDENTIALS_BY_ID))
                .bind(id.0)
                .fetch_optional(conn)
                .await
        })?)
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        // Keyset pagination: `id > $1` walks the primary key index, so page 1,000 costs what
        // page 1 costs (OFFSET would scan every skipped row).
        let after = after.map_or(Uuid::nil(), |id| id.0);
        Ok(with_db!(&self.db, read(None), |conn, sql| {
            sqlx::query_as(sql(USER_LIST))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?)
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
