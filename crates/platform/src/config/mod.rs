//! Configuration: embedded defaults → optional `outgrow.toml` → `OUTGROW_*` environment.
//!
//! Keys are flat and their names are a public contract (see the README): the TOML key
//! `database_url` is the environment variable `OUTGROW_DATABASE_URL`. Everything is validated
//! once, at boot; an unknown key or an invalid value stops start-up with a message naming the
//! key. Secrets are wrapped in [`SecretString`](secrecy::SecretString) so that printing the settings never shows them.

mod load;
mod policies;
mod settings;
#[cfg(test)]
mod tests;
mod validate;

pub use policies::{LogFormat, RatePolicySetting, RedisFailureMode, SessionStoreFailureMode};
pub use settings::Settings;

/// The prefix of every environment variable that configures Outgrow.
pub const ENV_PREFIX: &str = "OUTGROW_";
