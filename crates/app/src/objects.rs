//! Where things live in the object store: the one place that names storage keys, so the
//! handler that streams an upload in, the job that renders its variants and the download that
//! reads them back cannot disagree. A leaf: it depends on nothing above the rows it names.

use outgrow_domain::UploadId;

use crate::db::media::ExportRow;

/// The storage key of an upload's original.
pub fn original_key(id: UploadId) -> String {
    format!("uploads/{id}/original")
}

/// The storage key of an upload's WebP variant `width` pixels wide.
pub fn variant_key(id: UploadId, width: u32) -> String {
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
        let id = uuid::Uuid::nil();
        assert_eq!(original_key(UploadId(id)), format!("uploads/{id}/original"));
        assert_eq!(variant_key(UploadId(id), 800), format!("uploads/{id}/w800.webp"));
        let export = ExportRow {
            id: outgrow_domain::ExportId(id),
            user_id: outgrow_domain::UserId(id),
            format: "csv".into(),
            status: outgrow_domain::ExportStatus::Ready,
            size_bytes: None,
            error: None,
            created_at: chrono::Utc::now(),
            finished_at: None,
        };
        assert_eq!(export_key(&export), format!("exports/{id}.csv"));
    }
}
