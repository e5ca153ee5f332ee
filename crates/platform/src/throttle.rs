//! Progressive delays for sign-in attempts, against credential stuffing and password guessing.
//!
//! A key (an account, a client address) has a count of recent attempts. The first
//! `free_attempts` pass at once; from then on every counted attempt makes the next one wait,
//! twice as long each time (`base`, `2·base`, `4·base`, … up to `max`), and an attempt arriving
//! early is refused with how long to wait. An account's attempts are counted when they *start*
//! ([`Throttle::attempt`]), so a burst of parallel guesses cannot slip through before the first
//! failure is recorded, and a success clears them ([`Throttle::clear`]). An address's are
//! checked when they start ([`Throttle::check`]) but counted only when they fail
//! ([`Throttle::fail`]), so one shared address with many honest users is slowed by its
//! failures alone. A key nobody has tried for `forget_after` starts afresh.
//!
//! Delays rather than lock-outs: an attacker who fails on someone's account can slow that
//! account's sign-in down to one attempt per `max`, never stop it; sessions already signed in
//! are untouched.
//!
//! The in-process implementation serves one instance; the Redis one (one hash per key, one Lua
//! script per call, Redis's clock) is shared by every instance, and falls back to an
//! in-process throttle while Redis is unreachable.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How a kind of key is throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Appears in the Redis key and in metrics.
    pub name: &'static str,
    /// Attempts allowed before delays start.
    pub free_attempts: u32,
    /// The first delay; each further attempt doubles it.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A key without attempts for this long is forgotten.
    pub forget_after: Duration,
}

impl ThrottlePolicy {
    /// The wait an attempt numbered `attempt` (1-based) imposes on the next one.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        if attempt <= self.free_attempts {
            return Duration::ZERO;
        }
        let doublings = (attempt - self.free_attempts - 1).min(30);
        self.base.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What a call does to a key's attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Refuse an early attempt, else count it.
    Attempt,
    /// Refuse an early attempt; count nothing.
    Check,
    /// Count an attempt that failed, early or not.
    Fail,
}

impl Step {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Attempt => "attempt",
            Self::Check => "check",
            Self::Fail => "fail",
        }
    }
}

/// Sign-in attempts counted per key.
#[async_trait::async_trait]
pub trait Throttle: Send + Sync {
    /// Starts an attempt under `key`: `Err(wait)` when it comes too early (nothing is
    /// counted), else it is counted and may proceed.
    async fn attempt(&self, policy: &ThrottlePolicy, key: &str) -> Result<(), Duration>;

    /// `Err(wait)` when an attempt under `key` would come too early; counts nothing.
    async fn check(&self, policy: &ThrottlePolicy, key: &str) -> Result<(), Duration>;

    /// Counts a failed attempt under `key`.
    async fn fail(&self, policy: &ThrottlePolicy, key: &str);

    /// The key's history no longer matters (an account signed in).
    async fn clear(&self, policy: &ThrottlePolicy, key: &str);
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    attempts: u32,
    not_before: Instant,
    touched: Instant,
    forget_after: Duration,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<(&'static str, String), Entry>,
    /// The next sweep of forgotten keys happens when this many are held.
    sweep_at: usize,
}

/// Attempts kept in this process: right for one instance, and the fallback of the Redis one.
#[derive(Debug, Default)]
pub struct LocalThrottle {
    entries: Mutex<Entries>,
}

/// Forgotten keys are swept once this many are held, then each time the count doubles.
const FIRST_SWEEP_AT: usize = 4096;

impl LocalThrottle {
    /// An empty throttle.
    pub fn new() -> Self {
        Self::default()
    }

    #[cfg(test)]
    fn attempt_at(&self, policy: &ThrottlePolicy, key: &str, now: Instant) -> Result<(), Duration> {
        self.step_at(policy, key, now, Step::Attempt)
    }

