//! Rows for uploads and exports (their bytes live in the object store). The SQL text is
//! shared by both backends: it is written with `$n` placeholders, which SQLite reads as `?n`.
//! On PostgreSQL everything runs on the primary: these rows are written by one request or
//! job and read back at once by their owner, and they are few.

use chrono::{DateTime, Utc};
use outgrow_platform::jobs::{NewJob, enqueue_postgres, enqueue_sqlite};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::repo::StoreError;

/// One WebP rendition of an uploaded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Pixels.
    pub width: u32,
    /// Pixels (aspect ratio kept).
    pub height: u32,
    /// Encoded size.
    pub bytes: u64,
}

/// An upload's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UploadRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub content_type: String,
    pub size_bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub public: bool,
    pub status: String,
    pub variants: Json<Vec<Variant>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An export's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub format: String,
    pub status: String,
    pub size_bytes: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The database behind uploads and exports.
#[derive(Debug, Clone)]
pub enum MediaStore {
    /// SQLite: the writer pool (reads too: these are read right after being written).
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL: the primary.
    Postgres(sqlx::PgPool),
}

/// `$1` → `?1`: SQLite's numbered parameters.
fn for_sqlite(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.replace('$', "?"))
}

/// Runs `$body` with `$pool` bound to whichever pool this store has, and `$sql` converted for it.
macro_rules! on_pool {
    ($store:expr, $sql:expr, |$pool:ident, $text:ident| $body:expr) => {
        match $store {
            MediaStore::Sqlite($pool) => {
                let $text = for_sqlite($sql);
                $body
            }
            MediaStore::Postgres($pool) => {
                let $text = sqlx::AssertSqlSafe($sql.to_owned());
                $body
            }
        }
    };
}

const UPLOAD_COLUMNS: &str = "id, owner_id, content_type, size_bytes, width, height, public, status, variants, error, created_at, updated_at";
const EXPORT_COLUMNS: &str = "id, user_id, format, status, size_bytes, error, created_at, finished_at";

impl MediaStore {
    /// Inserts an upload and the jobs that process it, in one transaction.
    pub async fn insert_upload(&self, row: &UploadRow, jobs: &[NewJob]) -> Result<(), StoreError> {
        let sql = "INSERT INTO uploads (id, owner_id, content_type, size_bytes, width, height, public, status, variants, error, created_at, updated_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        macro_rules! insert {
            ($tx:expr, $text:expr) => {
                sqlx::query($text)
                    .bind(row.id)
                    .bind(row.owner_id)
                    .bind(&row.content_type)
                    .bind(row.size_bytes)
                    .bind(row.width)
                    .bind(row.height)
                    .bind(row.public)
                    .bind(&row.status)
                    .bind(&row.variants)
                    .bind(&row.error)
                    .bind(row.created_at)
                    .bind(row.updated_at)
                    .execute(&mut *$tx)
                    .await?
            };
        }
        match self {
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                insert!(tx, for_sqlite(sql));
                for job in jobs {
                    enqueue_sqlite(&mut tx, job).await?;
                }
                tx.commit().await?;
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert!(tx, sqlx::AssertSqlSafe(sql.to_owned()));
                for job in jobs {
                    enqueue_postgres(&mut tx, job).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The upload `id`.
    pub async fn upload(&self, id: Uuid) -> Result<Option<UploadRow>, StoreError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1");
        Ok(on_pool!(self, &sql, |pool, text| sqlx::query_as::<_, UploadRow>(
            text
        )
        .bind(id)
        .fetch_optional(pool)
        .await?))
    }

    /// Every upload of `owner`, newest first.
    pub async fn uploads_of(&self, owner: Uuid) -> Result<Vec<UploadRow>, StoreError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE owner_id = $1 ORDER BY id DESC");
        Ok(on_pool!(self, &sql, |pool, text| sqlx::query_as::<_, UploadRow>(
            text
        )
        .bind(owner)
        .fetch_all(pool)
        .await?))
    }

    /// Records the outcome of processing: the variants, or the error.
    pub async fn finish_upload(
        &self,
        id: Uuid,
        variants: &[Variant],
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let status = if error.is_some() { "failed" } else { "ready" };
        let sql = "UPDATE uploads SET status = $1, variants = $2, error = $3, updated_at = $4 WHERE id = $5";
        let variants = Json(variants.to_vec());
        on_pool!(self, sql, |pool, text| sqlx::query(text)
            .bind(status)
            .bind(&variants)
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected());
        Ok(())
    }

    /// Inserts an export and the job that builds it, in one transaction.
    pub async fn insert_export(&self, row: &ExportRow, jobs: &[NewJob]) -> Result<(), StoreError> {
        let sql =
            "INSERT INTO exports (id, user_id, format, status, size_bytes, error, created_at, finished_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        macro_rules! insert {
            ($tx:expr, $text:expr) => {
                sqlx::query($text)
                    .bind(row.id)
                    .bind(row.user_id)
                    .bind(&row.format)
                    .bind(&row.status)
                    .bind(row.size_bytes)
                    .bind(&row.error)
                    .bind(row.created_at)
                    .bind(row.finished_at)
                    .execute(&mut *$tx)
                    .await?
            };
        }
        match self {
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                insert!(tx, for_sqlite(sql));
                for job in jobs {
                    enqueue_sqlite(&mut tx, job).await?;
                }
                tx.commit().await?;
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                insert!(tx, sqlx::AssertSqlSafe(sql.to_owned()));
                for job in jobs {
                    enqueue_postgres(&mut tx, job).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The export `id`.
    pub async fn export(&self, id: Uuid) -> Result<Option<ExportRow>, StoreError> {
        let sql = format!("SELECT {EXPORT_COLUMNS} FROM exports WHERE id = $1");
        Ok(on_pool!(self, &sql, |pool, text| sqlx::query_as::<_, ExportRow>(
            text
        )
        .bind(id)
        .fetch_optional(pool)
        .await?))
    }

    /// Marks an export ready (with its size) or failed and, in the same transaction, enqueues
    /// the jobs that follow (the e-mail with the link). Only a pending export changes: a rerun
    /// of the job after a crash does not mail twice.
    pub async fn finish_export(
        &self,
        id: Uuid,
        outcome: Result<i64, &str>,
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (status, size, error) = match outcome {
            Ok(size) => ("ready", Some(size), None),
            Err(error) => ("failed", None, Some(error)),
        };
        let sql = "UPDATE exports SET status = $1, size_bytes = $2, error = $3, finished_at = $4
                   WHERE id = $5 AND status = 'pending'";
        macro_rules! update {
            ($tx:expr, $text:expr) => {
                sqlx::query($text)
                    .bind(status)
                    .bind(size)
                    .bind(error)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *$tx)
                    .await?
                    .rows_affected()
            };
        }
        let changed = match self {
            Self::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let changed = update!(tx, for_sqlite(sql)) == 1;
                if changed {
                    for job in jobs {
                        enqueue_sqlite(&mut tx, job).await?;
                    }
                }
                tx.commit().await?;
                changed
            }
            Self::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let changed = update!(tx, sqlx::AssertSqlSafe(sql.to_owned())) == 1;
                if changed {
                    for job in jobs {
                        enqueue_postgres(&mut tx, job).await?;
                    }
                }
                tx.commit().await?;
                changed
            }
        };
        Ok(changed)
    }
}
