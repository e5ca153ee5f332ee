//! Products and their stock (on the primary; catalog reads go to the replicas).

use chrono::{DateTime, Utc};
use outgrow_domain::Money;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    db::{
        Database,
        media::Variant,
        sql::{SqlPool, for_postgres, for_sqlite, with_pool},
    },
    repo::StoreError,
};

/// A product as stored, with the variants of its image when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ProductRow {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub price_minor: i64,
    pub currency: String,
    pub stock: i64,
    pub image_id: Option<Uuid>,
    /// The image's WebP variants (none while they are being made).
    #[sqlx(default)]
    pub image_variants: Option<Json<Vec<Variant>>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new product, validated.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub price: Money,
    pub stock: i64,
    pub image_id: Option<Uuid>,
}

/// A partial update, validated; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<Money>,
    pub stock: Option<i64>,
    /// `Some(None)` removes the image.
    pub image_id: Option<Option<Uuid>>,
}

/// Filters of a catalog page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductQuery {
    /// Keyset cursor: products after this id.
    pub after: Option<Uuid>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Words that must all appear in the name or description.
    pub text: Option<String>,
    pub limit: u32,
}

/// One bound parameter of a query assembled from optional filters.
#[derive(Debug, Clone)]
enum Arg {
    Uuid(Uuid),
    Int(i64),
    Text(String),
}

const COLUMNS: &str = "p.id, p.name, p.description, p.price_minor, p.currency, p.stock, p.image_id, \
     CASE WHEN u.status = 'ready' THEN u.variants END AS image_variants, p.created_at, p.updated_at";
/// The read-your-writes subject of the catalog as a whole (listings); products are their own.
pub const CATALOG: Uuid = Uuid::nil();

const FROM: &str = "products p LEFT JOIN uploads u ON u.id = p.image_id";

/// The catalog on either backend.
#[derive(Debug, Clone)]
pub struct Catalog {
    db: Database,
    primary: SqlPool,
}

impl Catalog {
    /// The catalog on `db`.
    pub fn new(db: &Database) -> Self {
        Self {
            db: db.clone(),
            primary: db.primary_pool(),
        }
    }

    /// Runs a product query on a reader: a replica (round robin, lag-aware) or SQLite's reader
    /// pool — or the primary while `subject` (a product, or [`CATALOG`]) was written recently,
    /// so that no cache is filled from a replica that has not seen the write yet.
    async fn read(&self, subject: Uuid, sql: &str, args: Vec<Arg>) -> Result<Vec<ProductRow>, StoreError> {
        macro_rules! bind_all {
            ($query:expr) => {{
                let mut query = $query;
                for arg in &args {
                    query = match arg {
                        Arg::Uuid(value) => query.bind(*value),
                        Arg::Int(value) => query.bind(*value),
                        Arg::Text(value) => query.bind(value.clone()),
                    };
                }
                query
            }};
        }
        match &self.db {
            Database::Sqlite(sqlite) => {
                let query = bind_all!(sqlx::query_as::<_, ProductRow>(for_sqlite(sql)));
                Ok(query.fetch_all(sqlite.reader()).await?)
            }
            Database::Postgres(pg) => Ok(pg
                .read(Some(outgrow_domain::UserId(subject)), |mut connection| {
                    let query = bind_all!(sqlx::query_as::<_, ProductRow>(for_postgres(sql)));
                    async move { query.fetch_all(&mut *connection).await }
                })
                .await?),
        }
    }