    fn step_at(&self, policy: &ThrottlePolicy, key: &str, now: Instant, step: Step) -> Result<(), Duration> {
        let mut entries = self
            .entries
            .lock()
            .expect("the throttle's lock is never poisoned");
        if entries.by_key.len() >= entries.sweep_at.max(FIRST_SWEEP_AT) {
            entries
                .by_key
                .retain(|_, entry| now.saturating_duration_since(entry.touched) < entry.forget_after);
            entries.sweep_at = entries.by_key.len() * 2;
        }
        let entry = entries
            .by_key
            .entry((policy.name, key.to_owned()))
            .or_insert(Entry {
                attempts: 0,
                not_before: now,
                touched: now,
                forget_after: policy.forget_after,
            });
        if now.saturating_duration_since(entry.touched) >= policy.forget_after {
            entry.attempts = 0;
            entry.not_before = now;
        }
        let early = (now < entry.not_before).then(|| entry.not_before - now);
        if let (Some(wait), Step::Attempt | Step::Check) = (early, step) {
            return Err(wait);
        }
        if step == Step::Check {
            return Ok(());
        }
        entry.attempts = entry.attempts.saturating_add(1);
        entry.not_before = entry.not_before.max(now + policy.delay_after(entry.attempts));
        entry.touched = now;
        Ok(())
    }

    /// Keys currently remembered (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.entries
            .lock()
            .expect("the throttle's lock is never poisoned")
            .by_key
            .len()
    }
}

#[async_trait::async_trait]
impl Throttle for LocalThrottle {
    async fn attempt(&self, policy: &ThrottlePolicy, key: &str) -> Result<(), Duration> {
        self.step_at(policy, key, Instant::now(), Step::Attempt)
    }

    async fn check(&self, policy: &ThrottlePolicy, key: &str) -> Result<(), Duration> {
        self.step_at(policy, key, Instant::now(), Step::Check)
    }

    async fn fail(&self, policy: &ThrottlePolicy, key: &str) {
        let _ = self.step_at(policy, key, Instant::now(), Step::Fail);
    }

    async fn clear(&self, policy: &ThrottlePolicy, key: &str) {
        let mut entries = self
            .entries
            .lock()
            .expect("the throttle's lock is never poisoned");
        entries.by_key.remove(&(policy.name, key.to_owned()));
    }
}

/// One step, atomically, on Redis's clock. KEYS[1]: the key's hash (`n` attempts, `u` the
/// earliest next attempt in ms). ARGV: free attempts, base ms, max ms, forget-after ms, and the
/// step (`attempt`, `check` or `fail`, as [`Step`]). Returns 0 when the attempt may proceed
/// (or was counted), else the ms to wait.
const STEP_SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'n', 'u')
local attempts = tonumber(state[1] or 0)
local not_before = tonumber(state[2] or 0)
local step = ARGV[5]
if step ~= 'fail' and now < not_before then return not_before - now end
if step == 'check' then return 0 end
attempts = attempts + 1
local free = tonumber(ARGV[1])
local delay = 0
if attempts > free then
  delay = math.min(tonumber(ARGV[2]) * 2 ^ math.min(attempts - free - 1, 30), tonumber(ARGV[3]))
end
redis.call('HSET', KEYS[1], 'n', attempts, 'u', string.format('%.0f', math.max(not_before, now + delay)))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
"#;

/// Attempts shared by every instance through Redis.
pub struct RedisThrottle {
    redis: crate::redis_client::RedisClient,
    script: redis::Script,
    fallback: LocalThrottle,
}

impl std::fmt::Debug for RedisThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisThrottle").finish_non_exhaustive()
    }
}

impl RedisThrottle {
    /// A throttle on `redis`, with an in-process fallback while Redis is unreachable.
    pub fn new(redis: crate::redis_client::RedisClient) -> Self {
        Self {
            redis,
            script: redis::Script::new(STEP_SCRIPT),
            fallback: LocalThrottle::new(),
        }
    }

    async fn step(&self, policy: &ThrottlePolicy, key: &str, step: Step) -> Result<(), Duration> {
        let redis_key = self.key(policy, key);
        let script = &self.script;
        let outcome = self
            .redis
            .run("login_throttle", |connection| async move {
                script
                    .key(&redis_key)
                    .arg(policy.free_attempts)
                    .arg(millis(policy.base))
                    .arg(millis(policy.max))
                    .arg(millis(policy.forget_after))
                    .arg(step.as_arg())
                    .invoke_async::<u64>(&mut connection.at_key(&redis_key))
                    .await
            })
            .await;
        match outcome {
            Ok(0) => Ok(()),
            Ok(wait_ms) => Err(Duration::from_millis(wait_ms)),
            Err(_) => {
                count_fallback();
                self.fallback.step_at(policy, key, Instant::now(), step)
            }
        }
    }

