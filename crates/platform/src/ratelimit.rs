//! Rate limiting with GCRA (the generic cell rate algorithm), reported with the standard
//! headers of draft-ietf-httpapi-ratelimit-headers.
//!
//! GCRA keeps one timestamp per key (the "theoretical arrival time"), allows bursts up to the
//! policy's limit and refills smoothly, so a client is never locked out for a whole window.
//! The [`RateLimiter`] trait is what the HTTP layer sees; the in-process implementation here
//! uses `governor`, and the shared one (Redis, one Lua script) slots in behind the same trait.

use std::{collections::HashMap, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    Quota, RateLimiter as Governor,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

pub use crate::config::RedisFailureMode;
use crate::{config::RatePolicySetting, shutdown::ShutdownSignal};

/// A named limit: `limit` requests per `window`, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// Appears in the `RateLimit-Policy` header and in metrics.
    pub name: &'static str,
    /// Requests per window, and the largest burst.
    pub limit: u32,
    /// The window over which `limit` refills completely.
    pub window: Duration,
}

impl RatePolicy {
    /// The `RateLimit-Policy` header value: `"name";q=limit;w=seconds`.
    pub fn header_value(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.name,
            self.limit,
            self.window.as_secs().max(1)
        )
    }
}

impl RatePolicySetting {
    /// The runtime policy under `name`. Here rather than in `config`: configuration is the
    /// bottom of the platform and imports none of the modules it configures.
    pub fn policy(self, name: &'static str) -> RatePolicy {
        RatePolicy {
            name,
            limit: self.limit,
            window: self.window,
        }
    }
}

/// The outcome of one check, with what the response headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests that could be made right now without being limited.
    pub remaining: u32,
    /// Until the full burst is available again.
    pub reset_after: Duration,
    /// On a refusal, until one more request would be allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The `RateLimit` header value: `"name";r=remaining;t=seconds`.
    pub fn header_value(&self, policy: &RatePolicy) -> String {
        format!(
            "\"{}\";r={};t={}",
            policy.name,
            self.remaining,
            ceil_secs(self.reset_after)
        )
    }

    /// The `Retry-After` value in whole seconds, rounded up so a client that waits exactly
    /// that long is allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(ceil_secs)
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Decides whether the client behind `key` may make one more request under `policy`.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request against `key` and says whether it is allowed.
    async fn check(&self, policy: &RatePolicy, key: &str) -> Decision;
    /// Which backend decides, for the start-up log and `outgrow check`.
    fn backend_name(&self) -> &'static str;
    /// Drops, from whatever this limiter keeps in this process's memory (its own state, or
    /// its fallback's), the clients that are back to a full burst. [`run_clean_up`] calls it
    /// periodically, so memory follows the recently active clients rather than every client
    /// ever seen. Required, not defaulted: a limiter that keeps state must say how it sheds it.
    fn forget_idle_keys(&self);
}

/// Calls [`RateLimiter::forget_idle_keys`] on `limiter` every `every` until `stop`. Given the
/// limiter requests are checked against, so the clean-up cannot miss the state that grows.
pub async fn run_clean_up(limiter: Arc<dyn RateLimiter>, every: Duration, stop: ShutdownSignal) {
    stop.every(every, || {
        limiter.forget_idle_keys();
        std::future::ready(())
    })
    .await;
}

type KeyedGovernor =
    Governor<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// GCRA in this process's memory: exact for one instance, per-instance when there are several.
pub struct LocalRateLimiter {
    clock: DefaultClock,
    limiters: HashMap<&'static str, (RatePolicy, Arc<KeyedGovernor>)>,
}

impl std::fmt::Debug for LocalRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimiter")
            .field("policies", &self.limiters.keys())
            .finish()
    }
}

impl LocalRateLimiter {
    /// One keyed limiter per policy; a policy not listed here is created on first use.
    pub fn new(policies: &[RatePolicy]) -> Self {
        let clock = DefaultClock::default();
        let limiters = policies
            .iter()
            .map(|policy| (policy.name, (*policy, Arc::new(governor_for(policy, &clock)))))
            .collect();
        Self { clock, limiters }
    }

    /// How many clients this limiter holds state for, over every policy.
    pub fn tracked_keys(&self) -> usize {
        self.limiters.values().map(|(_, limiter)| limiter.len()).sum()
    }

    fn decide(&self, policy: &RatePolicy, limiter: &KeyedGovernor, key: &str) -> Decision {
        let per_request = policy.window / policy.limit;
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    reset_after: per_request * (policy.limit - remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    reset_after: wait + per_request * policy.limit.saturating_sub(1),
                    retry_after: Some(wait),
                }
            }
        }
    }
}

fn governor_for(policy: &RatePolicy, clock: &DefaultClock) -> KeyedGovernor {
    let burst = NonZeroU32::new(policy.limit).unwrap_or(NonZeroU32::MIN);
    let refill = (policy.window / burst.get()).max(Duration::from_nanos(1));
    // `with_period` only refuses a zero period, which `max` above rules out.
    let quota = Quota::with_period(refill)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst);
    Governor::dashmap_with_clock(quota, clock.clone()).with_middleware::<StateInformationMiddleware>()
}

