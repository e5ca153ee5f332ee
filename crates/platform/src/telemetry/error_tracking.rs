//! Error tracking: panics and server errors sent to Sentry (or a Sentry-compatible receiver
//! such as GlitchTip) when `sentry_dsn` (`OUTGROW_SENTRY_DSN`) is set. Unset, no client is
//! created and the request path pays one relaxed atomic load.
//!
//! What an event carries: the panic message and backtrace, or the status of a 5xx answer;
//! the tags `request_id`, `route` (the template, never the raw path), `method` and `status`;
//! the release (`outgrow@<version>`) and environment. What it never carries: headers, cookies,
//! query strings, bodies, user ids, addresses (`send_default_pii` off; no request data is
//! attached; breadcrumbs are dropped, since log lines may hold personal fields). Anything that
//! looks like a token or an e-mail address, and every configured secret, is redacted from the
//! text of an event before it leaves the process ([`Scrubber`]).

use std::{
    borrow::Cow,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use secrecy::ExposeSecret;
use sentry::protocol::{Event, Level};

use crate::config::Settings;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Keeps the Sentry client alive; dropping it (at the end of `main`) sends what is queued,
/// waiting at most two seconds.
#[must_use = "events still queued are lost when the guard is dropped"]
pub struct ErrorTracking {
    guard: Option<sentry::ClientInitGuard>,
}

impl std::fmt::Debug for ErrorTracking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorTracking")
            .field("enabled", &self.guard.is_some())
            .finish()
    }
}

impl ErrorTracking {
    /// Error tracking not started (for commands that do not report).
    pub fn off() -> Self {
        Self { guard: None }
    }

    /// Sends the queued events now, waiting at most `timeout`; true when all were sent.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.guard.as_ref().is_none_or(|guard| guard.flush(Some(timeout)))
    }
}

/// The release events are tagged with: the crate's version, plus the commit when the build
/// was given one (`OUTGROW_BUILD_COMMIT` at compile time, as the Dockerfile's build does).
pub fn release() -> String {
    match option_env!("OUTGROW_BUILD_COMMIT") {
        Some(commit) if !commit.is_empty() => {
            format!("outgrow@{}+{commit}", env!("CARGO_PKG_VERSION"))
        }
        _ => format!("outgrow@{}", env!("CARGO_PKG_VERSION")),
    }
}

/// Starts error tracking when `sentry_dsn` is set (an invalid DSN is a configuration error);
/// does nothing otherwise. Installs the panic hook that reports panics (it calls the
/// previous hook too, so panics are still logged).
pub fn init(settings: &Settings) -> anyhow::Result<ErrorTracking> {
    let Some(dsn) = &settings.sentry_dsn else {
        return Ok(ErrorTracking { guard: None });
    };
    let dsn: sentry::types::Dsn = dsn
        .expose_secret()
        .parse()
        .map_err(|error| anyhow::anyhow!("{error}"))
        .context("invalid sentry_dsn (OUTGROW_SENTRY_DSN)")?;
    let scrubber = Arc::new(Scrubber::new(secrets_of(settings)));
    // The options struct is non-exhaustive: set the fields on its defaults.
    let mut options = sentry::ClientOptions::new().before_send(move |event| Some(scrubber.scrub(event)));
    options.dsn = Some(dsn);
    options.release = Some(release().into());
    options.environment = Some(settings.sentry_environment.clone().into());
    options.send_default_pii = false;
    // Stack traces on panics only (the panic integration adds them); a 5xx event's stack
    // would be the middleware's, which says nothing.
    options.attach_stacktrace = false;
    options.auto_session_tracking = false;
    options.max_breadcrumbs = 0;
    options.shutdown_timeout = Duration::from_secs(2);
    let guard = sentry::init(options);
    ENABLED.store(true, Ordering::Relaxed);
    Ok(ErrorTracking { guard: Some(guard) })
}

/// Whether error tracking is on.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A hub for one request, its scope tagged with the request's id, route and method, so that
/// a panic while serving it (reported by the panic hook through the current hub) and a 5xx
/// answer carry them. `None` when error tracking is off.
pub fn request_hub(request_id: &[u8], method: &'static str, route: &'static str) -> Option<Arc<sentry::Hub>> {
    if !enabled() {
        return None;
    }
    let request_id = String::from_utf8_lossy(request_id);
    let hub = Arc::new(sentry::Hub::new_from_top(sentry::Hub::main()));
    hub.configure_scope(|scope| {
        scope.set_tag("request_id", &request_id);
        scope.set_tag("route", route);
        scope.set_tag("method", method);
    });
    Some(hub)
}