    /// The product `id`.
    pub async fn get(&self, id: Uuid) -> Result<Option<ProductRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE p.id = $1");
        Ok(self.read(id, &sql, vec![Arg::Uuid(id)]).await?.pop())
    }

    /// The product `id`, read on the primary (right after a write).
    pub async fn get_current(&self, id: Uuid) -> Result<Option<ProductRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM {FROM} WHERE p.id = $1");
        Ok(with_pool!(&self.primary, |pool, text| {
            sqlx::query_as::<_, ProductRow>(text(&sql))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// One page of products in id (creation) order.
    pub async fn list(&self, query: &ProductQuery) -> Result<Vec<ProductRow>, StoreError> {
        let postgres = matches!(self.db, Database::Postgres(_));
        let mut conditions = Vec::new();
        let mut args = Vec::new();
        let next = |arg: Arg, args: &mut Vec<Arg>| {
            args.push(arg);
            format!("${}", args.len())
        };
        if let Some(after) = query.after {
            conditions.push(format!("p.id > {}", next(Arg::Uuid(after), &mut args)));
        }
        if let Some(min) = query.min_price {
            conditions.push(format!("p.price_minor >= {}", next(Arg::Int(min), &mut args)));
        }
        if let Some(max) = query.max_price {
            conditions.push(format!("p.price_minor <= {}", next(Arg::Int(max), &mut args)));
        }
        if let Some(text) = &query.text {
            if postgres {
                let param = next(Arg::Text(text.clone()), &mut args);
                conditions.push(format!("p.search @@ plainto_tsquery('simple', {param})"));
            } else {
                let param = next(Arg::Text(fts5_query(text)), &mut args);
                conditions.push(format!(
                    "p.rowid IN (SELECT rowid FROM products_fts WHERE products_fts MATCH {param})"
                ));
            }
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = next(Arg::Int(i64::from(query.limit)), &mut args);
        let sql = format!("SELECT {COLUMNS} FROM {FROM} {filter} ORDER BY p.id LIMIT {limit}");
        self.read(CATALOG, &sql, args).await
    }

    /// The catalog's version: bumped by every write, so cached pages keyed by it retire at once.
    pub async fn version(&self) -> Result<i64, StoreError> {
        let sql = "SELECT version FROM catalog_version";
        Ok(with_pool!(&self.primary, |pool, text| {
            sqlx::query_scalar::<_, i64>(text(sql)).fetch_one(pool).await?
        }))
    }

    /// Creates a product.
    pub async fn create(&self, new: &NewProduct) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let now = Utc::now();
        let insert = "INSERT INTO products (id, name, description, price_minor, currency, stock, image_id, created_at, updated_at)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
        let bump = "UPDATE catalog_version SET version = version + 1";
        with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            sqlx::query(text(insert))
                .bind(id)
                .bind(&new.name)
                .bind(&new.description)
                .bind(new.price.minor)
                .bind(new.price.currency.as_str())
                .bind(new.stock)
                .bind(new.image_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(text(bump)).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(id)
    }

    /// Applies `patch`; false when there is no such product.
    pub async fn update(&self, id: Uuid, patch: &ProductPatch) -> Result<bool, StoreError> {
        let update = "UPDATE products SET
                          name = COALESCE($2, name),
                          description = COALESCE($3, description),
                          price_minor = COALESCE($4, price_minor),
                          currency = COALESCE($5, currency),
                          stock = COALESCE($6, stock),
                          image_id = CASE WHEN $7 THEN $8 ELSE image_id END,
                          updated_at = $9
                      WHERE id = $1";
        let bump = "UPDATE catalog_version SET version = version + 1";
        let (set_image, image) = match patch.image_id {
            Some(image) => (true, image),
            None => (false, None),
        };
        let updated = with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(text(update))
                .bind(id)
                .bind(&patch.name)
                .bind(&patch.description)
                .bind(patch.price.map(|price| price.minor))
                .bind(patch.price.map(|price| price.currency.as_str().to_owned()))
                .bind(patch.stock)
                .bind(set_image)
                .bind(image)
                .bind(Utc::now())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(text(bump)).execute(&mut *tx).await?;
            tx.commit().await?;
            updated
        });
        Ok(updated == 1)
    }

    /// Deletes a product (orders keep their own copy of what was sold); false when absent.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let delete = "DELETE FROM products WHERE id = $1";
        let bump = "UPDATE catalog_version SET version = version + 1";
        let deleted = with_pool!(&self.primary, |pool, text| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(text(delete))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(text(bump)).execute(&mut *tx).await?;
            tx.commit().await?;
            deleted
        });
        Ok(deleted == 1)
    }

    /// Products showing `upload` (their cached copies must go when its variants change).
    pub async fn showing_image(&self, upload: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let sql = "SELECT id FROM products WHERE image_id = $1";
        Ok(with_pool!(&self.primary, |pool, text| {
            sqlx::query_scalar::<_, Uuid>(text(sql))
                .bind(upload)
                .fetch_all(pool)
                .await?
        }))
    }
}

/// A user's words as an FTS5 query that matches rows containing every word: each word becomes
/// a quoted string (FTS5 operators and syntax in the input are taken literally).
fn fts5_query(text: &str) -> String {
    text.split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_quoted_for_fts5() {
        assert_eq!(fts5_query("  red  mug "), r#""red" "mug""#);
        assert_eq!(fts5_query(r#"a"b OR c*"#), r#""a""b" "OR" "c*""#);
    }
}
