//! Users: their identifiers, display names and roles.

use crate::ValidationError;

/// A user's identifier: a UUIDv7, so identifiers sort by creation time and keyset pagination
/// over them is both stable and chronological.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(pub uuid::Uuid);

impl UserId {
    /// A fresh, time-ordered identifier.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses the textual form (any UUID version is accepted: ids are opaque to clients).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::try_parse(input)
            .map(Self)
            .map_err(|_| ValidationError::new("must be a user id (a UUID)"))
    }
}

impl From<uuid::Uuid> for UserId {
    fn from(id: uuid::Uuid) -> Self {
        Self(id)
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest display name we store; long enough for any real name.
pub const MAX_NAME_CHARS: usize = 100;

/// A display name: trimmed, 1–100 characters, no control characters (they break logs,
/// e-mails and terminals alike).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct UserName(String);

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

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user may do: their own data only, or everybody's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and changes their own data.
    User,
    /// Reads and changes any data; created only from the command line.
    Admin,
}

impl Role {
    /// The stored and serialised form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// The inverse of [`Role::as_str`].
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        match input {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            other => Err(ValidationError::new(format!("unknown role {other:?}"))),
        }
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
