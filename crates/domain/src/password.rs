//! The password policy of NIST SP 800-63B §5.1.1.2: length over composition rules.

use std::{collections::HashSet, sync::LazyLock};

use crate::{Email, ValidationError};

/// NIST's floor for user-chosen secrets.
pub const MIN_CHARS: usize = 8;
/// Long enough for passphrases, short enough that hashing one costs a bounded amount of work.
pub const MAX_CHARS: usize = 128;

/// Passwords that appear at the top of every breach corpus (800-63B asks verifiers to refuse
/// "values known to be commonly-used"): the 11,613 most common ones of 8 characters or more,
/// lower-cased, one per line after a `#` header that gives their provenance and licence.
const COMMON_LIST: &str = include_str!("common-passwords.txt");

/// [`COMMON_LIST`] as a set, built on first use (about 11,600 borrowed entries).
fn common_passwords() -> &'static HashSet<&'static str> {
    static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
        COMMON_LIST
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect()
    });
    &COMMON
}

/// A password that meets the policy. Deliberately not `Debug`-printable in clear and not
/// serialisable: it exists only on its way to the hasher.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks `input` against the policy: 8–128 characters (Unicode scalar values, so a
    /// passphrase in any script counts fairly), not the e-mail address, not a common password.
    /// No composition rules, as 800-63B recommends.
    pub fn parse(input: &str, email: Option<&Email>) -> Result<Self, ValidationError> {
        let chars = input.chars().count();
        if chars < MIN_CHARS {
            return Err(ValidationError::new(format!(
                "must be at least {MIN_CHARS} characters"
            )));
        }
        if chars > MAX_CHARS {
            return Err(ValidationError::new(format!(
                "must be at most {MAX_CHARS} characters"
            )));
        }
        let lowered = input.to_lowercase();
        if email.is_some_and(|email| lowered.trim() == email.as_str()) {
            return Err(ValidationError::new("must not be your e-mail address"));
        }
        if common_passwords().contains(lowered.as_str()) {
            return Err(ValidationError::new(
                "is one of the most common passwords; choose another",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The secret itself, for the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("ann@example.org").expect("valid")
    }

    #[test]
    fn eight_to_128_characters_are_accepted() {
        assert!(Password::parse("correct horse", Some(&email())).is_ok());
        assert!(Password::parse(&"x".repeat(128), None).is_ok());
    }

    #[test]
    fn too_short_and_too_long_passwords_are_refused() {
        assert!(Password::parse("short", None).is_err());
        assert!(Password::parse(&"x".repeat(129), None).is_err());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        // Eight characters, 24 bytes: accepted.
        assert!(Password::parse("日本語の秘密鍵です", None).is_ok());
        // Seven characters, 21 bytes: refused.
        assert!(Password::parse("日本語の秘密鍵", None).is_err());
    }

    #[test]
    fn the_email_address_is_refused_as_a_password() {
        assert!(Password::parse("Ann@Example.org", Some(&email())).is_err());
    }

    #[test]
    fn common_passwords_are_refused() {
        // From the top, the middle and the end of the bundled list, in any case.
        for common in [
            "Password123",
            "password",
            "iloveyou",
            "1qaz2wsx",
            "Corvette",
            "felicidade",
            "00000000",
        ] {
            let refused = Password::parse(common, None).expect_err(common);
            assert!(
                refused.to_string().contains("most common passwords"),
                "{common}: {refused}"
            );
        }
        assert!(Password::parse("felicidade lunar", None).is_ok());
    }

    #[test]
    fn the_bundled_list_holds_thousands_of_passwords_the_policy_would_otherwise_accept() {
        let list = common_passwords();
        assert!(list.len() > 11_000, "{} entries", list.len());
        for entry in list {
            let chars = entry.chars().count();
            assert!((MIN_CHARS..=MAX_CHARS).contains(&chars), "{entry:?}");
            assert_eq!(entry.to_lowercase(), *entry, "entries are lower-cased");
            assert!(!entry.starts_with('#') && entry.trim() == *entry, "{entry:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let password = Password::parse("correct horse", None).expect("valid");
        assert!(!format!("{password:?}").contains("horse"));
    }
}
