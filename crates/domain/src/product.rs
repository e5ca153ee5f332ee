//! Products: what the catalog accepts as a name, a description, a stock level and a search.
//!
//! Prices are [`crate::Money`]. Each parser trims and checks its input; the messages are shown
//! to users as they are, under the field the HTTP layer names.

use crate::{
    ValidationError,
    text::{checked_text, trimmed_text},
};

/// The longest product name, in characters.
pub const MAX_PRODUCT_NAME_CHARS: usize = 200;
/// The longest product description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// The most units of a product the catalog holds: far below any overflow when orders add up.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// The longest catalog search, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;

checked_text! {
    /// A product's name: trimmed, 1–200 characters, no control characters.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ProductName;
}

impl ProductName {
    /// Trims and checks `input`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        trimmed_text(input, MAX_PRODUCT_NAME_CHARS, &[])
            .filter(|name| !name.is_empty())
            .map(|name| Self(name.to_owned()))
            .ok_or_else(|| {
                ValidationError::new(format!(
                    "must be 1 to {MAX_PRODUCT_NAME_CHARS} characters, without control characters"
                ))
            })
    }
}

checked_text! {
    /// A product's description: trimmed, up to 5,000 characters (empty is fine); line breaks and
    /// tabs are kept, other control characters refused.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct ProductDescription;
}

impl ProductDescription {
    /// Trims and checks `input`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        trimmed_text(input, MAX_DESCRIPTION_CHARS, &['\n', '\t', '\r'])
            .map(|description| Self(description.to_owned()))
            .ok_or_else(|| {
                ValidationError::new(format!(
                    "must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"
                ))
            })
    }
}

/// Units of a product available: 0 to [`MAX_STOCK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stock(i64);

impl Stock {
    /// Checks `units`.
    pub fn new(units: i64) -> Result<Self, ValidationError> {
        if !(0..=MAX_STOCK).contains(&units) {
            return Err(ValidationError::new(format!("must be 0 to {MAX_STOCK}")));
        }
        Ok(Self(units))
    }

    /// The units.
    pub fn units(self) -> i64 {
        self.0
    }
}

checked_text! {
    /// Words to look for in the catalog: trimmed, at most 200 characters, no control characters.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SearchText;
}

impl SearchText {
    /// Trims and checks `input`; a blank search is no search (`None`).
    pub fn parse(input: &str) -> Result<Option<Self>, ValidationError> {
        if input.trim().is_empty() {
            return Ok(None);
        }
        trimmed_text(input, MAX_SEARCH_CHARS, &[])
            .map(|text| Some(Self(text.to_owned())))
            .ok_or_else(|| {
                ValidationError::new(format!(
                    "must be at most {MAX_SEARCH_CHARS} characters, without control characters"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names_are_trimmed() {
        assert_eq!(
            ProductName::parse("  Blue mug ").expect("valid").as_str(),
            "Blue mug"
        );
    }

    #[test]
    fn empty_overlong_and_control_character_product_names_are_refused() {
        assert!(ProductName::parse("  ").is_err());
        assert!(ProductName::parse(&"a".repeat(MAX_PRODUCT_NAME_CHARS + 1)).is_err());
        assert!(ProductName::parse(&"é".repeat(MAX_PRODUCT_NAME_CHARS)).is_ok());
        assert!(ProductName::parse("Blue\nmug").is_err());
    }

    #[test]
    fn a_refused_product_name_says_what_is_accepted() {
        let error = ProductName::parse("").expect_err("empty");
        assert_eq!(
            error.to_string(),
            "must be 1 to 200 characters, without control characters"
        );
    }

    #[test]
    fn descriptions_keep_line_breaks_and_tabs_and_may_be_empty() {
        let description = ProductDescription::parse(" Line one\r\n\tLine two ").expect("valid");
        assert_eq!(description.as_str(), "Line one\r\n\tLine two");
        assert_eq!(ProductDescription::parse("   ").expect("valid").as_str(), "");
    }

    #[test]
    fn overlong_descriptions_and_other_control_characters_are_refused() {
        assert!(ProductDescription::parse(&"a".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
        assert!(ProductDescription::parse("bell\u{7}").is_err());
        assert!(ProductDescription::parse(&"a".repeat(MAX_DESCRIPTION_CHARS)).is_ok());
    }

    #[test]
    fn stock_is_zero_to_a_billion() {
        assert_eq!(Stock::new(0).expect("valid").units(), 0);
        assert!(Stock::new(MAX_STOCK).is_ok());
        assert!(Stock::new(-1).is_err());
        assert_eq!(
            Stock::new(MAX_STOCK + 1).expect_err("too many").to_string(),
            "must be 0 to 1000000000"
        );
    }

    #[test]
    fn a_blank_search_is_no_search() {
        assert_eq!(SearchText::parse("  ").expect("valid"), None);
        let text = SearchText::parse(" blue mug ").expect("valid").expect("some");
        assert_eq!(text.as_str(), "blue mug");
    }

    #[test]
    fn overlong_and_control_character_searches_are_refused() {
        assert!(SearchText::parse(&"a".repeat(MAX_SEARCH_CHARS + 1)).is_err());
        assert!(SearchText::parse("blue\tmug").is_err());
    }
}
