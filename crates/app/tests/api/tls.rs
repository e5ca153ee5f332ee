//! TLS to the shared backends, as production runs them (RDS forces TLS; ElastiCache with
//! in-transit encryption speaks only TLS): PostgreSQL with `sslmode=verify-full` against the
//! test servers' private CA, and Redis over `rediss://`, each with a real server and the
//! server's certificate verified — a CA that did not sign it is refused.

use std::{process::Stdio, time::Duration};

use crate::helpers::*;

/// `?sslmode=verify-full&sslrootcert=CA` added to each PostgreSQL URL of `backend`.
fn verified_tls(backend: &[(String, String)], ca: &str) -> Vec<(String, String)> {
    let verify = |url: &str| format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    backend
        .iter()
        .map(|(key, value)| match key.as_str() {
            "OUTGROW_DATABASE_URL" | "OUTGROW_DATABASE_REPLICA_URLS" | "OUTGROW_DATABASE_SHARD_URLS" => (
                key.clone(),
                value.split(',').map(verify).collect::<Vec<_>>().join(","),
            ),
            _ => (key.clone(), value.clone()),
        })
        .collect()
}

/// Production PostgreSQL speaks TLS (RDS forces it): with `sslmode=verify-full` every pooled
/// connection — primary, replicas, shards — is encrypted and the server's certificate checked
/// against `sslrootcert`; a server whose certificate the given CA did not sign is refused.
#[tokio::test]
async fn scaled_only_database_connections_use_tls_and_verify_the_server() {
    require_scaled();
    let ca = required_env("OUTGROW_TEST_PG_CA");
    let backend = verified_tls(&isolated_scaled_backend().await, &ca);
    let app = TestApp::on_backend(&backend, &[]).await;
    let user = app.signed_in(&unique_email("tls")).await;
    let me = app.get_json_with_token("/api/v1/me", &user.access_token).await;
    assert_eq!(me["id"], user.id.as_str());

    let database = backend_setting(&app, "OUTGROW_DATABASE_URL")
        .and_then(|url| url.split('?').next())
        .and_then(|url| url.rsplit_once('/'))
        .map(|(_, name)| name.to_owned())
        .expect("database name");
    let mut observer = primary_connection(&app).await;
    let encrypted = observer
        .fetch_i64(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{database}' AND s.ssl AND a.pid <> pg_backend_pid()"
        ))
        .await;
    let plain = observer
        .fetch_i64(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{database}' AND NOT s.ssl AND a.pid <> pg_backend_pid()"
        ))
        .await;
    assert!(
        encrypted > 0,
        "the server's connections to {database} are encrypted"
    );
    assert_eq!(plain, 0, "no connection to {database} is in the clear");

    // The same server checked against a CA that did not sign its certificate: refused.
    let wrong_ca = app.data_dir.join("other-ca.pem");
    std::fs::write(&wrong_ca, include_str!("helpers/other-ca.pem")).expect("write the other CA");
    let refused = verified_tls(&backend, &wrong_ca.to_string_lossy());
    let mut check = app.command();
    for (key, value) in &refused {
        check.env(key, value);
    }
    let output = check.arg("check").output().expect("run outgrow check");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(printed.contains("FAILED"), "{printed}");
}

