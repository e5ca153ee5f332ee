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

/// A real redis-server that speaks only TLS (`--port 0 --tls-port P`), with the certificate
/// the test PostgreSQL servers use (signed by `OUTGROW_TEST_PG_CA`, for 127.0.0.1). Killed
/// when dropped.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    async fn start() -> Self {
        let ca = required_env("OUTGROW_TEST_PG_CA");
        let pg_dir = std::path::Path::new(&ca)
            .parent()
            .expect("the services' PostgreSQL dir");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("redis-server")
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
            .arg(pg_dir.join("primary/server.crt"))
            .arg("--tls-key-file")
            .arg(pg_dir.join("primary/server.key"))
            .arg("--tls-ca-cert-file")
            .arg(&ca)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        // Held by the guard from here on: killed and waited for however the test ends.
        let server = Self {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server with TLS did not listen on {port}");
    }
}

impl Drop for TlsRedis {
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
    let redis = TlsRedis::start().await;
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
    let checked = app.run_cli(&["check"]);
    assert!(
        checked
            .lines()
            .any(|line| line.starts_with("redis") && line.contains(": ok")),
        "{checked}"
    );

    let wrong_ca = app.data_dir.join("other-ca.pem");
    std::fs::write(&wrong_ca, include_str!("helpers/other-ca.pem")).expect("write the other CA");
    let output = app
        .command()
        .env("SSL_CERT_FILE", &wrong_ca)
        .arg("check")
        .output()
        .expect("run outgrow check");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed
            .lines()
            .any(|line| line.starts_with("redis") && line.contains("FAILED")),
        "{printed}"
    );
}