#[async_trait::async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, policy: &RatePolicy, key: &str) -> Decision {
        match self.limiters.get(policy.name) {
            Some((configured, limiter)) if configured == policy => self.decide(policy, limiter, key),
            // An ad-hoc policy (not configured at start-up) is limited by a fresh limiter;
            // the HTTP layer only uses configured ones.
            _ => self.decide(policy, &governor_for(policy, &self.clock), key),
        }
    }

    fn backend_name(&self) -> &'static str {
        "in-process"
    }

    fn forget_idle_keys(&self) {
        for (_, limiter) in self.limiters.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The `mode` label of `rate_limit_fallback_total`.
fn failure_label(mode: RedisFailureMode) -> &'static str {
    match mode {
        RedisFailureMode::Local => "local",
        RedisFailureMode::Allow => "allow",
        RedisFailureMode::Deny => "deny",
    }
}

/// GCRA in one Lua script, so the check-and-update is atomic and every instance shares one
/// budget per client. The clock is Redis's own (`TIME`), so instances with skewed clocks still
/// agree. One key per client and policy: safe on Redis Cluster.
///
/// ARGV: the emission interval (µs per request) and the limit. Returns one integer: when
/// allowed, how far the stored arrival time now runs ahead of the clock (µs, ≥ 0: 0 when the
/// interval is below the clock's resolution); when refused, minus the µs until one more
/// request would be allowed (≤ -1). The caller derives the
/// headers from it ([`decision_from_reply`]): a lone integer is the cheapest reply for Redis to
/// build, and the script runs on every limited request.
const GCRA_SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > tolerance then
  return -math.ceil(ahead - tolerance)
end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil(ahead / 1000) + 1)
return math.ceil(ahead)
"#;

/// The decision the GCRA script's reply stands for (see [`GCRA_SCRIPT`]).
fn decision_from_reply(policy: &RatePolicy, reply: i64) -> Decision {
    let interval_us = policy.window.as_secs_f64() * 1_000_000.0 / f64::from(policy.limit);
    let tolerance_us = interval_us * f64::from(policy.limit);
    let micros = |value: f64| Duration::from_micros(value.max(0.0).ceil() as u64);
    if reply >= 0 {
        let ahead = reply as f64;
        Decision {
            allowed: true,
            remaining: ((tolerance_us - ahead) / interval_us).floor().max(0.0) as u32,
            reset_after: micros(ahead),
            retry_after: None,
        }
    } else {
        let retry = reply.unsigned_abs().max(1) as f64;
        Decision {
            allowed: false,
            remaining: 0,
            reset_after: micros(retry + tolerance_us - interval_us),
            retry_after: Some(micros(retry)),
        }
    }
}

/// GCRA shared by every instance through Redis, with a configurable fallback.
pub struct RedisRateLimiter {
    redis: crate::redis_client::RedisClient,
    script: redis::Script,
    fallback: LocalRateLimiter,
    on_failure: RedisFailureMode,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A shared limiter for `policies`, falling back as `on_failure` says.
    pub fn new(
        redis: crate::redis_client::RedisClient,
        policies: &[RatePolicy],
        on_failure: RedisFailureMode,
    ) -> Self {
        Self {
            redis,
            script: redis::Script::new(GCRA_SCRIPT),
            fallback: LocalRateLimiter::new(policies),
            on_failure,
        }
    }

