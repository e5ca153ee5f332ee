//! A user's data, rendered for export: JSON (one document) or CSV (one row per record).

use serde_json::json;

use crate::{db::media::UploadRow, repo::User, store::orders::Order};

/// The export file in `format` (`csv` or `json`).
pub fn render(format: &str, user: &User, uploads: &[UploadRow], orders: &[Order]) -> anyhow::Result<Vec<u8>> {
    match format {
        "json" => {
            let document = json!({
                "account": {
                    "id": user.id, "email": user.email, "name": user.name, "role": user.role,
                    "created_at": user.created_at, "updated_at": user.updated_at,
                },
                "uploads": uploads.iter().map(|upload| json!({
                    "id": upload.id, "content_type": upload.content_type, "size_bytes": upload.size_bytes,
                    "width": upload.width, "height": upload.height, "public": upload.public,
                    "status": upload.status, "created_at": upload.created_at,
                })).collect::<Vec<_>>(),
                "orders": orders.iter().map(|order| json!({
                    "id": order.order.id, "status": order.order.status,
                    "total_minor": order.order.total_minor, "currency": order.order.currency,
                    "created_at": order.order.created_at, "cancelled_at": order.order.cancelled_at,
                    "items": order.items.iter().map(|item| json!({
                        "product_id": item.product_id, "name": item.name,
                        "quantity": item.quantity, "unit_price_minor": item.unit_price_minor,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            Ok(serde_json::to_vec_pretty(&document)?)
        }
        "csv" => {
            let mut out = String::from("record,id,created_at,field,value\r\n");
            let created = user.created_at.to_rfc3339();
            for (field, value) in [
                ("email", user.email.as_str()),
                ("name", user.name.as_str()),
                ("role", user.role.as_str()),
            ] {
                push_row(
                    &mut out,
                    &["account", &user.id.to_string(), &created, field, value],
                );
            }
            for upload in uploads {
                let created = upload.created_at.to_rfc3339();
                let id = upload.id.to_string();
                let size = upload.size_bytes.to_string();
                let dimensions = format!("{}x{}", upload.width.unwrap_or(0), upload.height.unwrap_or(0));
                for (field, value) in [
                    ("content_type", upload.content_type.as_str()),
                    ("size_bytes", &size),
                    ("dimensions", &dimensions),
                ] {
                    push_row(&mut out, &["upload", &id, &created, field, value]);
                }
            }
            for order in orders {
                let created = order.order.created_at.to_rfc3339();
                let id = order.order.id.to_string();
                let total = format!("{} {}", order.order.total_minor, order.order.currency);
                push_row(
                    &mut out,
                    &["order", &id, &created, "status", order.order.status.as_str()],
                );
                push_row(&mut out, &["order", &id, &created, "total_minor", &total]);
                for item in &order.items {
                    let line = format!(
                        "{} x {} ({}) at {}",
                        item.quantity, item.name, item.product_id, item.unit_price_minor
                    );
                    push_row(&mut out, &["order", &id, &created, "item", &line]);
                }
            }
            Ok(out.into_bytes())
        }
        other => anyhow::bail!("unknown export format {other:?}"),
    }
}

/// One RFC 4180 row. Fields that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) are
/// prefixed with `'` (CSV injection), and every field is quoted.
fn push_row(out: &mut String, fields: &[&str]) {
    let quoted: Vec<String> = fields
        .iter()
        .map(|field| {
            let safe = if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{field}")
            } else {
                (*field).to_owned()
            };
            format!("\"{}\"", safe.replace('"', "\"\""))
        })
        .collect();
    out.push_str(&quoted.join(","));
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        let mut out = String::new();
        push_row(&mut out, &["account", "=HYPERLINK(\"x\")", "a,b"]);
        assert_eq!(out, "\"account\",\"'=HYPERLINK(\"\"x\"\")\",\"a,b\"\r\n");
    }
}
