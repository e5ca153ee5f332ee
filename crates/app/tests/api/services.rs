//! Private PostgreSQL clusters, Redis servers and Redis Clusters for the tests that break them
//! on purpose (pausing replication, stopping a replica, stopping Redis or a cluster master):
//! the shared services of the scaled pass must stay healthy for every other test. Built on
//! scripts/pg-cluster, scripts/redis and scripts/redis-cluster, the scripts scripts/services
//! uses.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use sqlx::Connection;

use crate::helpers::assert_succeeded;

fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts")).join(name)
}

/// `scripts/{name} {action} {dir}`: the service scripts take their state directory first.
fn script_command(name: &str, action: &str, dir: &Path) -> Command {
    let mut command = Command::new(script(name));
    command.arg(action).arg(dir);
    command
}

/// A fresh state directory for a service of the test's own (`/tmp/outgrow-test-{kind}-…`).
fn state_dir(kind: &str) -> PathBuf {
    PathBuf::from(format!(
        "/tmp/outgrow-test-{kind}-{}",
        uuid::Uuid::new_v4().simple()
    ))
}

/// `Drop` for a service of the test's own: `scripts/{script} down {dir}`, best effort.
macro_rules! down_when_dropped {
    ($service:ty, $script:literal) => {
        impl Drop for $service {
            fn drop(&mut self) {
                let _ = script_command($script, "down", &self.dir).output();
            }
        }
    };
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a service script");
    assert_succeeded(&output, &format!("{command:?}"));
}

/// `count` consecutive free ports on 127.0.0.1, chosen below Linux's ephemeral range
/// (32768–60999): a port in that range may be taken at any moment by one of the tests' own
/// client connections, and a server then fails to bind it.
fn free_ports(count: u16) -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (rand::random::<u16>() % 5_000);
        let free = (0..count).all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports found");
}

/// A PostgreSQL primary with streaming replicas, removed when dropped.
pub struct PgCluster {
    dir: PathBuf,
    pub port: u16,
    pub replicas: u16,
}

impl PgCluster {
    pub fn up(replicas: u16) -> Self {
        // Under /tmp itself: the postgres OS user must be able to reach the directory.
        let dir = state_dir("pg");
        let port = free_ports(replicas + 1);
        run(script_command("pg-cluster", "up", &dir)
            .arg(port.to_string())
            .arg(replicas.to_string()));
        Self { dir, port, replicas }
    }

