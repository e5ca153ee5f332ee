//! The two shapes of value the domain stores as they are: a UUID identifier and a state
//! written as a word. Each is declared by a macro here, so every identifier and every state
//! has the same conversions, and the stored text and the JSON stay one spelling.

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
pub(crate) use uuid_id;

/// Declares a state stored and serialised as a word: its variants with their words, `as_str`
/// (the one spelling), `parse` and `TryFrom<String>` (what sqlx's `try_from` decodes through;
/// an unknown word names `$what`), and `Display`. The migrations' `CHECK` constraints list the
/// same words.
macro_rules! stored_words {
    ($(#[$meta:meta])* $name:ident($what:literal) { $($(#[$doc:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$doc])* $variant,)+
        }

        impl $name {
            /// The stored and serialised word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }

            /// The inverse of [`Self::as_str`].
            pub fn parse(word: &str) -> Result<Self, $crate::ValidationError> {
                match word {
                    $($word => Ok(Self::$variant),)+
                    other => Err($crate::ValidationError::new(format!(
                        concat!("unknown ", $what, " {:?}"),
                        other
                    ))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::ValidationError;

            fn try_from(word: String) -> Result<Self, Self::Error> {
                Self::parse(&word)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_words;
