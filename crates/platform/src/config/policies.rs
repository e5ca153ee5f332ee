//! The settings that are choices rather than plain values: failure modes, the log format and
//! rate policies written as `count/window`.

use std::{str::FromStr, time::Duration};

use serde::Deserialize;

/// What authentication does while the session store is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionStoreFailureMode {
    /// Accept validly signed, unexpired access tokens without the revocation check (a
    /// revoked session's tokens work until they expire, at most `access_token_ttl`).
    TokenOnly,
    /// Answer 503 to every authenticated request.
    Deny,
}

/// The two log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line, with the span fields (request id) on each.
    Json,
}

/// What the shared rate limiter does when Redis cannot be reached (see `ratelimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedisFailureMode {
    /// Limit with this instance's in-process limiter (per instance, so N instances allow up
    /// to N times the limit) — the default: keeps protection without a single point of failure.
    Local,
    /// Let every request through (fail open).
    Allow,
    /// Refuse every limited request with 429 (fail closed).
    Deny,
}

/// A rate policy as written in configuration: `count/window`, e.g. `600/1m` or `10/1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicySetting {
    /// Requests allowed per window (also the burst).
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl RatePolicySetting {
    /// A policy of `limit` requests per `window`.
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }
}

impl FromStr for RatePolicySetting {
    type Err = String;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (count, window) = input
            .split_once('/')
            .ok_or_else(|| format!("{input:?} is not of the form count/window, e.g. 600/1m"))?;
        let limit: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{count:?} is not a whole number of requests"))?;
        let window = humantime::parse_duration(window.trim())
            .map_err(|error| format!("{window:?} is not a duration: {error}"))?;
        if limit == 0 || window.is_zero() {
            return Err("count and window must both be above zero".into());
        }
        Ok(Self { limit, window })
    }
}

impl<'de> Deserialize<'de> for RatePolicySetting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
