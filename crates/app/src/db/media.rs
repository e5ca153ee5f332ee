//! Rows for uploads and exports (their bytes live in the object store). Every statement is a
//! constant below, the same text on both backends. On PostgreSQL everything runs on the
//! primary (SQLite: the writer pool): these rows are written by one request or job and read
//! back at once by their owner, and they are few.

use chrono::{DateTime, Utc};
use outgrow_domain::{ExportId, ExportStatus, UploadId, UploadStatus, UserId};
use outgrow_platform::statements;
use outgrow_platform::{
    jobs::{EnqueueJob, NewJob},
    sql::{Sql, SqlPool},
    with_pool,
};
use serde::{Deserialize, Serialize};
use sqlx::{postgres::PgRow, sqlite::SqliteRow, types::Json};
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
    #[sqlx(try_from = "Uuid")]
    pub id: UploadId,
    #[sqlx(try_from = "Uuid")]
    pub owner_id: UserId,
    pub content_type: String,
    pub size_bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub public: bool,
    #[sqlx(try_from = "String")]
    pub status: UploadStatus,
    pub variants: Json<Vec<Variant>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An export's row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    #[sqlx(try_from = "Uuid")]
    pub id: ExportId,
    #[sqlx(try_from = "Uuid")]
    pub user_id: UserId,
    pub format: String,
    #[sqlx(try_from = "String")]
    pub status: ExportStatus,
    pub size_bytes: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The database behind uploads and exports: the primary (SQLite: the writer pool).
#[derive(Debug, Clone)]
pub struct MediaStore {
    pool: SqlPool,
}

/// The columns of an [`UploadRow`] (a macro, so that the statements below are literals).
macro_rules! upload_columns {
    () => {
        "id, owner_id, content_type, size_bytes, width, height, public, status, variants, error, created_at, updated_at"
    };
}

/// The columns of an [`ExportRow`].
macro_rules! export_columns {
    () => {
        "id, user_id, format, status, size_bytes, error, created_at, finished_at"
    };
}

