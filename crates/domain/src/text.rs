//! What every checked piece of text shares: the newtype around its `String`, with the same
//! accessors, and the trimming and character checks that most of them apply.

/// Declares a newtype over a `String` that only the type's own `parse` builds, with the
/// accessors every such type has: `as_str`, `into_inner` and `Display`.
macro_rules! checked_text {
    ($(#[$meta:meta])* pub struct $name:ident;) => {
        $(#[$meta])*
        pub struct $name(String);

        impl $name {
            /// The checked text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The checked text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use checked_text;

/// `input` without surrounding whitespace, if that has at most `max_chars` characters and no
/// control character other than `allowed_controls` (control characters break logs, e-mails
/// and terminals alike).
pub(crate) fn trimmed_text<'a>(
    input: &'a str,
    max_chars: usize,
    allowed_controls: &[char],
) -> Option<&'a str> {
    let trimmed = input.trim();
    let refused = |c: char| c.is_control() && !allowed_controls.contains(&c);
    (trimmed.chars().count() <= max_chars && !trimmed.chars().any(refused)).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_counted_in_characters() {
        assert_eq!(trimmed_text("  é é  ", 3, &[]), Some("é é"));
        assert_eq!(trimmed_text("éééé", 3, &[]), None);
    }

    #[test]
    fn only_the_allowed_control_characters_pass() {
        assert_eq!(trimmed_text("a\tb", 10, &[]), None);
        assert_eq!(trimmed_text("a\tb", 10, &['\t']), Some("a\tb"));
        assert_eq!(trimmed_text("a\u{7}b", 10, &['\t']), None);
    }
}
