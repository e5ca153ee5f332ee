//! Authentication primitives: password hashing, access tokens, refresh tokens and cookies.
//!
//! HTTP-free on purpose: the handlers in `http::auth` compose these, and the CLI uses the
//! password hasher to create administrators.

pub mod keys;
pub mod password;
pub mod tokens;
