//! The command line: check, migrate, configuration layering and errors.

use std::process::Output;

use crate::helpers::*;

fn run(data_dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = base_command(data_dir);
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run outgrow")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn check_passes_on_a_fresh_machine() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(&dir.path().join("data"), &["check"], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let report = text(&output);
    for line in [
        "configuration: ok",
        "data dir: ok",
        "jwt keys: ok",
        "database: ok",
        "object storage: ok",
        "mail: ok",
        "all checks passed",
    ] {
        assert!(report.contains(line), "{line} missing:\n{report}");
    }
}

#[test]
fn check_fails_when_a_backend_is_unreachable() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(
        &dir.path().join("data"),
        &["check"],
        &[(
            "OUTGROW_DATABASE_URL",
            "sqlite:///proc/outgrow-cannot-write-here/db.sqlite3",
        )],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("database: FAILED"), "{}", text(&output));
}

#[test]
fn an_unknown_setting_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(
        &dir.path().join("data"),
        &["check"],
        &[("OUTGROW_LISTN", "127.0.0.1:1")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("OUTGROW_LISTN"), "{}", text(&output));
}

#[test]
fn an_invalid_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("dir");
    for (key, value, named) in [
        ("OUTGROW_LISTEN", "not-an-address", "listen"),
        ("OUTGROW_REQUEST_TIMEOUT", "forever", "request_timeout"),
        ("OUTGROW_RATE_LIMIT_AUTH", "lots", "rate_limit_auth"),
        ("OUTGROW_LOG_FORMAT", "xml", "log_format"),
        ("OUTGROW_TRUSTED_PROXIES", "10.0.0.0/33", "trusted_proxies"),
    ] {
        let output = run(&dir.path().join("data"), &["check"], &[(key, value)]);
        assert_eq!(output.status.code(), Some(2), "{key}: {}", text(&output));
        assert!(text(&output).contains(named), "{key}: {}", text(&output));
    }
}

#[test]
fn secrets_are_never_printed() {
    let dir = tempfile::tempdir().expect("dir");
    let secret = "super-secret-signing-key-material-0123456789";
    let outputs = [
        run(
            &dir.path().join("data"),
            &["check"],
            &[
                ("OUTGROW_JWT_KEYS", &format!("k1:{secret}")),
                ("OUTGROW_LOG_LEVEL", "trace"),
            ],
        ),
        run(
            &dir.path().join("data"),
            &["check"],
            &[("OUTGROW_JWT_KEYS", &format!("bad key:{secret}"))],
        ),
        run(
            &dir.path().join("data"),
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

#[test]
fn a_config_file_is_read_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("outgrow.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:7777\"\nlog_level = \"warn\"\n").expect("write");
    let output = run(
        &dir.path().join("data"),
        &["--config", file.to_str().expect("path"), "check"],
        &[],
    );
    assert!(
        text(&output).contains("listen 127.0.0.1:7777"),
        "{}",
        text(&output)
    );
    let overridden = run(
        &dir.path().join("data"),
        &["--config", file.to_str().expect("path"), "check"],
        &[("OUTGROW_LISTEN", "127.0.0.1:8888")],
    );
    assert!(
        text(&overridden).contains("listen 127.0.0.1:8888"),
        "{}",
        text(&overridden)
    );
    std::fs::write(&file, "lissen = \"127.0.0.1:7777\"\n").expect("write");
    let typo = run(
        &dir.path().join("data"),
        &["--config", file.to_str().expect("path"), "check"],
        &[],
    );
    assert_eq!(typo.status.code(), Some(2));
    assert!(text(&typo).contains("lissen"), "{}", text(&typo));
}

#[test]
fn migrate_applies_once_and_then_reports_nothing_to_do() {
    let dir = tempfile::tempdir().expect("dir");
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .expect("migrations")
        .count();
    let first = run(&dir.path().join("data"), &["migrate"], &[]);
    let second = run(&dir.path().join("data"), &["migrate"], &[]);
    assert!(
        first.status.success() && second.status.success(),
        "{}",
        text(&first)
    );
    assert!(
        text(&first).contains(&format!("{migrations} migration(s) applied")),
        "{}",
        text(&first)
    );
    assert!(
        text(&second).contains("0 migration(s) applied"),
        "{}",
        text(&second)
    );
}

#[test]
fn check_reports_a_missing_generated_key_without_creating_one() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let output = base_command(&data)
        .env_remove("OUTGROW_JWT_KEYS")
        .arg("check")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("generated into the data dir at the first start"),
        "{}",
        text(&output)
    );
    assert!(!data.join("jwt-keys").exists(), "check only reads");
}

#[test]
fn check_fails_when_the_mail_server_is_unreachable() {
    let dir = tempfile::tempdir().expect("dir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    // The listener is dropped here: nothing answers on that port any more.
    let output = run(
        &dir.path().join("data"),
        &["check"],
        &[("OUTGROW_SMTP_URL", &format!("smtp://127.0.0.1:{closed}"))],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("mail: FAILED"), "{}", text(&output));
}
