//! Test plumbing, in one place: spawning the server, talking to it, accounts, waiting for
//! conditions, and reaching the databases and fixtures behind it.

mod accounts;
mod backends;
mod browser;
mod databases;
mod polling;
mod requests;
mod spawning;
mod store;

pub use accounts::*;
pub use backends::*;
pub use browser::*;
pub use databases::*;
pub use polling::*;
pub use requests::*;
pub use spawning::*;
pub use store::*;
