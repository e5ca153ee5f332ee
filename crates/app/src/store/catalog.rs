//! Products and their stock (on the primary; catalog reads go to the replicas).

use chrono::{DateTime, Utc};
use outgrow_domain::Money;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use crate::{
    db::{
        Database,
        markers::Subject,
        media::Variant,
        route::with_db,
        sql::{SqlPool, with_pool},
    },
    repo::StoreError,
    store::statements,
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

/// The columns of a [`ProductRow`] and where they come from (macros, so that the statements
/// below are literals).
macro_rules! product_columns {
    () => {
        "p.id, p.name, p.description, p.price_minor, p.currency, p.stock, p.image_id, \
         CASE WHEN u.status = 'ready' THEN u.variants END AS image_variants, p.created_at, p.updated_at"
    };
}
macro_rules! product_from {
    () => {
        "products p LEFT JOIN uploads u ON u.id = p.image_id"
    };
}

statements! {
    /// A product by id, with its image's variants.
    PRODUCT_BY_ID("products.by_id") =
        concat!("SELECT ", product_columns!(), " FROM ", product_from!(), " WHERE p.id = $1");
    /// The catalog's version (cached pages are keyed by it).
    CATALOG_VERSION("catalog.version") = "SELECT version FROM catalog_version";
    /// Retires every cached page: part of each catalog write's transaction.
    CATALOG_BUMP("catalog.bump") = "UPDATE catalog_version SET version = version + 1";
    /// Creates a product.
    PRODUCT_INSERT("products.insert") =
        "INSERT INTO products \
         (id, name, description, price_minor, currency, stock, image_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
    /// Applies a partial update (`NULL` leaves a column; `$7` says whether to set the image).
    PRODUCT_UPDATE("products.update") =
        "UPDATE products SET \
             name = COALESCE($2, name), \
             description = COALESCE($3, description), \
             price_minor = COALESCE($4, price_minor), \
             currency = COALESCE($5, currency), \
             stock = COALESCE($6, stock), \
             image_id = CASE WHEN $7 THEN $8 ELSE image_id END, \
             updated_at = $9 \
         WHERE id = $1";
    /// Deletes a product.
    PRODUCT_DELETE("products.delete") = "DELETE FROM products WHERE id = $1";
    /// Products showing an image.
    PRODUCTS_SHOWING_IMAGE("products.showing_image") = "SELECT id FROM products WHERE image_id = $1";
}

/// Runs `$body` in a transaction on the primary with `$tx` and `$sql` bound, then bumps the
/// catalog's version in the same transaction (so every write retires the cached pages) and
/// commits; evaluates to the body's value.
macro_rules! catalog_write {
    ($catalog:expr, |$tx:ident, $sql:ident| $body:expr) => {
        with_pool!(&$catalog.primary, |pool, $sql| {
            let mut $tx = pool.begin().await?;
            let written = $body;
            sqlx::query($sql(CATALOG_BUMP)).execute(&mut *$tx).await?;
            $tx.commit().await?;
            written
        })
    };
}

/// The text and parameters of a catalog page (not a named statement: its filters are
/// optional, so it is assembled here from constant pieces; `scripts/explain-queries` explains
/// each combination the API makes): the optional filters are joined with `AND`, the
/// text search in each backend's full-text index (PostgreSQL `tsvector`, SQLite FTS5).
fn list_statement(query: &ProductQuery, postgres: bool) -> (String, Vec<Arg>) {
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
    let sql = format!(
        concat!(
            "SELECT ",
            product_columns!(),
            " FROM ",
            product_from!(),
            " {} ORDER BY p.id LIMIT {}"
        ),
        filter, limit
    );
    (sql, args)
}

/// The PostgreSQL text of the catalog page `query` selects (for `scripts/explain-queries`).
pub fn list_statement_postgres(query: &ProductQuery) -> String {
    list_statement(query, true).0
}

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
    /// pool — or the primary while `subject` (a product, or the catalog) was written recently,
    /// so that no cache is filled from a replica that has not seen the write yet.
    async fn read(
        &self,
        subject: Subject,
        statement: &str,
        args: &[Arg],
    ) -> Result<Vec<ProductRow>, StoreError> {
        Ok(with_db!(&self.db, read(Some(subject)), |conn, sql| {
            let mut query = sqlx::query_as::<_, ProductRow>(sql(statement));
            for arg in args {
                query = match arg {
                    Arg::Uuid(value) => query.bind(*value),
                    Arg::Int(value) => query.bind(*value),
                    Arg::Text(value) => query.bind(value.as_str()),
                };
            }
            query.fetch_all(conn).await
        })?)
    }

    /// The product `id`.
    pub async fn get(&self, id: Uuid) -> Result<Option<ProductRow>, StoreError> {
        Ok(self
            .read(Subject::Product(id), PRODUCT_BY_ID.postgres(), &[Arg::Uuid(id)])
            .await?
            .pop())
    }

    /// The product `id`, read on the primary (right after a write).
    pub async fn get_current(&self, id: Uuid) -> Result<Option<ProductRow>, StoreError> {
        Ok(with_pool!(&self.primary, |pool, sql| {
            sqlx::query_as::<_, ProductRow>(sql(PRODUCT_BY_ID))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// One page of products in id (creation) order.
    pub async fn list(&self, query: &ProductQuery) -> Result<Vec<ProductRow>, StoreError> {
        let postgres = matches!(self.db, Database::Postgres(_));
        let (statement, args) = list_statement(query, postgres);
        self.read(Subject::Catalog, &statement, &args).await
    }

    /// The catalog's version: bumped by every write, so cached pages keyed by it retire at once.
    pub async fn version(&self) -> Result<i64, StoreError> {
        Ok(with_pool!(&self.primary, |pool, sql| {
            sqlx::query_scalar::<_, i64>(sql(CATALOG_VERSION))
                .fetch_one(pool)
                .await?
        }))
    }

    /// Creates a product.
    pub async fn create(&self, new: &NewProduct) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        let now = Utc::now();
        catalog_write!(self, |tx, sql| {
            sqlx::query(sql(PRODUCT_INSERT))
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
        });
        Ok(id)
    }

    /// Applies `patch`; false when there is no such product.
    pub async fn update(&self, id: Uuid, patch: &ProductPatch) -> Result<bool, StoreError> {
        let (set_image, image) = match patch.image_id {
            Some(image) => (true, image),
            None => (false, None),
        };
        let updated = catalog_write!(self, |tx, sql| {
            sqlx::query(sql(PRODUCT_UPDATE))
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
                .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes a product (orders keep their own copy of what was sold); false when absent.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = catalog_write!(self, |tx, sql| {
            sqlx::query(sql(PRODUCT_DELETE))
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }

    /// Products showing `upload` (their cached copies must go when its variants change).
    pub async fn showing_image(&self, upload: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(with_pool!(&self.primary, |pool, sql| {
            sqlx::query_scalar::<_, Uuid>(sql(PRODUCTS_SHOWING_IMAGE))
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
