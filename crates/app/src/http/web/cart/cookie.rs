//! The cart as the browser keeps it: the `outgrow_cart` cookie, `id:qty.id:qty`, exactly as
//! `web/js/cart-store.js` writes it. Reading never fails: malformed entries are dropped, a
//! product named twice is merged, quantities are clamped — a cookie is user input.

use axum::http::{HeaderMap, HeaderValue};
use uuid::Uuid;

use crate::http::authn::cookie_value;

/// The cookie's name.
pub const COOKIE: &str = "outgrow_cart";
/// Lines at most (the API takes up to 50 per order).
pub const MAX_LINES: usize = 50;
/// Units of one product at most.
pub const MAX_QUANTITY: u32 = 100;
/// How long the browser keeps it: 30 days.
const MAX_AGE_SECONDS: u32 = 30 * 24 * 3600;

/// A cart: products in the order they were added, each once, with 1 to [`MAX_QUANTITY`] units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    lines: Vec<(Uuid, u32)>,
}

impl Cart {
    /// The cart in `value`, keeping what is well-formed.
    pub fn parse(value: &str) -> Self {
        let mut cart = Self::default();
        for entry in value.split('.') {
            let Some((id, quantity)) = entry.split_once(':') else {
                continue;
            };
            let (Ok(id), Ok(quantity)) = (Uuid::try_parse(id), quantity.parse::<u32>()) else {
                continue;
            };
            if quantity > 0 {
                cart.add(id, quantity);
            }
        }
        cart
    }

    /// The cart the request's cookie holds (empty without one).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        cookie_value(headers, COOKIE).map(Self::parse).unwrap_or_default()
    }

    /// The lines: product and units.
    pub fn lines(&self) -> &[(Uuid, u32)] {
        &self.lines
    }

    /// Whether the cart has no line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Adds `quantity` units of `id` (a new line only while there is room).
    pub fn add(&mut self, id: Uuid, quantity: u32) {
        let room = self.lines.len() < MAX_LINES;
        match self.lines.iter_mut().find(|(known, _)| *known == id) {
            Some((_, units)) => *units = units.saturating_add(quantity).min(MAX_QUANTITY),
            None if room && quantity > 0 => self.lines.push((id, quantity.min(MAX_QUANTITY))),
            None => {}
        }
    }

    /// Sets the units of `id` (0 removes the line).
    pub fn set(&mut self, id: Uuid, quantity: u32) {
        if quantity == 0 {
            self.remove(id);
        } else if let Some((_, units)) = self.lines.iter_mut().find(|(known, _)| *known == id) {
            *units = quantity.min(MAX_QUANTITY);
        } else {
            self.add(id, quantity);
        }
    }

    /// Removes the line of `id`.
    pub fn remove(&mut self, id: Uuid) {
        self.lines.retain(|(known, _)| *known != id);
    }

    /// The cookie's value.
    pub fn value(&self) -> String {
        self.lines
            .iter()
            .map(|(id, quantity)| format!("{id}:{quantity}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The `Set-Cookie` that stores this cart (or deletes the cookie when it is empty). Not
    /// `HttpOnly`: the page's script edits it too; it holds nothing secret.
    pub fn set_cookie(&self, secure: bool) -> HeaderValue {
        let secure = if secure { "; Secure" } else { "" };
        let cookie = if self.is_empty() {
            format!("{COOKIE}=; Path=/; Max-Age=0; SameSite=Lax{secure}")
        } else {
            format!(
                "{COOKIE}={}; Path=/; Max-Age={MAX_AGE_SECONDS}; SameSite=Lax{secure}",
                self.value()
            )
        };
        // Ids, digits, `:`, `.` and `;`: always a valid header value.
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("outgrow_cart=; Path=/; Max-Age=0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0196b4a0-0000-7000-8000-00000000000a";
    const B: &str = "0196b4a0-0000-7000-8000-00000000000b";

    fn id(text: &str) -> Uuid {
        Uuid::try_parse(text).expect("uuid")
    }

    #[test]
    fn a_cookie_round_trips() {
        let cart = Cart::parse(&format!("{A}:2.{B}:1"));
        assert_eq!(cart.lines(), [(id(A), 2), (id(B), 1)]);
        assert_eq!(Cart::parse(&cart.value()), cart);
    }

    #[test]
    fn garbage_is_dropped_never_an_error() {
        for value in [
            "",
            "x",
            "::",
            ".",
            "nope:1",
            &format!("{A}:-1"),
            &format!("{A}:0"),
            &format!("{A}:x"),
            A,
        ] {
            assert!(Cart::parse(value).is_empty(), "{value:?}");
        }
        let mixed = Cart::parse(&format!("junk.{A}:3.{B}:zz"));
        assert_eq!(mixed.lines(), [(id(A), 3)]);
    }

    #[test]
    fn a_product_named_twice_is_merged_and_quantities_are_clamped() {
        let cart = Cart::parse(&format!("{A}:60.{A}:60.{B}:4000000000"));
        assert_eq!(cart.lines(), [(id(A), MAX_QUANTITY), (id(B), MAX_QUANTITY)]);
    }

    #[test]
    fn a_cart_holds_at_most_fifty_lines() {
        let value: Vec<String> = (0..60).map(|n| format!("{}:1", Uuid::from_u128(n + 1))).collect();
        assert_eq!(Cart::parse(&value.join(".")).lines().len(), MAX_LINES);
    }

    #[test]
    fn set_and_remove_change_one_line() {
        let mut cart = Cart::parse(&format!("{A}:2.{B}:1"));
        cart.set(id(A), 5);
        cart.set(id(B), 0);
        assert_eq!(cart.lines(), [(id(A), 5)]);
        cart.remove(id(A));
        assert!(cart.is_empty());
        assert!(
            cart.set_cookie(true)
                .to_str()
                .expect("text")
                .contains("Max-Age=0")
        );
    }
}
