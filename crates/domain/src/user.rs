//! Users: their identifiers, display names and roles.

use crate::{
    ValidationError,
    stored::{stored_words, uuid_id},
    text::checked_text,
};

uuid_id!(
    /// A user's identifier: a UUIDv7, so identifiers sort by creation time and keyset
    /// pagination over them is both stable and chronological.
    UserId
);

impl UserId {
    /// Parses the textual form (any UUID version is accepted: ids are opaque to clients).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::try_parse(input)
            .map(Self)
            .map_err(|_| ValidationError::new("must be a user id (a UUID)"))
    }
}

/// The longest display name we store; long enough for any real name.
pub const MAX_NAME_CHARS: usize = 100;

checked_text! {
    /// A display name: trimmed, 1–100 characters, no control characters (they break logs,
    /// e-mails and terminals alike).
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
    #[serde(transparent)]
    pub struct UserName;
}

impl UserName {
    /// Trims and checks `input`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(ValidationError::new(format!(
                "must be at most {MAX_NAME_CHARS} characters"
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new("must not contain control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }
}

stored_words! {
    /// What a user may do: their own data only, or everybody's.
    Role("role") {
        /// Reads and changes their own data.
        User = "user",
        /// Reads and changes any data; created only from the command line.
        Admin = "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed() {
        assert_eq!(UserName::parse("  Ann Lee ").expect("valid").as_str(), "Ann Lee");
    }

    #[test]
    fn empty_overlong_and_control_character_names_are_refused() {
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"a".repeat(101)).is_err());
        assert!(UserName::parse("Ann\u{0}Lee").is_err());
        assert!(UserName::parse("Ann\nLee").is_err());
    }

    #[test]
    fn sql_looking_names_are_just_names() {
        // Parameterised SQL makes these harmless; they are stored as typed.
        assert!(UserName::parse("Robert'); DROP TABLE users;--").is_ok());
    }

    #[test]
    fn new_user_ids_sort_by_creation() {
        let first = UserId::new();
        let second = UserId::new();
        assert!(first < second);
    }

    #[test]
    fn roles_round_trip_through_text() {
        for role in [Role::User, Role::Admin] {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("root").is_err());
    }
}