    /// The in-process limiter used while Redis is unreachable.
    pub fn fallback(&self) -> &LocalRateLimiter {
        &self.fallback
    }
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, policy: &RatePolicy, key: &str) -> Decision {
        let redis_key = format!("{}rl:{{{}:{key}}}", self.redis.prefix(), policy.name);
        let interval_us = policy.window.as_secs_f64() * 1_000_000.0 / f64::from(policy.limit);
        let script = &self.script;
        let outcome = self
            .redis
            .run("rate_limit", |connection| async move {
                script
                    .key(&redis_key)
                    .arg(interval_us)
                    .arg(policy.limit)
                    .invoke_async::<i64>(&mut connection.at_key(&redis_key))
                    .await
            })
            .await;
        match outcome {
            Ok(reply) => decision_from_reply(policy, reply),
            Err(_) => {
                metrics::counter!("rate_limit_fallback_total", "mode" => failure_label(self.on_failure))
                    .increment(1);
                match self.on_failure {
                    RedisFailureMode::Local => self.fallback.check(policy, key).await,
                    RedisFailureMode::Allow => Decision {
                        allowed: true,
                        remaining: policy.limit,
                        reset_after: Duration::ZERO,
                        retry_after: None,
                    },
                    RedisFailureMode::Deny => Decision {
                        allowed: false,
                        remaining: 0,
                        reset_after: policy.window,
                        retry_after: Some(Duration::from_secs(1)),
                    },
                }
            }
        }
    }

    fn backend_name(&self) -> &'static str {
        "redis (GCRA script)"
    }

    /// The fallback is what grows while Redis is down (every client then lands in it).
    fn forget_idle_keys(&self) {
        self.fallback.forget_idle_keys();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RatePolicy = RatePolicy {
        name: "test",
        limit: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn the_burst_is_allowed_and_the_next_request_refused() {
        let limiter = LocalRateLimiter::new(&[POLICY]);
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let decision = limiter.check(&POLICY, "client").await;
            assert!(decision.allowed);
            remaining.push(decision.remaining);
        }
        assert_eq!(remaining, vec![2, 1, 0]);
        let refused = limiter.check(&POLICY, "client").await;
        assert!(!refused.allowed);
        let retry = refused.retry_after_secs().expect("retry after");
        assert!(
            (19..=20).contains(&retry),
            "one request refills in 20 s, got {retry}"
        );
    }

    #[tokio::test]
    async fn keys_are_limited_independently() {
        let limiter = LocalRateLimiter::new(&[POLICY]);
        for _ in 0..3 {
            limiter.check(&POLICY, "a").await;
        }
        assert!(!limiter.check(&POLICY, "a").await.allowed);
        assert!(limiter.check(&POLICY, "b").await.allowed);
    }

    /// Two requests per 20 ms: a client is idle again (back to a full burst) 20 ms after its
    /// last request.
    const FAST: RatePolicy = RatePolicy {
        name: "fast",
        limit: 2,
        window: Duration::from_millis(20),
    };

    /// Runs the clean-up of `limiter` every 10 ms until `forgotten` holds (2 s at most), then
    /// stops it at the shutdown signal; returns whether `forgotten` held.
    async fn clean_up_until(limiter: Arc<dyn RateLimiter>, mut forgotten: impl FnMut() -> bool) -> bool {
        let shutdown = crate::shutdown::Shutdown::new();
        let clean_up = tokio::spawn(run_clean_up(
            limiter,
            Duration::from_millis(10),
            shutdown.signal(),
        ));
        let mut held = forgotten();
        for _ in 0..200 {
            if held {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            held = forgotten();
        }
        shutdown.stop();
        clean_up.await.expect("the clean-up stops at the signal");
        held
    }

    #[tokio::test]
    async fn the_clean_up_forgets_idle_clients_of_the_local_limiter() {
        let limiter = Arc::new(LocalRateLimiter::new(&[FAST]));
        for client in 0..50 {
            limiter.check(&FAST, &format!("client-{client}")).await;
        }
        assert_eq!(limiter.tracked_keys(), 50);

        let forgotten = clean_up_until(limiter.clone(), || limiter.tracked_keys() == 0).await;

        assert!(forgotten, "idle clients are forgotten");
    }

    #[tokio::test]
    async fn the_clean_up_of_the_redis_limiter_forgets_idle_clients_of_the_fallback_it_uses() {
        // Redis unreachable: every client lands in the fallback, which must not grow for as
        // long as Redis stays down.
        let redis =
            crate::redis_client::RedisClient::new("redis://127.0.0.1:1", "t:", Duration::from_millis(50))
                .expect("a lazy client");
        let limiter = Arc::new(RedisRateLimiter::new(redis, &[FAST], RedisFailureMode::Local));
        for client in 0..50 {
            assert!(limiter.check(&FAST, &format!("client-{client}")).await.allowed);
        }
        assert_eq!(limiter.fallback().tracked_keys(), 50, "the fallback decided");

        let forgotten = clean_up_until(limiter.clone(), || limiter.fallback().tracked_keys() == 0).await;

        assert!(
            forgotten,
            "the fallback still holds {} idle clients",
            limiter.fallback().tracked_keys()
        );
    }

    #[test]
    fn the_scripts_reply_becomes_the_same_decision_as_the_local_limiter_makes() {
        // 3 per minute: one request every 20 s. A fresh client's first request runs 20 s ahead.
        let first = decision_from_reply(&POLICY, 20_000_000);
        assert!(first.allowed);
        assert_eq!((first.remaining, first.reset_after), (2, Duration::from_secs(20)));
        // The burst is used up: 60 s ahead, nothing remains.
        let third = decision_from_reply(&POLICY, 60_000_000);
        assert_eq!((third.allowed, third.remaining), (true, 0));
        // Refused: one more request in 19.5 s; the full burst 40 s later.
        let refused = decision_from_reply(&POLICY, -19_500_000);
        // A limit so high that its interval is below a microsecond: every request is allowed.
        assert!(decision_from_reply(&POLICY, 0).allowed);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs(), Some(20));
        assert_eq!(refused.reset_after, Duration::from_millis(59_500));
    }

    #[test]
    fn headers_follow_the_draft_syntax() {
        let decision = Decision {
            allowed: true,
            remaining: 2,
            reset_after: Duration::from_millis(20_001),
            retry_after: None,
        };
        assert_eq!(POLICY.header_value(), "\"test\";q=3;w=60");
        assert_eq!(decision.header_value(&POLICY), "\"test\";r=2;t=21");
    }
}
