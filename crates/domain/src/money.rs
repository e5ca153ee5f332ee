//! Money: amounts in minor units (cents) of an ISO 4217 currency. Never floating point.

use crate::ValidationError;

/// An ISO 4217 currency code: three upper-case ASCII letters (`EUR`, `USD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a code; lower case is accepted and normalised.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let bytes = input.trim().as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_alphabetic) => Ok(Self([
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ])),
            _ => Err(ValidationError::new(
                "must be an ISO 4217 currency code of three letters, such as EUR",
            )),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest price or order total accepted, in minor units (a billion in major units): far
/// beyond any real basket, and far from `i64` overflow when quantities multiply it.
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000_000;

/// A non-negative amount of one currency, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Minor units (cents).
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// Checks that `minor` is a price: 0 ..= [`MAX_AMOUNT_MINOR`].
    pub fn new(minor: i64, currency: Currency) -> Result<Self, ValidationError> {
        if !(0..=MAX_AMOUNT_MINOR).contains(&minor) {
            return Err(ValidationError::new(format!(
                "must be between 0 and {MAX_AMOUNT_MINOR} minor units"
            )));
        }
        Ok(Self { minor, currency })
    }

    /// `self × quantity`, refusing overflow of the accepted range.
    pub fn times(self, quantity: u32) -> Result<Self, ValidationError> {
        let minor = self
            .minor
            .checked_mul(i64::from(quantity))
            .filter(|total| *total <= MAX_AMOUNT_MINOR)
            .ok_or_else(|| ValidationError::new("the amount is too large"))?;
        Ok(Self { minor, ..self })
    }

    /// `self + other`, refusing mixed currencies and overflow.
    pub fn plus(self, other: Self) -> Result<Self, ValidationError> {
        if self.currency != other.currency {
            return Err(ValidationError::new(format!(
                "cannot add {} to {}: one order, one currency",
                other.currency, self.currency
            )));
        }
        let minor = self
            .minor
            .checked_add(other.minor)
            .filter(|total| *total <= MAX_AMOUNT_MINOR)
            .ok_or_else(|| ValidationError::new("the amount is too large"))?;
        Ok(Self { minor, ..self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EUR: Currency = Currency(*b"EUR");

    #[test]
    fn currencies_are_three_letters_normalised_to_upper_case() {
        assert_eq!(Currency::parse("eur"), Ok(EUR));
        assert_eq!(EUR.as_str(), "EUR");
        for bad in ["", "EU", "EURO", "E1R", "€€€", "e r"] {
            assert!(Currency::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn amounts_are_bounded_and_never_negative() {
        assert!(Money::new(-1, EUR).is_err());
        assert!(Money::new(MAX_AMOUNT_MINOR + 1, EUR).is_err());
        assert_eq!(
            Money::new(250, EUR).expect("price").times(4).expect("x4").minor,
            1000
        );
        assert!(Money::new(MAX_AMOUNT_MINOR, EUR).expect("max").times(2).is_err());
    }

    #[test]
    fn sums_refuse_mixed_currencies() {
        let usd = Currency::parse("USD").expect("USD");
        let total = Money::new(100, EUR)
            .expect("a")
            .plus(Money::new(50, EUR).expect("b"));
        assert_eq!(total.expect("sum").minor, 150);
        assert!(
            Money::new(100, EUR)
                .expect("a")
                .plus(Money::new(1, usd).expect("b"))
                .is_err()
        );
    }
}
