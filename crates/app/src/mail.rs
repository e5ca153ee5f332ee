//! E-mail: composed from templates (plain text + HTML), sent over SMTP in the scaled mode or
//! written as `.eml` files under `<data_dir>/mail` by default. Sending happens in jobs only,
//! never on the request path.

use anyhow::Context;
use lettre::{
    AsyncFileTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart, header::HeaderName, header::HeaderValue},
};
use outgrow_platform::config::Settings;
use secrecy::ExposeSecret;

pub mod session;

use session::Relay;

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// `.eml` files in a directory (the embedded default; also handy in development).
    Files(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
    /// A real SMTP server, one bounded session per e-mail.
    Smtp(Relay),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A composed e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

impl Mailer {
    /// The mailer the settings describe.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.smtp_url {
            Some(url) => {
                let ca = match &settings.smtp_ca_file {
                    Some(path) => Some(std::fs::read(path).with_context(|| {
                        format!("smtp_ca_file (OUTGROW_SMTP_CA_FILE): reading {}", path.display())
                    })?),
                    None => None,
                };
                let relay = Relay::from_url(url.expose_secret(), settings.smtp_timeout, ca.as_deref())
                    .context("smtp_url (OUTGROW_SMTP_URL), smtp_timeout or smtp_ca_file")?;
                Ok(Self::Smtp(relay))
            }
            None => {
                let dir = settings.data_dir.join("mail");
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                Ok(Self::Files(AsyncFileTransport::new(&dir), dir))
            }
        }
    }

    /// Whether mail can go out: an SMTP session opened (greeting, EHLO, STARTTLS and AUTH as
    /// configured) and closed, or a writable directory.
    pub async fn test_connection(&self) -> anyhow::Result<()> {
        match self {
            Self::Files(_, dir) => {
                let probe = dir.join(".outgrow-check");
                tokio::fs::write(&probe, b"ok")
                    .await
                    .with_context(|| format!("writing in {}", dir.display()))?;
                tokio::fs::remove_file(&probe).await.ok();
                Ok(())
            }
            Self::Smtp(relay) => relay.test_connection().await,
        }
    }

    /// For logs and `outgrow check`.
    pub fn describe(&self) -> String {
        match self {
            Self::Files(_, dir) => format!("files ({})", dir.display()),
            Self::Smtp(relay) => format!("smtp ({})", relay.describe()),
        }
    }

    /// Sends `email` from `from`, tagged with the job that sends it (receivers and tests can
    /// tell a resend from a duplicate).
    pub async fn send(&self, from: &str, email: &Email, job_id: uuid::Uuid) -> anyhow::Result<()> {
        let from: Mailbox = from
            .parse()
            .context("mail_from (OUTGROW_MAIL_FROM) is not an address")?;
        let to: Mailbox = email
            .to
            .parse()
            .with_context(|| format!("bad recipient {:?}", email.to))?;
        let mut message = Message::builder()
            .from(from)
            .to(to)
            .subject(&email.subject)
            .message_id(Some(format!("<{job_id}@outgrow>")))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .context("composing the e-mail")?;
        message.headers_mut().insert_raw(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Outgrow-Job"),
            job_id.to_string(),
        ));
        match self {
            Self::Files(transport, _) => {
                transport.send(message).await.context("writing the .eml file")?;
            }
            Self::Smtp(relay) => {
                relay.send(message.envelope(), &message.formatted()).await?;
            }
        }
        Ok(())
    }
}

/// Escapes text for HTML bodies: names are user input.
fn html_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            other => other.to_string(),
        })
        .collect()
}

/// The welcome e-mail sent after registration.
pub fn welcome(to: &str, name: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "Welcome to Outgrow".to_owned(),
        text: format!(
            "Hello {name},\n\nyour Outgrow account is ready. Sign in with this e-mail address.\n\nIf you did not create it, ignore this message.\n\n— Outgrow\n"
        ),
        html: format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Hello {},</p><p>your Outgrow account is ready. Sign in with this e-mail address.</p><p>If you did not create it, ignore this message.</p><p>— Outgrow</p></body></html>",
            html_escape(name)
        ),
    }
}

/// To the owner of an address someone tried to register again.
pub fn registration_attempt(to: &str) -> Email {
    let body = "someone tried to create an Outgrow account with this e-mail address, which already has one. If it was you, sign in instead. If it was not, you need do nothing: your account is unchanged.";
    Email {
        to: to.to_owned(),
        subject: "An attempt to register your e-mail address at Outgrow".to_owned(),
        text: format!("Hello,\n\n{body}\n\n— Outgrow\n"),
        html: format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Hello,</p><p>{body}</p><p>— Outgrow</p></body></html>"
        ),
    }
}

/// The e-mail with the link to a finished data export.
pub fn export_ready(to: &str, link: &str, expires_at: chrono::DateTime<chrono::Utc>) -> Email {
    let expires = expires_at.format("%Y-%m-%d %H:%M UTC");
    Email {
        to: to.to_owned(),
        subject: "Your Outgrow data export is ready".to_owned(),
        text: format!(
            "Hello,\n\nyour data export is ready. Download it before {expires}:\n\n{link}\n\n— Outgrow\n"
        ),
        html: format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Hello,</p><p>your data export is ready. Download it before {expires}:</p><p><a href=\"{0}\">{0}</a></p><p>— Outgrow</p></body></html>",
            html_escape(link)
        ),
    }
}

/// The confirmation of a placed order.
pub fn order_confirmation(to: &str, name: &str, order: &crate::store::orders::Order) -> Email {
    let money = |minor: i64| format!("{}.{:02} {}", minor / 100, minor % 100, order.order.currency);
    let lines: Vec<(String, String)> = order
        .items
        .iter()
        .map(|item| {
            (
                format!("{} × {}", item.quantity, item.name),
                money(item.unit_price_minor * i64::from(item.quantity)),
            )
        })
        .collect();
    let total = money(order.order.total_minor);
    let text_lines: String = lines
        .iter()
        .map(|(what, amount)| format!("  {what}: {amount}\n"))
        .collect();
    let html_lines: String = lines
        .iter()
        .map(|(what, amount)| format!("<li>{}: {}</li>", html_escape(what), html_escape(amount)))
        .collect();
    Email {
        to: to.to_owned(),
        subject: format!("Your Outgrow order {}", order.order.id),
        text: format!(
            "Hello {name},\n\nthank you for your order {}:\n\n{text_lines}\n  Total: {total}\n\n— Outgrow\n",
            order.order.id
        ),
        html: format!(
            "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Hello {},</p><p>thank you for your order {}:</p><ul>{html_lines}</ul><p><strong>Total: {}</strong></p><p>— Outgrow</p></body></html>",
            html_escape(name),
            order.order.id,
            html_escape(&total)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_html_but_kept_in_text() {
        let email = welcome("ann@example.org", "<script>alert(1)</script> & Co");
        assert!(
            email
                .html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co")
        );
        assert!(!email.html.contains("<script>"));
        assert!(email.text.contains("<script>alert(1)</script> & Co"));
    }
}
