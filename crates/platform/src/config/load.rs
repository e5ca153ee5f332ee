//! Loading: the three layers merged, and the environment's `OUTGROW_*` variables mapped onto
//! the keys (refusing unknown ones) before `config` reads them.

use std::{collections::HashMap, path::PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{ENV_PREFIX, Settings};

/// Variables with the prefix that are not settings: they steer the command line itself.
const NOT_SETTINGS: &[&str] = &["OUTGROW_CONFIG", "OUTGROW_ADMIN_PASSWORD"];
/// Prefixes reserved for the test harness and its service scripts (`OUTGROW_TEST_PG_PRIMARY`,
/// `OUTGROW_SERVICES_DIR`, …): a shell that sourced the services' env file can still run
/// `outgrow`.
const NOT_SETTINGS_PREFIXES: &[&str] = &["OUTGROW_TEST_", "OUTGROW_SERVICES_"];

/// Keys whose environment form is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "trusted_proxies",
    "metrics_allowed_networks",
    "cors_origins",
    "database_replica_urls",
    "database_shard_urls",
    "redis_cluster_urls",
    "worker_queues",
];

impl Settings {
    /// Loads the layers: defaults, then `file` (required when given explicitly, else
    /// `outgrow.toml` in the working directory when present), then the environment.
    pub fn load(file: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::load_from(file, std::env::vars().collect())
    }

    /// [`Settings::load`] with an explicit environment, for tests.
    pub fn load_from(file: Option<PathBuf>, env: HashMap<String, String>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        builder = match &file {
            Some(path) => builder.add_source(config::File::from(path.as_path()).required(true)),
            None => builder.add_source(config::File::with_name("outgrow.toml").required(false)),
        };
        let settings_env = settings_env(env)?;
        let mut environment = config::Environment::default()
            .try_parsing(true)
            .list_separator(",")
            .source(Some(settings_env));
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        let merged = builder
            .add_source(environment)
            .build()
            .context("reading configuration")?;
        let settings: Settings = merged
            .try_deserialize()
            .map_err(|error| anyhow::anyhow!("invalid configuration: {}", explain(&error.to_string())))?;
        settings.validate()?;
        Ok(settings)
    }
}

/// Keeps the `OUTGROW_*` variables that are settings, lower-cased without the prefix, and
/// refuses unknown ones so that a typo never silently leaves a default in force.
fn settings_env(env: HashMap<String, String>) -> anyhow::Result<HashMap<String, String>> {
    let known = known_keys();
    let mut settings = HashMap::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if NOT_SETTINGS.contains(&name.as_str())
            || NOT_SETTINGS_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let key = key.to_lowercase();
        if !known.contains(&key.as_str()) {
            bail!("invalid configuration: unknown environment variable {name} (see the README for the keys)");
        }
        settings.insert(key, value);
    }
    Ok(settings)
}

/// The setting names, read off the `Settings` struct itself (serde hands its field list to
/// the deserializer), so the list of accepted variables cannot drift from the struct.
pub(super) fn known_keys() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};

    struct FieldProbe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
        type Error = value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Error::custom("field probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(Error::custom("field probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    static FIELDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut fields: &'static [&'static str] = &[];
        let _probe_always_fails = Settings::deserialize(FieldProbe(&mut fields));
        fields
    })
}

/// Adds the environment-variable spelling next to the key that `config` names.
fn explain(message: &str) -> String {
    match message.split('`').nth(1) {
        Some(key) if known_keys().contains(&key) => {
            format!(
                "{message} (environment variable {ENV_PREFIX}{})",
                key.to_uppercase()
            )
        }
        _ => message.to_owned(),
    }
}
