//! Where things live in the object store: the one place that names storage keys, so the
//! handler that streams an upload in, the job that renders its variants and the download that
//! reads them back cannot disagree. A leaf: it depends on nothing above the rows it names.

use uuid::Uuid;

use crate::db::media::ExportRow;

/// The storage key of an upload's original.
pub fn original_key(id: Uuid) -> String {
    format!("uploads/{id}/original")
}

/// The storage key of an upload's WebP variant `width` pixels wide.
pub fn variant_key(id: Uuid, width: u32) -> String {
    format!("uploads/{id}/w{width}.webp")
}

/// The storage key of an export's file.
pub fn export_key(row: &ExportRow) -> String {
    format!("exports/{}.{}", row.id, row.format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_the_layout_already_in_the_object_store() {
        // Objects written by earlier versions must still be found: the layout may not drift.
        let id = Uuid::nil();
        assert_eq!(original_key(id), format!("uploads/{id}/original"));
        assert_eq!(variant_key(id, 800), format!("uploads/{id}/w800.webp"));
        let export = ExportRow {
            id,
            user_id: id,
            format: "csv".into(),
            status: "ready".into(),
            size_bytes: None,
            error: None,
            created_at: chrono::Utc::now(),
            finished_at: None,
        };
        assert_eq!(export_key(&export), format!("exports/{id}.csv"));
    }
}
