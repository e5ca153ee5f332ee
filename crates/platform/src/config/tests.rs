//! Loading the settings from every layer, and what each refuses.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use secrecy::ExposeSecret;

use super::{RatePolicySetting, RedisFailureMode, SessionStoreFailureMode, Settings, load::known_keys};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An `outgrow.toml` holding `contents`, in a directory of its own named after `test`.
fn config_file(test: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("outgrow.toml");
    std::fs::write(&file, contents).expect("write");
    file
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let settings = Settings::load_from(None, env(&[])).expect("defaults are valid");
    assert_eq!(settings.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.access_token_ttl, Duration::from_secs(900));
}

#[test]
fn environment_overrides_defaults() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("OUTGROW_LISTEN", "0.0.0.0:9000"),
            ("OUTGROW_ACCESS_TOKEN_TTL", "5m"),
            ("OUTGROW_TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1/32"),
            ("OUTGROW_RATE_LIMIT_AUTH", "5/10s"),
            ("OUTGROW_JWT_KEYS", "k1:0123456789abcdef0123456789abcdef"),
            ("PATH", "/usr/bin"),
        ]),
    )
    .expect("valid");
    assert_eq!(settings.listen.port(), 9000);
    assert_eq!(settings.access_token_ttl, Duration::from_secs(300));
    assert_eq!(settings.trusted_proxies.len(), 2);
    assert_eq!(
        settings.rate_limit_auth,
        RatePolicySetting::new(5, Duration::from_secs(10))
    );
    assert!(settings.jwt_keys.expect("set").expose_secret().starts_with("k1:"));
}

#[test]
fn a_file_sets_values_and_the_environment_wins_over_it() {
    let file = config_file(
        "outgrow-config",
        "listen = \"127.0.0.1:7000\"\nlog_level = \"debug\"\n",
    );
    let settings = Settings::load_from(Some(file), env(&[("OUTGROW_LOG_LEVEL", "warn")])).expect("valid");
    assert_eq!(settings.listen.port(), 7000);
    assert_eq!(settings.log_level, "warn");
}

#[test]
fn an_unknown_environment_variable_is_an_error_naming_it() {
    let error = Settings::load_from(None, env(&[("OUTGROW_LISTN", "x")])).expect_err("typo");
    assert!(error.to_string().contains("OUTGROW_LISTN"), "{error}");
}

#[test]
fn the_test_harness_variables_are_not_settings() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("OUTGROW_TEST_PG_PRIMARY", "postgres://x"),
            ("OUTGROW_SERVICES_DIR", "/tmp/x"),
        ]),
    );
    assert!(settings.is_ok());
}

#[test]
fn an_unknown_file_key_is_an_error_naming_it() {
    let file = config_file("outgrow-config-unknown", "lissen = \"127.0.0.1:7000\"\n");
    let error = Settings::load_from(Some(file), env(&[])).expect_err("typo");
    assert!(error.to_string().contains("lissen"), "{error}");
}

#[test]
fn an_invalid_value_is_an_error_naming_the_key() {
    let error = Settings::load_from(None, env(&[("OUTGROW_REQUEST_TIMEOUT", "soon")])).expect_err("bad");
    assert!(error.to_string().contains("request_timeout"), "{error}");
    let error =
        Settings::load_from(None, env(&[("OUTGROW_DATABASE_MAX_CONNECTIONS", "0")])).expect_err("bad");
    assert!(
        error.to_string().contains("OUTGROW_DATABASE_MAX_CONNECTIONS"),
        "{error}"
    );
}

#[test]
fn secrets_are_not_printed_by_debug() {
    let settings = Settings::load_from(
        None,
        env(&[("OUTGROW_JWT_KEYS", "k1:topsecretvalue-topsecretvalue-12")]),
    )
    .expect("valid");
    assert!(!format!("{settings:?}").contains("topsecretvalue"));
}