    pub fn url(&self, node: u16, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port + node)
    }

    pub fn stop_node(&self, node: &str) {
        run(script_command("pg-cluster", "stop-node", &self.dir).arg(node));
    }

    pub fn start_node(&self, node: &str) {
        run(script_command("pg-cluster", "start-node", &self.dir).arg(node));
    }

    /// Runs `sql` on node `node` (0 = primary) in `database`.
    pub async fn execute(&self, node: u16, database: &str, sql: &str) {
        let mut connection = sqlx::PgConnection::connect(&self.url(node, database))
            .await
            .expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut connection)
            .await
            .expect("execute");
    }

    /// A scalar text result of `sql` on node `node`.
    pub async fn fetch_text(&self, node: u16, database: &str, sql: &str) -> Option<String> {
        let mut connection = sqlx::PgConnection::connect(&self.url(node, database))
            .await
            .expect("connect");
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_optional(&mut connection)
            .await
            .expect("query")
    }

    /// A new database, created on the primary and waited for on every replica; returns the
    /// backend settings for a server using it (and `redis`, a `(setting, value)` pair such as
    /// [`crate::helpers::shared_redis_setting`], with a fresh prefix).
    pub async fn backend(&self, redis: (String, String)) -> (String, Vec<(String, String)>) {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.execute(0, "postgres", &format!("CREATE DATABASE \"{name}\""))
            .await;
        for replica in 1..=self.replicas {
            for attempt in 0.. {
                if sqlx::PgConnection::connect(&self.url(replica, &name))
                    .await
                    .is_ok()
                {
                    break;
                }
                assert!(attempt < 200, "the database never reached replica {replica}");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        let replicas: Vec<String> = (1..=self.replicas).map(|node| self.url(node, &name)).collect();
        let settings = vec![
            ("OUTGROW_DATABASE_URL".to_owned(), self.url(0, &name)),
            ("OUTGROW_DATABASE_REPLICA_URLS".to_owned(), replicas.join(",")),
            redis,
            ("OUTGROW_REDIS_KEY_PREFIX".to_owned(), format!("{name}:")),
        ];
        (name, settings)
    }
}

down_when_dropped!(PgCluster, "pg-cluster");

/// A Redis server of the test's own, removed when dropped.
pub struct RedisServer {
    dir: PathBuf,
    pub port: u16,
}

impl RedisServer {
    pub fn up() -> Self {
        let dir = state_dir("redis");
        let port = free_ports(1);
        run(script_command("redis", "up", &dir).arg(port.to_string()));
        Self { dir, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&self) {
        run(&mut script_command("redis", "stop", &self.dir));
    }

    pub fn start(&self) {
        run(script_command("redis", "start", &self.dir).arg(self.port.to_string()));
    }
}

down_when_dropped!(RedisServer, "redis");

/// A 3-master Redis Cluster of the test's own (scripts/redis-cluster), removed when dropped.
pub struct RedisCluster {
    dir: PathBuf,
    pub base_port: u16,
}

impl RedisCluster {
    pub fn up() -> Self {
        let dir = state_dir("redis-cluster");
        // The nodes' cluster bus listens 1,000 above each port (scripts/redis-cluster): that
        // must be free too.
        let base_port = (0..50)
            .map(|_| free_ports(3))
            .find(|base| {
                (0..3).all(|node| std::net::TcpListener::bind(("127.0.0.1", base + 1_000 + node)).is_ok())
            })
            .expect("free ports for a cluster and its bus");
        run(script_command("redis-cluster", "up", &dir).arg(base_port.to_string()));
        Self { dir, base_port }
    }

    /// The seed URLs, comma separated (`OUTGROW_REDIS_CLUSTER_URLS`).
    pub fn urls(&self) -> String {
        (0..3)
            .map(|node| format!("redis://127.0.0.1:{}", self.base_port + node))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `CLUSTER INFO`'s `cluster_state` as node `node` sees it (empty when it does not answer).
    pub fn state(&self, node: u16) -> String {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &(self.base_port + node).to_string()])
            .args(["cluster", "info"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("cluster_state:"))
            .map(|state| state.trim().to_owned())
            .unwrap_or_default()
    }

    pub fn stop_node(&self, node: u16) {
        run(script_command("redis-cluster", "stop-node", &self.dir).arg(node.to_string()));
    }

    /// Starts node `node` again and waits until every node reports `cluster_state:ok`.
    pub fn start_node(&self, node: u16) {
        run(script_command("redis-cluster", "start-node", &self.dir).arg(node.to_string()));
    }
}

down_when_dropped!(RedisCluster, "redis-cluster");

/// An SMTP server that stores what it receives in a Maildir (scripts/smtp-sink), removed
/// when dropped. With a delay, it holds each message that long before accepting it.
/// The link in an e-mail the sink caught (quoted-printable decoded): from `http://` to the next
/// blank, quote or `<`.
pub fn link_in(message: &str) -> String {
    let unfolded = message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = unfolded.find("http://").expect("a link");
    unfolded[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .expect("link")
        .to_owned()
}

pub struct SmtpSink {
    dir: PathBuf,
    pub port: u16,
}

impl SmtpSink {
    pub fn up(delay_seconds: u32) -> Self {
        Self::up_on(free_ports(1), delay_seconds)
    }

    /// On a chosen port (a port a server was already told about).
    pub fn up_on(port: u16, delay_seconds: u32) -> Self {
        let dir = state_dir("smtp");
        run(script_command("smtp-sink", "up", &dir)
            .arg(port.to_string())
            .arg(delay_seconds.to_string()));
        Self { dir, port }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The raw messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("maildir/new")) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .collect()
    }
}

down_when_dropped!(SmtpSink, "smtp-sink");

/// A port nothing listens on (for a mail server that is down).
pub fn closed_port() -> u16 {
    free_ports(1)
}

/// A TCP proxy the test controls, in front of a shared service: closing it makes the service
/// unreachable for whoever connects through it (refused connections, dropped ones), while
/// every other test keeps using the service directly.
pub struct TcpProxy {
    pub port: u16,
    closed: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("address").port();
        let (closed, mut on_close) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = on_close.changed() => return,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let mut on_close = on_close.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = on_close.changed() => {}
                    }
                });
            }
        });
        Self { port, closed }
    }

    /// Stops listening and drops every connection made through the proxy.
    pub fn close(&self) {
        let _ = self.closed.send(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.close();
    }
}

