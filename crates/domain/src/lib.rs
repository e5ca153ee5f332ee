//! Outgrow's domain: pure types and the rules they enforce, with no IO.
//!
//! Everything that crosses the HTTP boundary is parsed into one of these types first
//! ("parse, don't validate"), so the code behind the boundary never sees unchecked input.
//! Each parser returns a [`ValidationError`] naming what is wrong in words a user can act on.

mod email;
mod media;
mod money;
mod order;
mod password;
mod product;
mod stored;
mod text;
mod user;

pub use email::Email;
pub use media::{ExportId, ExportStatus, UploadId, UploadStatus};
pub use money::{Currency, MAX_AMOUNT_MINOR, Money};
pub use order::{IntentState, OrderStatus};
pub use password::Password;
pub use product::{
    MAX_DESCRIPTION_CHARS, MAX_PRODUCT_NAME_CHARS, MAX_SEARCH_CHARS, MAX_STOCK, ProductDescription,
    ProductName, SearchText, Stock,
};
pub use user::{Role, UserId, UserName};

/// Why a value was refused at the boundary; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

impl ValidationError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