#[test]
fn postgres_requires_shared_jwt_keys_and_replicas_require_postgres() {
    let pg = ("OUTGROW_DATABASE_URL", "postgres://u:p@db/outgrow");
    let error = Settings::load_from(None, env(&[pg])).expect_err("keys required");
    assert!(error.to_string().contains("OUTGROW_JWT_KEYS"), "{error}");
    let keys = ("OUTGROW_JWT_KEYS", "k1:0123456789abcdef0123456789abcdef");
    let replicas = (
        "OUTGROW_DATABASE_REPLICA_URLS",
        "postgres://u:p@r1/outgrow,postgres://u:p@r2/outgrow",
    );
    let settings = Settings::load_from(None, env(&[pg, keys, replicas])).expect("valid");
    assert_eq!(settings.database_replica_urls.len(), 2);
    let error = Settings::load_from(None, env(&[keys, replicas])).expect_err("replicas need postgres");
    assert!(error.to_string().contains("database_replica_urls"), "{error}");
    assert!(
        !format!("{settings:?}").contains("u:p@"),
        "URLs with passwords are secrets"
    );
}

#[test]
fn cluster_seed_nodes_parse_and_exclude_a_single_redis_url() {
    let seeds = (
        "OUTGROW_REDIS_CLUSTER_URLS",
        "redis://127.0.0.1:7000,redis://:secret-pass@10.0.0.2:7001,redis://cache-2",
    );
    let settings = Settings::load_from(None, env(&[seeds])).expect("valid");
    assert_eq!(settings.redis_cluster_urls.len(), 3);
    assert!(!format!("{settings:?}").contains("secret-pass"));

    let both = Settings::load_from(
        None,
        env(&[seeds, ("OUTGROW_REDIS_URL", "redis://127.0.0.1:6379")]),
    )
    .expect_err("exclusive");
    assert!(error_names(&both, "OUTGROW_REDIS_CLUSTER_URLS") && error_names(&both, "OUTGROW_REDIS_URL"));
}

#[test]
fn a_bad_cluster_seed_is_named_by_position_without_its_text() {
    for bad in [
        "http://127.0.0.1:7000",
        "redis://:pw-in-url@127.0.0.1:notaport",
        "redis://127.0.0.1:7000/3",
        "redis://",
    ] {
        let error = Settings::load_from(
            None,
            env(&[(
                "OUTGROW_REDIS_CLUSTER_URLS",
                &format!("redis://127.0.0.1:7000,{bad}"),
            )]),
        )
        .expect_err(bad);
        assert!(error.to_string().contains("entry 2"), "{error}");
        assert!(!error.to_string().contains("pw-in-url"), "{error}");
    }
}

fn error_names(error: &anyhow::Error, name: &str) -> bool {
    error.to_string().contains(name)
}

#[test]
fn failure_modes_parse() {
    let settings = Settings::load_from(
        None,
        env(&[
            ("OUTGROW_RATE_LIMIT_ON_REDIS_FAILURE", "deny"),
            ("OUTGROW_AUTH_ON_SESSION_STORE_FAILURE", "deny"),
        ]),
    )
    .expect("valid");
    assert_eq!(settings.rate_limit_on_redis_failure, RedisFailureMode::Deny);
    assert_eq!(
        settings.auth_on_session_store_failure,
        SessionStoreFailureMode::Deny
    );
    assert!(Settings::load_from(None, env(&[("OUTGROW_RATE_LIMIT_ON_REDIS_FAILURE", "maybe")])).is_err());
}

#[test]
fn cors_origins_must_be_origins() {
    let ok = Settings::load_from(
        None,
        env(&[("OUTGROW_CORS_ORIGINS", "https://a.example,http://b.example:8080")]),
    );
    assert_eq!(ok.expect("valid").cors_origins.len(), 2);
    for bad in [
        "a.example",
        "https://a.example/path",
        "ftp://a.example",
        "https://",
    ] {
        let error = Settings::load_from(None, env(&[("OUTGROW_CORS_ORIGINS", bad)])).expect_err(bad);
        assert!(error.to_string().contains("cors_origins"), "{error}");
    }
}

#[test]
fn every_setting_is_accepted_from_the_environment() {
    let keys = known_keys();
    assert!(keys.len() >= 27, "{keys:?}");
    for key in [
        "listen",
        "jwt_keys",
        "rate_limit_auth",
        "metrics_enabled",
        "cache_user_ttl",
    ] {
        assert!(keys.contains(&key), "{key}");
    }
}

#[test]
fn rate_policies_parse_from_count_and_window() {
    assert_eq!(
        "10/1h".parse(),
        Ok(RatePolicySetting::new(10, Duration::from_secs(3600)))
    );
    assert!("0/1m".parse::<RatePolicySetting>().is_err());
    assert!("ten/1m".parse::<RatePolicySetting>().is_err());
    assert!("10".parse::<RatePolicySetting>().is_err());
}