statements! {
    /// Records an upload.
    UPLOAD_INSERT("uploads.insert") = concat!(
        "INSERT INTO uploads (",
        upload_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    /// An upload by id.
    UPLOAD_BY_ID("uploads.by_id") = concat!("SELECT ", upload_columns!(), " FROM uploads WHERE id = $1");
    /// Every upload of an owner, newest first.
    UPLOADS_OF_OWNER("uploads.of_owner") = concat!(
        "SELECT ",
        upload_columns!(),
        " FROM uploads WHERE owner_id = $1 ORDER BY id DESC"
    );
    /// Records the outcome of processing an upload.
    UPLOAD_FINISH("uploads.finish") =
        "UPDATE uploads SET status = $1, variants = $2, error = $3, updated_at = $4 WHERE id = $5";
    /// Records an export.
    EXPORT_INSERT("exports.insert") = concat!(
        "INSERT INTO exports (",
        export_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    );
    /// An export by id.
    EXPORT_BY_ID("exports.by_id") = concat!("SELECT ", export_columns!(), " FROM exports WHERE id = $1");
    /// The newest exports of a user (the exports page lists them; older ones are expired).
    EXPORTS_OF_USER("exports.of_user") = concat!(
        "SELECT ",
        export_columns!(),
        " FROM exports WHERE user_id = $1 ORDER BY id DESC LIMIT 20"
    );
    /// Finishes a pending export (a rerun finds it finished and changes nothing).
    EXPORT_FINISH("exports.finish") =
        "UPDATE exports SET status = $1, size_bytes = $2, error = $3, finished_at = $4 WHERE id = $5 \
         AND status = 'pending'";
}

/// A write that may be followed by jobs, in the same transaction.
enum Write<'a> {
    /// A new upload.
    InsertUpload(&'a UploadRow),
    /// A new export.
    InsertExport(&'a ExportRow),
    /// A pending export's outcome.
    FinishExport {
        id: ExportId,
        status: ExportStatus,
        size: Option<i64>,
        error: Option<&'a str>,
        now: DateTime<Utc>,
    },
}

impl MediaStore {
    /// Upload and export rows on `pool` (the primary, or SQLite's writer).
    pub fn new(pool: SqlPool) -> Self {
        Self { pool }
    }

    /// Inserts an upload and the jobs that process it, in one transaction.
    pub async fn insert_upload(&self, row: &UploadRow, jobs: &[NewJob]) -> Result<(), StoreError> {
        self.write_then_enqueue(Write::InsertUpload(row), jobs).await?;
        Ok(())
    }

    /// The upload `id`.
    pub async fn upload(&self, id: UploadId) -> Result<Option<UploadRow>, StoreError> {
        Ok(self.fetch(&UPLOAD_BY_ID, id.0).await?.pop())
    }

    /// Every upload of `owner`, newest first.
    pub async fn uploads_of(&self, owner: UserId) -> Result<Vec<UploadRow>, StoreError> {
        self.fetch(&UPLOADS_OF_OWNER, owner.0).await
    }

    /// Records the outcome of processing: the variants, or the error.
    pub async fn finish_upload(
        &self,
        id: UploadId,
        variants: &[Variant],
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let status = if error.is_some() {
            UploadStatus::Failed
        } else {
            UploadStatus::Ready
        };
        let variants = Json(variants.to_vec());
        with_pool!(&self.pool, |pool, sql| {
            sqlx::query(sql(UPLOAD_FINISH))
                .bind(status.as_str())
                .bind(&variants)
                .bind(error)
                .bind(now)
                .bind(id.0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Inserts an export and the job that builds it, in one transaction.
    pub async fn insert_export(&self, row: &ExportRow, jobs: &[NewJob]) -> Result<(), StoreError> {
        self.write_then_enqueue(Write::InsertExport(row), jobs).await?;
        Ok(())
    }

    /// The export `id`.
    pub async fn export(&self, id: ExportId) -> Result<Option<ExportRow>, StoreError> {
        Ok(self.fetch(&EXPORT_BY_ID, id.0).await?.pop())
    }

    /// The 20 newest exports of `user`, newest first.
    pub async fn exports_of(&self, user: UserId) -> Result<Vec<ExportRow>, StoreError> {
        self.fetch(&EXPORTS_OF_USER, user.0).await
    }

    /// Marks an export ready (with its size) or failed and, in the same transaction, enqueues
    /// the jobs that follow (the e-mail with the link). Only a pending export changes: a rerun
    /// of the job after a crash does not mail twice.
    pub async fn finish_export(
        &self,
        id: ExportId,
        outcome: Result<i64, &str>,
        jobs: &[NewJob],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (status, size, error) = match outcome {
            Ok(size) => (ExportStatus::Ready, Some(size), None),
            Err(error) => (ExportStatus::Failed, None, Some(error)),
        };
        let finish = Write::FinishExport {
            id,
            status,
            size,
            error,
            now,
        };
        self.write_then_enqueue(finish, jobs).await
    }

    /// The rows `statement` selects by its one key (`$1`).
    async fn fetch<T>(&self, statement: &Sql, key: Uuid) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(with_pool!(&self.pool, |pool, sql| {
            sqlx::query_as(sql(statement)).bind(key).fetch_all(pool).await?
        }))
    }

    /// Runs `write` and, when it changed a row, enqueues `jobs` in the same transaction;
    /// returns whether it changed a row (an insert always does, or fails).
    async fn write_then_enqueue(&self, write: Write<'_>, jobs: &[NewJob]) -> Result<bool, StoreError> {
        Ok(with_pool!(&self.pool, |pool, sql| {
            let query = match &write {
                Write::InsertUpload(row) => sqlx::query(sql(UPLOAD_INSERT))
                    .bind(row.id.0)
                    .bind(row.owner_id.0)
                    .bind(&row.content_type)
                    .bind(row.size_bytes)
                    .bind(row.width)
                    .bind(row.height)
                    .bind(row.public)
                    .bind(row.status.as_str())
                    .bind(&row.variants)
                    .bind(&row.error)
                    .bind(row.created_at)
                    .bind(row.updated_at),
                Write::InsertExport(row) => sqlx::query(sql(EXPORT_INSERT))
                    .bind(row.id.0)
                    .bind(row.user_id.0)
                    .bind(&row.format)
                    .bind(row.status.as_str())
                    .bind(row.size_bytes)
                    .bind(&row.error)
                    .bind(row.created_at)
                    .bind(row.finished_at),
                Write::FinishExport {
                    id,
                    status,
                    size,
                    error,
                    now,
                } => sqlx::query(sql(EXPORT_FINISH))
                    .bind(status.as_str())
                    .bind(*size)
                    .bind(*error)
                    .bind(*now)
                    .bind(id.0),
            };
            let mut tx = pool.begin().await?;
            let changed = query.execute(&mut *tx).await?.rows_affected() == 1;
            if changed {
                for job in jobs {
                    tx.enqueue(job).await?;
                }
            }
            tx.commit().await?;
            changed
        }))
    }
}