/// A server a test starts on a free port of 127.0.0.1, in a temp dir of its own, with the
/// certificate the test PostgreSQL servers use (signed by `OUTGROW_TEST_PG_CA`, for
/// 127.0.0.1). Killed and waited for when dropped, however the test ends.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// The test servers' CA, certificate and key.
struct TestCertificate {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl TlsServer {
    /// Spawns what `command` builds for (port, dir, certificate) and waits until it listens.
    async fn start(
        what: &str,
        command: impl FnOnce(u16, &std::path::Path, &TestCertificate) -> std::process::Command,
    ) -> Self {
        let ca = std::path::PathBuf::from(required_env("OUTGROW_TEST_PG_CA"));
        let pg_dir = ca.parent().expect("the services' PostgreSQL dir");
        let certificate = TestCertificate {
            cert: pg_dir.join("primary/server.crt"),
            key: pg_dir.join("primary/server.key"),
            ca: ca.clone(),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = command(port, dir.path(), &certificate)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{what} (scripts/test installs it): {error}"));
        let server = Self { child, port, dir };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{what} did not listen on {port}");
    }

    /// A real redis-server that speaks only TLS (`--port 0 --tls-port P`).
    async fn redis() -> Self {
        Self::start("redis-server", |port, dir, tls| {
            let mut command = std::process::Command::new("redis-server");
            command
                .args([
                    "--port",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .arg("--dir")
                .arg(dir);
            command
        })
        .await
    }

    /// scripts/smtp_sink.py speaking TLS (`starttls`: STARTTLS required before mail;
    /// `implicit`: SMTPS), storing what it receives under its dir; with `auth`
    /// (`user:password`), only for a client that authenticated so.
    async fn mail_sink(mode: &str, auth: Option<&str>) -> Self {
        Self::start("python3 with aiosmtpd", |port, dir, tls| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp_sink.py");
            let mut command = std::process::Command::new("/usr/bin/python3");
            command
                .arg(script)
                .args(["--port", &port.to_string(), "--tls", mode])
                .arg("--maildir")
                .arg(dir.join("maildir"))
                .arg("--pidfile")
                .arg(dir.join("smtp.pid"))
                .arg("--cert")
                .arg(&tls.cert)
                .arg("--key")
                .arg(&tls.key);
            if let Some(auth) = auth {
                command.args(["--auth", auth]);
            }
            command
        })
        .await
    }

    /// The messages a mail sink has stored.
    fn messages(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("maildir/new")).map_or(0, |entries| entries.count())
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sessions, rate limits and the cache over `rediss://`: the server's certificate is checked
/// against the system's CA certificates (here `SSL_CERT_FILE`, the test CA); with a CA that
/// did not sign it, `outgrow check` reports Redis as failed.
#[tokio::test]
async fn scaled_only_redis_over_tls_verifies_the_server() {
    require_scaled();
    let redis = TlsServer::redis().await;
    let ca = required_env("OUTGROW_TEST_PG_CA");
    let mut backend = isolated_scaled_backend().await;
    backend.retain(|(key, _)| !key.starts_with("OUTGROW_REDIS_CLUSTER") && key != "OUTGROW_REDIS_URL");
    backend.push((
        "OUTGROW_REDIS_URL".into(),
        format!("rediss://127.0.0.1:{}", redis.port),
    ));
    backend.push(("SSL_CERT_FILE".into(), ca.clone()));
    let app = TestApp::on_backend(&backend, &[]).await;
    let started = app
        .wait_for_log(|event| event["message"] == "Outgrow listening")
        .await;
    assert!(started.to_string().contains("sessions=redis"), "{started}");
    let user = app.signed_in(&unique_email("rediss")).await;
    let me = app.get_json_with_token("/api/v1/me", &user.access_token).await;
    assert_eq!(me["id"], user.id.as_str());
    check_passes(&app, "redis");
    check_refuses_the_other_ca(&app, "SSL_CERT_FILE", "redis");
}

/// `outgrow check` on `app` reports `component` as ok.
fn check_passes(app: &TestApp, component: &str) {
    let checked = app.run_cli(&["check"]);
    assert!(
        checked
            .lines()
            .any(|line| line.starts_with(component) && line.contains(": ok")),
        "{checked}"
    );
}

/// `outgrow check` on `app` with `variable` naming a CA that did not sign the test servers'
/// certificates: it exits 1 and reports `component` as FAILED.
fn check_refuses_the_other_ca(app: &TestApp, variable: &str, component: &str) {
    let wrong_ca = app.data_dir.join("other-ca.pem");
    std::fs::write(&wrong_ca, include_str!("helpers/other-ca.pem")).expect("write the other CA");
    let output = app
        .command()
        .env(variable, &wrong_ca)
        .arg("check")
        .output()
        .expect("run outgrow check");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed
            .lines()
            .any(|line| line.starts_with(component) && line.contains("FAILED")),
        "{printed}"
    );
}

/// E-mail to a relay over STARTTLS (`smtp://…?tls=required`) and over SMTPS (`smtps://`),
/// through Outgrow's bounded SMTP session: the relay's certificate is checked against the
/// public roots plus `smtp_ca_file`; with another CA, `outgrow check` reports the mailer as
/// failed and nothing is sent.
#[tokio::test]
async fn scaled_only_mail_goes_to_the_relay_over_starttls_and_smtps_verified() {
    require_scaled();
    let ca = required_env("OUTGROW_TEST_PG_CA");
    for (mode, url) in [
        ("starttls", "smtp://127.0.0.1:{port}?tls=required"),
        ("implicit", "smtps://127.0.0.1:{port}"),
    ] {
        let sink = TlsServer::mail_sink(mode, None).await;
        let url = url.replace("{port}", &sink.port.to_string());
        // In the backend, so that `outgrow check` (app.command) gets the relay too.
        let mut backend = isolated_scaled_backend().await;
        backend.push(("OUTGROW_SMTP_URL".into(), url.clone()));
        backend.push(("OUTGROW_SMTP_CA_FILE".into(), ca.clone()));
        let app = TestApp::on_backend(&backend, &[]).await;
        check_passes(&app, "mail");
        assert_eq!(
            app.register(&unique_email(mode), PASSWORD, "Ann").await.status(),
            202
        );
        wait_until(
            &format!("{mode}: the welcome e-mail"),
            Duration::from_secs(10),
            || sink.messages() == 1,
        )
        .await;

        check_refuses_the_other_ca(&app, "OUTGROW_SMTP_CA_FILE", "mail");
        assert_eq!(sink.messages(), 1, "{mode}: nothing more was sent");
    }
}

/// A relay that requires AUTH (over STARTTLS, as on a submission port, and inside SMTPS): the
/// credentials of `smtp_url` (percent-decoded) open the session and the mail goes out; with a
/// wrong password the relay's 535 fails `outgrow check`, which never prints the password.
#[tokio::test]
async fn scaled_only_mail_authenticates_to_a_relay_that_requires_it() {
    require_scaled();
    let ca = required_env("OUTGROW_TEST_PG_CA");
    // AUTH after STARTTLS (submission, port 587) and inside SMTPS (port 465).
    for (mode, scheme, query) in [("starttls", "smtp", "?tls=required"), ("implicit", "smtps", "")] {
        let sink = TlsServer::mail_sink(mode, Some("outgrow@shop:relay pass 1")).await;
        let url = |password: &str| {
            format!(
                "{scheme}://outgrow%40shop:{password}@127.0.0.1:{}{query}",
                sink.port
            )
        };
        let mut backend = isolated_scaled_backend().await;
        backend.push(("OUTGROW_SMTP_URL".into(), url("relay%20pass%201")));
        backend.push(("OUTGROW_SMTP_CA_FILE".into(), ca.clone()));
        let app = TestApp::on_backend(&backend, &[]).await;
        check_passes(&app, "mail");
        assert_eq!(
            app.register(&unique_email("auth"), PASSWORD, "Ann")
                .await
                .status(),
            202,
            "{mode}"
        );
        wait_until("the welcome e-mail", Duration::from_secs(10), || {
            sink.messages() == 1
        })
        .await;

        let output = app
            .command()
            .env("OUTGROW_SMTP_URL", url("wrong%20pass%20word"))
            .arg("check")
            .output()
            .expect("run outgrow check");
        let printed = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{mode}: {printed}");
        let mail = printed
            .lines()
            .find(|line| line.starts_with("mail"))
            .expect("a mail line");
        assert!(mail.contains("FAILED") && mail.contains("535"), "{mode}: {mail}");
        assert!(
            !printed.contains("wrong") && !printed.contains("relay pass"),
            "{mode}: {printed}"
        );
    }
}
