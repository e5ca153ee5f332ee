//! Uploads and exports: their identifiers and the states their processing moves through.
//!
//! The states are stored as text (`uploads.status`, `exports.status`, each with a `CHECK` of
//! the same values) and shown as that text in the API, so [`UploadStatus::as_str`] and
//! [`ExportStatus::as_str`] are the one spelling of each and parsing is their inverse.

use crate::ValidationError;

/// Declares a UUID identifier: time-ordered when made here, opaque to clients, serialised as
/// the bare UUID (so stored job payloads and responses keep their shape).
macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered identifier (UUIDv7).
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An uploaded image's identifier.
    UploadId
);
uuid_id!(
    /// A data export's identifier.
    ExportId
);

/// Declares a state enum stored and serialised as its lowercase name.
macro_rules! text_state {
    ($(#[$doc:meta])* $name:ident, what = $what:literal, { $($(#[$variant_doc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
        }

        impl $name {
            /// The stored and serialised form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The inverse of [`Self::as_str`].
            pub fn parse(input: &str) -> Result<Self, ValidationError> {
                match input {
                    $($text => Ok(Self::$variant),)+
                    other => Err(ValidationError::new(format!(concat!("unknown ", $what, " {:?}"), other))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(text: String) -> Result<Self, ValidationError> {
                Self::parse(&text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_state!(
    /// Where an upload's processing is.
    UploadStatus, what = "upload status", {
        /// Stored; its variants are being made.
        Processing = "processing",
        /// Its variants are made.
        Ready = "ready",
        /// It could not be processed (the row says why).
        Failed = "failed",
    }
);

text_state!(
    /// Where an export's build is.
    ExportStatus, what = "export status", {
        /// Requested; the file is being built.
        Pending = "pending",
        /// The file is stored and its link was mailed.
        Ready = "ready",
        /// It could not be built (the row says why).
        Failed = "failed",
    }
);

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
