//! One SMTP session per e-mail, on lettre's connection API over a stream Outgrow owns, so that
//! what the server sends is bounded in time and in bytes.
//!
//! lettre's `AsyncSmtpTransport` bounds only the TCP connect: a server that accepts and then
//! says nothing holds the send for ever, and one that streams an unterminated reply line grows
//! the reply buffer until memory runs out (its line-length check runs only once a line ends).
//! The relay's answers are untrusted input (OWASP API10), so here each session runs under
//! `smtp_timeout` and over a [`CappedStream`] that fails the session once the server has sent
//! [`MAX_SESSION_BYTES`]. The protocol itself — EHLO, STARTTLS, AUTH, MAIL/RCPT/DATA, the
//! reply parser — stays lettre's.

use std::{
    fmt, io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use anyhow::Context as _;
use lettre::{
    address::Envelope,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters},
        extension::ClientId,
    },
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        self,
        pki_types::{CertificateDer, ServerName, pem::PemObject},
    },
};

/// The most a server may send in one session, TLS handshake included. A session's replies
/// are a greeting, an EHLO list and a few status lines (lettre refuses one reply over 100 kB);
/// a certificate chain is a few kB.
pub const MAX_SESSION_BYTES: u64 = 256 * 1024;

/// Port defaults of lettre's URL grammar.
const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

/// How the session is protected, with what it needs.
#[derive(Clone)]
enum Protection {
    /// `smtp://`: plain text.
    None,
    /// `smtp://…?tls=opportunistic`: STARTTLS when the server offers it.
    StartTlsIfOffered(TlsParameters),
    /// `smtp://…?tls=required`: STARTTLS or no session.
    StartTls(TlsParameters),
    /// `smtps://`: TLS from the first byte.
    Implicit(Arc<rustls::ClientConfig>, ServerName<'static>),
}

/// An SMTP relay: where it is, how to reach it, and the bounds on a session with it.
#[derive(Clone)]
pub struct Relay {
    host: String,
    port: u16,
    protection: Protection,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Relay {
    /// The relay `url` names, in lettre's grammar: `smtp://[user:password@]host[:port][/hello]`
    /// with `?tls=required|opportunistic` for STARTTLS, or `smtps://…` for implicit TLS.
    /// `ca_pem`: certificates to trust besides the public roots.
    pub fn from_url(url: &str, timeout: Duration, ca_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).context("not a URL")?;
        let host = parsed.host_str().context("no host")?.to_owned();
        let tls = parsed
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let extra_roots = match ca_pem {
            Some(pem) => {
                let certificates = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .context("the CA file is not PEM certificates")?;
                anyhow::ensure!(!certificates.is_empty(), "the CA file holds no PEM certificate");
                certificates
            }
            None => Vec::new(),
        };
        let (protection, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (Protection::None, SMTP_PORT),
            ("smtp", Some("opportunistic")) => (
                Protection::StartTlsIfOffered(starttls_parameters(&host, &extra_roots)?),
                SUBMISSION_PORT,
            ),
            ("smtp", Some("required")) => (
                Protection::StartTls(starttls_parameters(&host, &extra_roots)?),
                SUBMISSION_PORT,
            ),
            ("smtps", None) => {
                let name = ServerName::try_from(host.clone()).context("the host is not a TLS server name")?;
                (
                    Protection::Implicit(implicit_tls_config(&extra_roots)?, name),
                    SUBMISSIONS_PORT,
                )
            }
            (scheme, tls) => anyhow::bail!(
                "scheme {scheme:?} with tls={tls:?}: use smtp://, smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://"
            ),
        };
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .map(|text| text.into_owned())
                .context("credentials are not UTF-8")
        };
        let credentials = match parsed.password() {
            Some(password) => Some(Credentials::new(decode(parsed.username())?, decode(password)?)),
            None => None,
        };
        // A password goes only over TLS that cannot be stripped: plain text, or STARTTLS "if
        // offered" (a man in the middle deletes the offer), would send it in the clear.
        anyhow::ensure!(
            credentials.is_none() || matches!(protection, Protection::StartTls(_) | Protection::Implicit(..)),
            "credentials are only sent over TLS: use smtp://…?tls=required (STARTTLS) or smtps://"
        );
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        anyhow::ensure!(!timeout.is_zero(), "smtp_timeout must be above 0");
        Ok(Self {
            port: parsed.port().unwrap_or(default_port),
            host,
            protection,
            credentials,
            hello,
            timeout,
        })
    }

    /// `host:port` and the protection, never the credentials.
    pub fn describe(&self) -> String {
        let security = match self.protection {
            Protection::None => "plain",
            Protection::StartTlsIfOffered(_) => "STARTTLS if offered",
            Protection::StartTls(_) => "STARTTLS",
            Protection::Implicit(..) => "TLS",
        };
        format!("{}:{} ({security})", self.host, self.port)
    }

