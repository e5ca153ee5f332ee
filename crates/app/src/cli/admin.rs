//! `outgrow admin`: creating administrators and promoting accounts, which the HTTP API never
//! does.

use std::{io::BufRead, process::ExitCode};

use anyhow::{Context, bail};
use chrono::Utc;
use outgrow_domain::{Email, Password, Role, UserName};
use outgrow_platform::config::Settings;

use super::AdminCommand;
use crate::{auth::password::PasswordHasher, db::Database};

/// `outgrow admin create|promote`.
pub(super) async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let db = Database::open(settings).await?;
    db.migrate().await?;
    let users = db.users();
    match command {
        AdminCommand::Create { email, name } => {
            let email = Email::parse(&email).map_err(|error| anyhow::anyhow!("--email: {error}"))?;
            let name = UserName::parse(&name).map_err(|error| anyhow::anyhow!("--name: {error}"))?;
            let password = read_admin_password()?;
            let password = Password::parse(&password, Some(&email))
                .map_err(|error| anyhow::anyhow!("password: {error}"))?;
            let hasher = PasswordHasher::new(1).await?;
            let account = hasher.new_account(email, name, password, Role::Admin).await?;
            let user = users.create(account, &[]).await.map_err(|error| match error {
                crate::repo::StoreError::Conflict(_) => {
                    anyhow::anyhow!(
                        "an account with this e-mail exists; use `outgrow admin promote --email …`"
                    )
                }
                other => other.into(),
            })?;
            println!("created admin {} ({})", user.email, user.id);
        }
        AdminCommand::Promote { email } => {
            let email = Email::parse(&email).map_err(|error| anyhow::anyhow!("--email: {error}"))?;
            let Some(user) = users.set_role(&email, Role::Admin, Utc::now()).await? else {
                bail!("no account with e-mail {email}");
            };
            // Running servers cache user records: with Redis, tell them all to drop this one.
            if let Some(redis) = outgrow_platform::redis_client::RedisClient::from_settings(settings)? {
                outgrow_platform::cache::Cache::tiered(1, redis, settings.cache_local_ttl)
                    .invalidate(crate::caches::USERS, &user.id.to_string())
                    .await;
            }
            println!(
                "{} ({}) is now an admin; it takes effect at the next sign-in",
                user.email, user.id
            );
        }
    }
    db.close().await;
    Ok(ExitCode::SUCCESS)
}

fn read_admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("OUTGROW_ADMIN_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set OUTGROW_ADMIN_PASSWORD or pipe it on standard input");
    }
    Ok(password)
}