/// Reports a server error answer (5xx other than 503, which means overload, draining or a
/// backend outage: the alerts cover those) through the request's hub.
pub fn report_server_error(hub: &sentry::Hub, method: &str, route: &str, status: u16) {
    let mut event = Event {
        level: Level::Error,
        message: Some(format!("{status} answered to {method} {route}")),
        logger: Some("outgrow.http".into()),
        ..Default::default()
    };
    event.tags.insert("status".into(), status.to_string());
    hub.capture_event(event);
}

/// Whether an answer with this status is reported.
pub fn is_reported_status(status: u16) -> bool {
    (500..600).contains(&status) && status != 503
}

/// The configured secrets, as the strings that could appear in a message: each whole value,
/// the password of each URL, and each JWT key's secret.
fn secrets_of(settings: &Settings) -> Vec<String> {
    let mut urls: Vec<&secrecy::SecretString> = Vec::new();
    urls.extend(settings.database_url.iter());
    urls.extend(settings.database_replica_urls.iter());
    urls.extend(settings.database_shard_urls.iter());
    urls.extend(settings.redis_url.iter());
    urls.extend(settings.redis_cluster_urls.iter());
    urls.extend(settings.smtp_url.iter());
    let mut secrets = Vec::new();
    for url in urls {
        let url = url.expose_secret();
        secrets.push(url.to_owned());
        if let Some(password) = url_password(url) {
            secrets.push(password.to_owned());
        }
    }
    if let Some(keys) = &settings.jwt_keys {
        for pair in keys.expose_secret().split(',') {
            secrets.push(pair.trim().to_owned());
            if let Some((_, secret)) = pair.split_once(':') {
                secrets.push(secret.trim().to_owned());
            }
        }
    }
    // Short strings would redact ordinary words; secrets are long.
    secrets.retain(|secret| secret.len() >= 8);
    // Longest first: a URL is redacted whole before its password alone is looked for.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets.dedup();
    secrets
}

/// The password of `scheme://user:password@host…`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split('/').next()?.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

const REDACTED: &str = "[redacted]";

/// The tags Outgrow sets itself, from values it generated: left as they are (a request id is
/// token-shaped, and is the one thing an event must keep to find the request's log lines).
const OWN_TAGS: &[&str] = &["request_id", "route", "method", "status"];

/// Removes secrets and personal data from the text of an event: the message, exception
/// values, tags and extra values. Redacts configured secrets, JWT-shaped strings, `Bearer`
/// credentials, e-mail addresses, and URL passwords.
#[derive(Debug, Default)]
pub struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    /// A scrubber that also redacts these literal values.
    pub fn new(secrets: Vec<String>) -> Self {
        Self { secrets }
    }

    /// The event, scrubbed; request data and the user are dropped whole.
    pub fn scrub(&self, mut event: Event<'static>) -> Event<'static> {
        event.request = None;
        event.user = None;
        event.breadcrumbs = Default::default();
        if let Some(message) = event.message.take() {
            event.message = Some(self.text(&message).into_owned());
        }
        if let Some(logentry) = event.logentry.as_mut() {
            logentry.message = self.text(&logentry.message).into_owned();
        }
        for exception in event.exception.values.iter_mut() {
            if let Some(value) = exception.value.take() {
                exception.value = Some(self.text(&value).into_owned());
            }
        }
        for (key, value) in event.tags.iter_mut() {
            if !OWN_TAGS.contains(&key.as_str()) {
                *value = self.text(value).into_owned();
            }
        }
        for value in event.extra.values_mut() {
            if let Some(text) = value.as_str() {
                *value = self.text(text).into_owned().into();
            }
        }
        event
    }

    /// `text` with every secret and personal datum replaced by `[redacted]`.
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        if out.split(is_separator).any(is_sensitive_word) || out.contains("Bearer ") {
            out = Cow::Owned(redact_words(&out));
        }
        out
    }
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '"' | '\'' | ',' | ';' | '(' | ')' | '<' | '>' | '[' | ']' | '{' | '}' | '='
        )
}

/// A JWT (three base64url parts, the first a JSON header: `eyJ`), an e-mail address, a URL
/// with a password, or an opaque token-looking string (32+ characters of base64url).
fn is_sensitive_word(word: &str) -> bool {
    let jwt = word.starts_with("eyJ") && word.matches('.').count() == 2;
    let email = word
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !word.contains("://"));
    let url_password = url_password(word).is_some();
    let token = word.len() >= 32
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/'))
        && word.chars().any(|c| c.is_ascii_digit())
        && word.chars().any(|c| c.is_ascii_alphabetic());
    jwt || email || url_password || token
}

