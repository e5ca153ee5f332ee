//! The command line: check, migrate, configuration layering and errors. On the scaled pass
//! every command runs against the shared PostgreSQL (primary, replicas, shards), Redis and S3
//! store, through a fresh database and key prefix of its own.

use std::process::Output;

use crate::helpers::*;

/// A machine the CLI runs on: a fresh directory (the data directory is its `data`) and the
/// backend settings of this pass (none on the embedded one, a fresh
/// [`isolated_scaled_backend`] on the scaled one).
struct Machine {
    dir: tempfile::TempDir,
    backend: Vec<(String, String)>,
}

impl Machine {
    async fn fresh() -> Self {
        let backend = if scaled() {
            isolated_scaled_backend().await
        } else {
            Vec::new()
        };
        let dir = tempfile::tempdir().expect("dir");
        Self { dir, backend }
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// `outgrow <args>` on this machine, with `env` on top (an empty value unsets).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = base_command(&self.data_dir());
        command.envs(self.backend.iter().map(|(key, value)| (key, value)));
        command.args(args);
        for (key, value) in env {
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        command.output().expect("run outgrow")
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn setting<'a>(backend: &'a [(String, String)], name: &str) -> &'a str {
    backend
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

/// `host:port/database` of a `postgres://user@host:port/database` URL.
fn location(url: &str) -> &str {
    url.rsplit_once('@').map_or(url, |(_, location)| location)
}

#[tokio::test]
async fn check_passes_on_a_fresh_machine() {
    let machine = Machine::fresh().await;
    let output = machine.run(&["check"], &[]);
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    let mut expected: Vec<String> = [
        "configuration: ok",
        "data dir: ok",
        "jwt keys: ok",
        "mail: ok",
        "all checks passed",
    ]
    .map(str::to_owned)
    .to_vec();
    if scaled() {
        // Every backend the scaled pass runs on, reached for real.
        let primary = location(setting(&machine.backend, "OUTGROW_DATABASE_URL"));
        let replicas: Vec<&str> = setting(&machine.backend, "OUTGROW_DATABASE_REPLICA_URLS")
            .split(',')
            .map(location)
            .collect();
        expected.push(format!(
            "database: ok (postgres (primary {primary}; replicas [{}]))",
            replicas.join(", ")
        ));
        expected.push("shards: ok (2 shard database(s) reachable".to_owned());
        for shard in setting(&machine.backend, "OUTGROW_DATABASE_SHARD_URLS").split(',') {
            expected.push(location(shard).to_owned());
        }
        let prefix = setting(&machine.backend, "OUTGROW_REDIS_KEY_PREFIX");
        expected.push(if redis_cluster_mode() {
            "redis: ok (cluster: ".to_owned()
        } else {
            format!("redis: ok (single server reachable, keys prefixed {prefix:?})")
        });
        expected.push(format!(
            "object storage: ok (s3 (bucket {} at {}))",
            required_env("OUTGROW_TEST_S3_BUCKET"),
            required_env("OUTGROW_TEST_S3_ENDPOINT")
        ));
    } else {
        expected.push("database: ok (sqlite (".to_owned());
        expected.push("redis: ok (not configured".to_owned());
        expected.push("object storage: ok (local (".to_owned());
    }
    for line in expected {
        assert!(report.contains(&line), "{line} missing:\n{report}");
    }
}

#[tokio::test]
async fn check_fails_when_a_backend_is_unreachable_or_refuses() {
    let machine = Machine::fresh().await;
    let closed = format!("127.0.0.1:{}", crate::services::closed_port());
    let mut unreachable = vec![(
        "database",
        "OUTGROW_DATABASE_URL".to_owned(),
        if scaled() {
            format!("postgres://postgres@{closed}/postgres")
        } else {
            "sqlite:///proc/outgrow-cannot-write-here/db.sqlite3".to_owned()
        },
    )];
    if scaled() {
        let redis_url = format!("redis://{closed}");
        let (redis_key, _) = shared_redis_setting();
        unreachable.push(("redis", redis_key, redis_url));
        // Refused, not unreachable: the S3 client retries a closed port for minutes.
        unreachable.push((
            "object storage",
            "AWS_SECRET_ACCESS_KEY".to_owned(),
            "not-the-secret".to_owned(),
        ));
    }
    for (what, key, value) in unreachable {
        let output = machine.run(&["check"], &[(&key, &value)]);
        assert_eq!(output.status.code(), Some(1), "{what}: {}", text(&output));
        let report = text(&output);
        assert!(report.contains(&format!("{what}: FAILED")), "{report}");
        // Only that backend (and the shards, which live in the database on SQLite) failed.
        for failed in report.lines().filter(|line| line.contains(": FAILED")) {
            assert!(
                failed.starts_with(what) || (what == "database" && failed.starts_with("shards")),
                "{failed}\n{report}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_setting_stops_start_up_naming_it() {
    let machine = Machine::fresh().await;
    let output = machine.run(&["check"], &[("OUTGROW_LISTN", "127.0.0.1:1")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("OUTGROW_LISTN"), "{}", text(&output));
}

#[tokio::test]
async fn an_invalid_value_stops_start_up_naming_the_key() {
    let machine = Machine::fresh().await;
    for (key, value, named) in [
        ("OUTGROW_LISTEN", "not-an-address", "listen"),
        ("OUTGROW_REQUEST_TIMEOUT", "forever", "request_timeout"),
        ("OUTGROW_RATE_LIMIT_AUTH", "lots", "rate_limit_auth"),
        ("OUTGROW_LOG_FORMAT", "xml", "log_format"),
        ("OUTGROW_TRUSTED_PROXIES", "10.0.0.0/33", "trusted_proxies"),
    ] {
        let output = machine.run(&["check"], &[(key, value)]);
        assert_eq!(output.status.code(), Some(2), "{key}: {}", text(&output));
        assert!(text(&output).contains(named), "{key}: {}", text(&output));
    }
}

#[tokio::test]
async fn secrets_are_never_printed() {
    let machine = Machine::fresh().await;
    let secret = "super-secret-signing-key-material-0123456789";
    let outputs = [
        machine.run(
            &["check"],
            &[
                ("OUTGROW_JWT_KEYS", &format!("k1:{secret}")),
                ("OUTGROW_LOG_LEVEL", "trace"),
            ],
        ),
        machine.run(&["check"], &[("OUTGROW_JWT_KEYS", &format!("bad key:{secret}"))]),
        machine.run(
            &["check"],
            &[
                ("OUTGROW_JWT_KEYS", &format!("k1:{secret}")),
                ("OUTGROW_LISTEN", "bad"),
            ],
        ),
    ];
    for output in outputs {
        assert!(!text(&output).contains(secret), "{}", text(&output));
    }
}

#[tokio::test]
async fn a_config_file_is_read_and_the_environment_overrides_it() {
    let machine = Machine::fresh().await;
    let file = machine.dir.path().join("outgrow.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:7777\"\nlog_level = \"warn\"\n").expect("write");
    let output = machine.run(&["--config", file.to_str().expect("path"), "check"], &[]);
    assert!(
        text(&output).contains("listen 127.0.0.1:7777"),
        "{}",
        text(&output)
    );
    let overridden = machine.run(
        &["--config", file.to_str().expect("path"), "check"],
        &[("OUTGROW_LISTEN", "127.0.0.1:8888")],
    );
    assert!(
        text(&overridden).contains("listen 127.0.0.1:8888"),
        "{}",
        text(&overridden)
    );
    std::fs::write(&file, "lissen = \"127.0.0.1:7777\"\n").expect("write");
    let typo = machine.run(&["--config", file.to_str().expect("path"), "check"], &[]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(text(&typo).contains("lissen"), "{}", text(&typo));
}

#[tokio::test]
async fn migrate_applies_once_and_then_reports_nothing_to_do() {
    let machine = Machine::fresh().await;
    let folder = if scaled() { "postgres" } else { "sqlite" };
    let migrations = std::fs::read_dir(format!("{}/migrations/{folder}", env!("CARGO_MANIFEST_DIR")))
        .expect("migrations")
        .count();
    let first = machine.run(&["migrate"], &[]);
    let second = machine.run(&["migrate"], &[]);
    assert!(
        first.status.success() && second.status.success(),
        "{}",
        text(&first)
    );
    let database = if scaled() { "postgres (primary" } else { "sqlite (" };
    let first = text(&first);
    assert!(first.starts_with(database), "{first}");
    assert!(
        first.contains(&format!("{migrations} migration(s) applied, schema up to date")),
        "{first}"
    );
    assert!(
        text(&second).contains("0 migration(s) applied, schema up to date"),
        "{}",
        text(&second)
    );
}

#[tokio::test]
async fn check_reports_a_missing_generated_key_without_creating_one() {
    let machine = Machine::fresh().await;
    let output = machine.run(&["check"], &[("OUTGROW_JWT_KEYS", "")]);
    if scaled() {
        // Instances sharing PostgreSQL must share their keys: no generated key there.
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(text(&output).contains("OUTGROW_JWT_KEYS"), "{}", text(&output));
    } else {
        assert!(output.status.success(), "{}", text(&output));
        assert!(
            text(&output).contains("generated into the data dir at the first start"),
            "{}",
            text(&output)
        );
    }
    assert!(!machine.data_dir().join("jwt-keys").exists(), "check only reads");
}

#[tokio::test]
async fn check_fails_when_the_mail_server_is_unreachable() {
    let machine = Machine::fresh().await;
    let closed = crate::services::closed_port();
    let output = machine.run(
        &["check"],
        &[("OUTGROW_SMTP_URL", &format!("smtp://127.0.0.1:{closed}"))],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("mail: FAILED"), "{}", text(&output));
}