    /// Sends `message` (RFC 5322 bytes) to the envelope's recipients in one session.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> anyhow::Result<()> {
        self.bounded("sending through", async {
            let mut connection = self.connect().await?;
            connection.send(envelope, message).await?;
            connection.quit().await?;
            Ok(())
        })
        .await
    }

    /// Whether a session can be opened (greeting, EHLO, STARTTLS and AUTH as configured).
    pub async fn test_connection(&self) -> anyhow::Result<()> {
        self.bounded("connecting to", async {
            let mut connection = self.connect().await?;
            connection.quit().await?;
            Ok(())
        })
        .await
    }

    /// `session` under `smtp_timeout`, its error (or the deadline's) said with the relay.
    async fn bounded(
        &self,
        doing: &str,
        session: impl Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        match tokio::time::timeout(self.timeout, session).await {
            Ok(result) => result.with_context(|| format!("{doing} {}", self.describe())),
            Err(_) => anyhow::bail!(
                "{doing} {}: the session did not finish within {} ms (smtp_timeout)",
                self.describe(),
                self.timeout.as_millis()
            ),
        }
    }

    /// A session up to the point where mail can be sent.
    async fn connect(&self) -> anyhow::Result<AsyncSmtpConnection> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .context("connecting")?;
        let _ = tcp.set_nodelay(true);
        let stream = CappedStream::new(tcp, MAX_SESSION_BYTES);
        let stream: Box<dyn AsyncTokioStream> = match &self.protection {
            Protection::Implicit(config, name) => {
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name.clone(), stream)
                    .await
                    .context("TLS handshake")?;
                Box::new(TlsSession(tls))
            }
            _ => Box::new(stream),
        };
        let mut connection = AsyncSmtpConnection::connect_with_transport(stream, &self.hello).await?;
        match &self.protection {
            Protection::StartTls(parameters) => connection.starttls(parameters.clone(), &self.hello).await?,
            Protection::StartTlsIfOffered(parameters) if connection.can_starttls() => {
                connection.starttls(parameters.clone(), &self.hello).await?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(connection)
    }
}

/// STARTTLS parameters for `host`: the public roots plus `extra_roots`.
fn starttls_parameters(host: &str, extra_roots: &[CertificateDer<'static>]) -> anyhow::Result<TlsParameters> {
    let mut builder = TlsParameters::builder(host.to_owned());
    for certificate in extra_roots {
        builder = builder.add_root_certificate(Certificate::from_der(certificate.to_vec())?);
    }
    Ok(builder.build_rustls()?)
}

/// Implicit TLS: the same roots, on the process's rustls provider.
fn implicit_tls_config(extra_roots: &[CertificateDer<'static>]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for certificate in extra_roots {
        roots
            .add(certificate.clone())
            .context("a CA certificate rustls refuses")?;
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TCP stream that fails reads once the peer has sent more than its allowance.
#[derive(Debug)]
pub struct CappedStream {
    inner: TcpStream,
    left: u64,
}

impl CappedStream {
    fn new(inner: TcpStream, allowance: u64) -> Self {
        Self {
            inner,
            left: allowance,
        }
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the server sent more than {MAX_SESSION_BYTES} bytes in one session"),
            )));
        }
        // One read may pass the allowance by at most the caller's buffer (lettre's: 8 KiB); the
        // next one fails.
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = (buf.filled().len() - before) as u64;
            self.left = self.left.saturating_sub(read);
        }
        polled
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for CappedStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }
}

/// Implicit TLS over a capped stream, as lettre's stream trait.
#[derive(Debug)]
struct TlsSession(TlsStream<CappedStream>);

impl AsyncRead for TlsSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSession {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsSession {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_url_grammar_is_lettres_with_its_default_ports() {
        for (url, shown) in [
            ("smtp://relay.example", "relay.example:25 (plain)"),
            ("smtp://relay.example:2525", "relay.example:2525 (plain)"),
            (
                "smtp://relay.example?tls=required",
                "relay.example:587 (STARTTLS)",
            ),
            (
                "smtp://relay.example?tls=opportunistic",
                "relay.example:587 (STARTTLS if offered)",
            ),
            ("smtps://relay.example", "relay.example:465 (TLS)"),
            ("smtps://127.0.0.1:1465", "127.0.0.1:1465 (TLS)"),
        ] {
            let relay = Relay::from_url(url, SECOND, None).unwrap_or_else(|error| panic!("{url}: {error:#}"));
            assert_eq!(relay.describe(), shown, "{url}");
        }
    }

    #[test]
    fn credentials_are_refused_where_they_could_travel_in_the_clear() {
        for url in [
            "smtp://user:secret@relay.example",
            "smtp://user:secret@relay.example:587",
            "smtp://user:secret@relay.example?tls=opportunistic",
        ] {
            let error = Relay::from_url(url, SECOND, None).expect_err(url);
            let shown = format!("{error:#}");
            assert!(shown.contains("only sent over TLS"), "{url}: {shown}");
            assert!(!shown.contains("secret"), "{url}: {shown}");
        }
        for url in [
            "smtp://user:secret@relay.example?tls=required",
            "smtps://user:secret@relay.example",
            "smtp://relay.example",
        ] {
            assert!(Relay::from_url(url, SECOND, None).is_ok(), "{url}");
        }
    }

    #[test]
    fn credentials_are_decoded_and_never_described() {
        let relay = Relay::from_url(
            "smtp://mail%40shop:p%40ss%20word@relay.example/outgrow.example?tls=required",
            SECOND,
            None,
        )
        .expect("a relay");
        assert_eq!(
            relay.credentials,
            Some(Credentials::new("mail@shop".into(), "p@ss word".into()))
        );
        assert_eq!(relay.hello, ClientId::Domain("outgrow.example".into()));
        let shown = format!("{} {relay:?}", relay.describe());
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss") && !shown.contains("mail@shop"),
            "{shown}"
        );
    }

    #[test]
    fn a_url_a_timeout_or_a_ca_file_that_cannot_work_is_refused() {
        for url in [
            "http://relay.example",
            "smtp://relay.example?tls=sometimes",
            "smtps://relay.example?tls=required",
            "smtp://",
        ] {
            assert!(Relay::from_url(url, SECOND, None).is_err(), "{url}");
        }
        assert!(Relay::from_url("smtp://relay.example", Duration::ZERO, None).is_err());
        let not_a_certificate = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let error = Relay::from_url("smtps://relay.example", SECOND, Some(not_a_certificate))
            .expect_err("no certificate");
        assert!(format!("{error:#}").contains("no PEM certificate"), "{error:#}");
    }
}