/// Rewrites `text` word by word, keeping separators, redacting sensitive words and the word
/// after `Bearer`.
fn redact_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let mut after_bearer = false;
    let flush = |word: &mut String, out: &mut String, after_bearer: &mut bool| {
        if word.is_empty() {
            return;
        }
        if *after_bearer || is_sensitive_word(word) {
            out.push_str(REDACTED);
            *after_bearer = false;
        } else {
            *after_bearer = word.eq_ignore_ascii_case("bearer");
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_separator(c) {
            flush(&mut word, &mut out, &mut after_bearer);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out, &mut after_bearer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_addresses_and_configured_secrets_are_redacted() {
        let scrubber = Scrubber::new(vec![
            "postgres://app:hunter2hunter2@db/outgrow".into(),
            "0123456789abcdef0123456789abcdef".into(),
        ]);
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let text = format!(
            "failed for alice@example.com with Bearer abc.def and {jwt}; \
             db postgres://app:hunter2hunter2@db/outgrow key 0123456789abcdef0123456789abcdef \
             redis redis://:s3cretpass@cache:6379 session 8f14e45fceea167a5a36dedd4bea2543aa"
        );
        let scrubbed = scrubber.text(&text);
        for leaked in [
            "alice@example.com",
            "abc.def",
            jwt,
            "hunter2hunter2",
            "0123456789abcdef0123456789abcdef",
            "s3cretpass",
            "8f14e45fceea167a5a36dedd4bea2543aa",
        ] {
            assert!(!scrubbed.contains(leaked), "{leaked} leaked: {scrubbed}");
        }
        assert!(scrubbed.starts_with("failed for [redacted] with Bearer [redacted] and [redacted];"));
    }

    #[test]
    fn ordinary_messages_pass_unchanged_and_unallocated() {
        let scrubber = Scrubber::new(vec!["a-long-secret-value".into()]);
        let text = "500 answered to GET /api/v1/orders/{id}: called `Option::unwrap()` on a `None` value";
        assert!(matches!(scrubber.text(text), Cow::Borrowed(_)));
    }

    #[test]
    fn request_data_and_the_user_are_dropped_from_events() {
        let event = Event {
            message: Some("for bob@example.org".into()),
            request: Some(Default::default()),
            user: Some(Default::default()),
            ..Default::default()
        };
        let event = Scrubber::default().scrub(event);
        assert!(event.request.is_none() && event.user.is_none());
        assert_eq!(event.message.as_deref(), Some("for [redacted]"));
    }

    #[test]
    fn secrets_are_read_from_every_url_and_key() {
        let settings = Settings {
            database_url: Some("postgres://u:primary-password@p/db".to_owned().into()),
            redis_url: Some("redis://:redis-password@r:6379".to_owned().into()),
            jwt_keys: Some(
                "k1:first-secret-key-of-32-bytes-long!,k2:second-secret-key-32-bytes-long"
                    .to_owned()
                    .into(),
            ),
            ..Settings::default()
        };
        let secrets = secrets_of(&settings);
        for wanted in [
            "primary-password",
            "redis-password",
            "first-secret-key-of-32-bytes-long!",
            "second-secret-key-32-bytes-long",
        ] {
            assert!(
                secrets.iter().any(|s| s == wanted),
                "{wanted} missing from {secrets:?}"
            );
        }
        assert!(secrets.windows(2).all(|pair| pair[0].len() >= pair[1].len()));
    }

    #[test]
    fn only_server_errors_other_than_503_are_reported() {
        assert!(is_reported_status(500) && is_reported_status(502) && is_reported_status(504));
        assert!(!is_reported_status(503) && !is_reported_status(404) && !is_reported_status(200));
    }

    #[test]
    fn without_a_dsn_nothing_is_started() {
        let tracking = init(&Settings::default()).expect("no DSN is fine");
        assert!(tracking.guard.is_none() && !enabled());
    }

    #[test]
    fn an_invalid_dsn_is_a_configuration_error() {
        let settings = Settings {
            sentry_dsn: Some("not a dsn".to_owned().into()),
            ..Settings::default()
        };
        let error = init(&settings).expect_err("invalid DSN").to_string();
        assert!(error.contains("OUTGROW_SENTRY_DSN"), "{error}");
    }
}
