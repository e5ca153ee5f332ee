//! Orders' lifecycles: the status of an order on its shard, and the state of its stock
//! reservation (its intent) on the primary. Both are stored and serialised as the same
//! lowercase words (the migrations' `CHECK` constraints list them).

use crate::stored::stored_words;

stored_words! {
    /// Where an order stands, on its shard.
    OrderStatus("order status") {
        /// Written and paid for (the stock is taken).
        Placed = "placed",
        /// Cancelled by its buyer (the stock went back).
        Cancelled = "cancelled",
        /// The reconciler's tombstone: the order never happened. Never shown.
        Void = "void",
    }
}

stored_words! {
    /// Where an order's stock reservation stands, on the primary.
    IntentState("intent state") {
        /// Stock taken; the order may or may not be written yet.
        Reserved = "reserved",
        /// The order exists.
        Confirmed = "confirmed",
        /// The order never happened; the stock is back.
        Released = "released",
        /// The order was cancelled; the stock is back.
        Cancelled = "cancelled",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_the_words_they_store() {
        for status in [OrderStatus::Placed, OrderStatus::Cancelled, OrderStatus::Void] {
            assert_eq!(OrderStatus::try_from(status.as_str().to_owned()), Ok(status));
        }
        for state in [
            IntentState::Reserved,
            IntentState::Confirmed,
            IntentState::Released,
            IntentState::Cancelled,
        ] {
            assert_eq!(IntentState::try_from(state.as_str().to_owned()), Ok(state));
        }
        assert!(OrderStatus::try_from("shipped".to_owned()).is_err());
    }

    #[test]
    fn states_serialise_as_their_stored_words() {
        assert_eq!(
            serde_json::to_string(&OrderStatus::Cancelled).expect("serialises"),
            r#""cancelled""#
        );
        assert_eq!(
            serde_json::from_str::<IntentState>(r#""reserved""#).expect("parses"),
            IntentState::Reserved
        );
    }
}