    fn key(&self, policy: &ThrottlePolicy, key: &str) -> String {
        format!("{}throttle:{}:{key}", self.redis.prefix(), policy.name)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn count_fallback() {
    metrics::counter!("login_throttle_fallback_total").increment(1);
}

#[async_trait::async_trait]
impl Throttle for RedisThrottle {
    async fn attempt(&self, policy: &ThrottlePolicy, key: &str) -> Result<(), Duration> {
        self.step(policy, key, Step::Attempt).await
    }

    async fn check(&self, policy: &ThrottlePolicy, key: &str) -> Result<(), Duration> {
        self.step(policy, key, Step::Check).await
    }

    async fn fail(&self, policy: &ThrottlePolicy, key: &str) {
        let _ = self.step(policy, key, Step::Fail).await;
    }

    async fn clear(&self, policy: &ThrottlePolicy, key: &str) {
        let redis_key = self.key(policy, key);
        let outcome = self
            .redis
            .run("login_throttle", |connection| async move {
                redis::cmd("DEL")
                    .arg(&redis_key)
                    .query_async::<()>(&mut connection.at_key(&redis_key))
                    .await
            })
            .await;
        if outcome.is_err() {
            count_fallback();
        }
        self.fallback.clear(policy, key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ThrottlePolicy = ThrottlePolicy {
        name: "account",
        free_attempts: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(10),
        forget_after: Duration::from_secs(3600),
    };

    #[test]
    fn delays_double_after_the_free_attempts_up_to_the_maximum() {
        let delays: Vec<u64> = (1..=9).map(|n| POLICY.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(POLICY.delay_after(u32::MAX), POLICY.max);
    }

    #[test]
    fn attempts_after_the_free_ones_must_wait_progressively_longer() {
        let throttle = LocalThrottle::new();
        let start = Instant::now();
        for _ in 0..4 {
            assert_eq!(throttle.attempt_at(&POLICY, "a", start), Ok(()));
        }
        // The fourth attempt imposed 1 s on the fifth.
        assert_eq!(
            throttle.attempt_at(&POLICY, "a", start),
            Err(Duration::from_secs(1))
        );
        let later = start + Duration::from_secs(1);
        assert_eq!(throttle.attempt_at(&POLICY, "a", later), Ok(()));
        // The fifth imposed 2 s; a refused attempt counts nothing.
        assert_eq!(
            throttle.attempt_at(&POLICY, "a", later + Duration::from_millis(500)),
            Err(Duration::from_millis(1500))
        );
        assert_eq!(
            throttle.attempt_at(&POLICY, "a", later + Duration::from_secs(2)),
            Ok(())
        );
        // Another key is untouched.
        assert_eq!(throttle.attempt_at(&POLICY, "b", later), Ok(()));
    }

    #[tokio::test]
    async fn clearing_forgets_every_attempt() {
        let throttle = LocalThrottle::new();
        let now = Instant::now();
        for _ in 0..4 {
            throttle.attempt_at(&POLICY, "a", now).expect("free");
        }
        assert!(throttle.attempt_at(&POLICY, "a", now).is_err());
        throttle.clear(&POLICY, "a").await;
        assert_eq!(throttle.tracked_keys(), 0);
        assert_eq!(throttle.attempt_at(&POLICY, "a", now), Ok(()));
    }

    #[test]
    fn checks_count_nothing_and_failures_count_even_when_early() {
        let throttle = LocalThrottle::new();
        let now = Instant::now();
        for _ in 0..10 {
            assert_eq!(throttle.step_at(&POLICY, "ip", now, Step::Check), Ok(()));
        }
        for _ in 0..5 {
            // The fourth failure imposes 1 s, the fifth (early, still counted) 2 s.
            assert_eq!(throttle.step_at(&POLICY, "ip", now, Step::Fail), Ok(()));
        }
        assert_eq!(
            throttle.step_at(&POLICY, "ip", now, Step::Check),
            Err(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_key_left_alone_for_forget_after_starts_afresh() {
        let throttle = LocalThrottle::new();
        let now = Instant::now();
        for _ in 0..6 {
            let _ = throttle.attempt_at(&POLICY, "a", now);
        }
        assert!(throttle.attempt_at(&POLICY, "a", now).is_err());
        let much_later = now + POLICY.forget_after;
        assert_eq!(throttle.attempt_at(&POLICY, "a", much_later), Ok(()));
        assert_eq!(throttle.attempt_at(&POLICY, "a", much_later), Ok(()));
    }
}
