//! `sqlx::migrate!` embeds the migration files at compile time, but Cargo does not know they are
//! inputs: without this, adding a migration leaves a stale binary that never applies it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
