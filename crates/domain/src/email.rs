//! E-mail addresses as accounts know them: normalised so that one mailbox is one account.

use crate::{ValidationError, text::checked_text};

/// The longest address SMTP can carry (RFC 5321 §4.5.3.1.3: a 256-octet path minus the brackets).
const MAX_LEN: usize = 254;
/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL_LEN: usize = 64;
/// RFC 1035 §2.3.4.
const MAX_LABEL_LEN: usize = 63;

checked_text! {
    /// A syntactically valid, normalised (trimmed, lower-cased) e-mail address.
    ///
    /// Lower-casing the local part is a deliberate choice: RFC 5321 allows case-sensitive local
    /// parts, but no mainstream provider uses them and treating `Ann@x.org` and `ann@x.org` as two
    /// accounts invites account confusion.
    #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
    #[serde(transparent)]
    pub struct Email;
}

impl Email {
    /// Normalises and checks `input`: one `@`, a dot-atom local part, and a domain of
    /// valid DNS labels with at least one dot.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        // ASCII case only: Unicode lower-casing turns some non-ASCII letters into ASCII ones
        // (the Kelvin sign K into k), which would accept, and send mail to, an address other
        // than the one typed. Non-ASCII characters stay as they are and are refused below.
        let normalised = input.trim().to_ascii_lowercase();
        if normalised.is_empty() {
            return Err(ValidationError::new("must not be empty"));
        }
        if normalised.len() > MAX_LEN {
            return Err(ValidationError::new(format!(
                "must be at most {MAX_LEN} characters"
            )));
        }
        let Some((local, domain)) = normalised.split_once('@') else {
            return Err(ValidationError::new("must contain an @"));
        };
        check_local_part(local)?;
        check_domain(domain)?;
        Ok(Self(normalised))
    }
}

/// RFC 5322 `dot-atom`: atext characters in dot-separated, non-empty runs.
fn check_local_part(local: &str) -> Result<(), ValidationError> {
    if local.is_empty() || local.len() > MAX_LOCAL_LEN {
        return Err(ValidationError::new(format!(
            "the part before @ must be 1 to {MAX_LOCAL_LEN} characters"
        )));
    }
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local
        .split('.')
        .any(|run| run.is_empty() || !run.chars().all(is_atext))
    {
        return Err(ValidationError::new(
            "the part before @ has a character or a dot where none may be",
        ));
    }
    Ok(())
}

/// A host name: at least two labels of letters, digits and inner hyphens.
fn check_domain(domain: &str) -> Result<(), ValidationError> {
    let labels: Vec<&str> = domain.split('.').collect();
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(valid_label) {
        return Err(ValidationError::new(
            "the part after @ must be a domain name such as example.com",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every one of `addresses` is refused.
    fn assert_refused(addresses: &[&str]) {
        for bad in addresses {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn a_plain_address_is_accepted_and_normalised() {
        let email = Email::parse("  Ann.Lee+shop@Example.ORG ").expect("valid");
        assert_eq!(email.as_str(), "ann.lee+shop@example.org");
    }

    #[test]
    fn addresses_without_an_at_or_a_dotted_domain_are_refused() {
        assert_refused(&[
            "",
            "   ",
            "ann",
            "ann@",
            "@example.org",
            "ann@localhost",
            "ann@@x.org",
        ]);
    }

    #[test]
    fn dots_must_separate_non_empty_runs() {
        assert_refused(&[
            ".ann@x.org",
            "ann.@x.org",
            "a..nn@x.org",
            "ann@x..org",
            "ann@.x.org",
        ]);
    }

    #[test]
    fn injection_and_control_characters_are_refused() {
        assert_refused(&[
            "ann'; DROP TABLE users;--@x.org",
            "ann@x.org\r\nBcc: eve@y.org",
            "ann lee@x.org",
            "ann@x_y.org",
            "ann@-x.org",
        ]);
    }

    #[test]
    fn letters_that_lower_case_to_ascii_are_refused_not_folded() {
        // Caught by the e-mail fuzz target's invariant (an accepted address is the one typed, up
        // to ASCII case): U+212A KELVIN SIGN lower-cases to an ASCII `k`, so this was
        // accepted as kelvin@example.org, another mailbox.
        assert_refused(&["\u{212A}elvin@example.org", "ann@\u{212A}.org", "\u{130}an@x.org"]);
    }

    #[test]
    fn overlong_addresses_are_refused() {
        let local = "a".repeat(65);
        assert!(Email::parse(&format!("{local}@x.org")).is_err());
        let domain = format!("{}.org", "d".repeat(250));
        assert!(Email::parse(&format!("ann@{domain}")).is_err());
    }
}