/// A bucket of its own on the scaled pass's S3 store (s3s-fs), so that what is listed there
/// belongs to one test; made, listed and deleted with curl's SigV4 signing (as scripts/s3
/// does).
pub struct S3Bucket {
    pub name: String,
}

impl S3Bucket {
    /// Creates a fresh bucket on `OUTGROW_TEST_S3_ENDPOINT`.
    pub fn create() -> Self {
        let bucket = Self {
            name: format!("t-{}", uuid::Uuid::new_v4().simple()),
        };
        let (status, body) = bucket.request("PUT", "");
        assert_eq!(status, 200, "create bucket {}: {body}", bucket.name);
        bucket
    }

    /// The settings that point a server at this bucket instead of the shared one.
    pub fn setting(&self) -> (&'static str, String) {
        ("OUTGROW_OBJECT_STORE_URL", format!("s3://{}", self.name))
    }

    /// The keys of every object in the bucket (up to 1,000).
    pub fn keys(&self) -> Vec<String> {
        let (status, body) = self.request("GET", "?list-type=2");
        assert_eq!(status, 200, "list bucket {}: {body}", self.name);
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }

    /// The keys of multipart uploads begun in the bucket and neither completed nor aborted.
    /// s3s-fs, the test store, does not implement ListMultipartUploads (501): it keeps such an
    /// upload as `.bucket-{bucket}.object-{key}.upload-{id}.metadata.json` (names in base64url)
    /// in its data directory, `s3/data` in scripts/services' state directory, read here.
    pub fn unfinished_uploads(&self) -> Vec<String> {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let state =
            std::env::var("OUTGROW_SERVICES_DIR").unwrap_or_else(|_| "/tmp/outgrow-test-services".into());
        let data = PathBuf::from(state).join("s3/data");
        let prefix = format!(".bucket-{}.object-", URL_SAFE_NO_PAD.encode(&self.name));
        std::fs::read_dir(&data)
            .unwrap_or_else(|error| panic!("the S3 store's data directory {data:?}: {error}"))
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let (key, _) = name.strip_prefix(&prefix)?.split_once(".upload-")?;
                String::from_utf8(URL_SAFE_NO_PAD.decode(key).ok()?).ok()
            })
            .collect()
    }

    fn request(&self, method: &str, query: &str) -> (u16, String) {
        let endpoint = crate::helpers::required_env("OUTGROW_TEST_S3_ENDPOINT");
        let user = format!(
            "{}:{}",
            crate::helpers::required_env("OUTGROW_TEST_S3_ACCESS_KEY_ID"),
            crate::helpers::required_env("OUTGROW_TEST_S3_SECRET_ACCESS_KEY")
        );
        let output = Command::new("curl")
            .args([
                "-s",
                "-X",
                method,
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
                &user,
            ])
            // The SHA-256 of an empty payload: s3s-fs wants the header.
            .args([
                "-H",
                "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "-w",
                "\n%{http_code}",
            ])
            .arg(format!("{endpoint}/{}{query}", self.name))
            .output()
            .expect("run curl (the scaled pass needs it, as scripts/s3 does)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Drop for S3Bucket {
    fn drop(&mut self) {
        // Best effort: only an empty bucket can go.
        let _ = self.request("DELETE", "");
    }
}
