//! Uploads and exports: their identifiers and the states their processing moves through.
//!
//! The states are stored as text (`uploads.status`, `exports.status`, each with a `CHECK` of
//! the same values) and shown as that text in the API, so [`UploadStatus::as_str`] and
//! [`ExportStatus::as_str`] are the one spelling of each and parsing is their inverse.

use crate::stored::{stored_words, uuid_id};

uuid_id!(
    /// An uploaded image's identifier.
    UploadId
);
uuid_id!(
    /// A data export's identifier.
    ExportId
);

stored_words! {
    /// Where an upload's processing is.
    UploadStatus("upload status") {
        /// Stored; its variants are being made.
        Processing = "processing",
        /// Its variants are made.
        Ready = "ready",
        /// It could not be processed (the row says why).
        Failed = "failed",
    }
}

stored_words! {
    /// Where an export's build is.
    ExportStatus("export status") {
        /// Requested; the file is being built.
        Pending = "pending",
        /// The file is stored and its link was mailed.
        Ready = "ready",
        /// It could not be built (the row says why).
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_keep_the_text_the_database_checks() {
        // The migrations' CHECK constraints allow exactly these values.
        for (status, text) in [
            (UploadStatus::Processing, "processing"),
            (UploadStatus::Ready, "ready"),
            (UploadStatus::Failed, "failed"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(UploadStatus::try_from(text.to_owned()), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).expect("serialises"),
                format!("\"{text}\"")
            );
        }
        for (status, text) in [
            (ExportStatus::Pending, "pending"),
            (ExportStatus::Ready, "ready"),
            (ExportStatus::Failed, "failed"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(ExportStatus::try_from(text.to_owned()), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).expect("serialises"),
                format!("\"{text}\"")
            );
        }
    }

    #[test]
    fn unknown_states_are_refused() {
        assert!(UploadStatus::parse("pending").is_err());
        assert!(ExportStatus::parse("processing").is_err());
    }

    #[test]
    fn ids_serialise_as_bare_uuids() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(
            serde_json::to_string(&UploadId(id)).expect("serialises"),
            format!("\"{id}\"")
        );
        assert_eq!(ExportId::from(id).to_string(), id.to_string());
    }
}
