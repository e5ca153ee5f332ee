//! The application state: built once at start-up from the settings, shared by every request.
//!
//! Each backend is chosen here and nowhere else. Nothing a second instance would need lives
//! only in this struct: users and sessions are in the database, keys come from configuration
//! (or, on the embedded backend, from the data dir), and the in-process cache and rate limiter
//! are the embedded choices of shared concerns.

use std::{ops::Deref, sync::Arc, time::Duration};

use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use outgrow_platform::{
    cache::{Cache, CachePolicy},
    config::Settings,
    ratelimit::{self, LocalRateLimiter, RateLimiter, RatePolicy, RedisRateLimiter},
    redis_client::RedisClient,
    shutdown::Shutdown,
    throttle::{LocalThrottle, RedisThrottle, Throttle, ThrottlePolicy},
};

use crate::{
    auth::{keys, password::PasswordHasher, tokens::TokenSigner},
    db::{
        Database,
        markers::{LocalMarkers, RedisMarkers, WriteMarkers},
        redis_sessions::RedisSessions,
        session_cache::CachedSessions,
    },
    repo::{SessionStore, UserRepository},
};

/// How often the rate limiter forgets idle clients.
const RATE_LIMITER_CLEAN_UP: Duration = Duration::from_secs(60);

/// How long a shutdown waits for the background tasks to stop before aborting them. They stop
/// at the signal; only one in the middle of its work (a view-count flush, a replica probe)
/// takes a moment, bounded by its own statement and connection timeouts.
pub const BACKGROUND_TASKS_DEADLINE: Duration = Duration::from_secs(5);

/// A cheap handle on [`App`], given to every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// The rate policies per route group.
#[derive(Debug, Clone, Copy)]
pub struct Policies {
    /// Most routes, per client (user id, else address).
    pub default: RatePolicy,
    /// Creating data exports, per user.
    pub export: RatePolicy,
    /// Placing orders, per user.
    pub order: RatePolicy,
    /// `/api/v1/auth/*`, per client address.
    pub auth: RatePolicy,
    /// Sign-in attempts per account (any address).
    pub login_account: ThrottlePolicy,
    /// Sign-in attempts per client address (failures only).
    pub login_address: ThrottlePolicy,
}

/// Everything a request may need.
pub struct App {
    /// The validated configuration.
    pub settings: Settings,
    /// The SQL database (pools).
    pub db: Database,
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Cache-aside for hot reads.
    pub cache: Cache,
    /// How long user records stay cached.
    pub user_cache: CachePolicy,
    /// Request rate limits.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// The `backend` label of `rate_limit_check_duration_seconds`: `local` or `redis`.
    pub rate_limit_backend: &'static str,
    /// The configured rate policies.
    pub policies: Policies,
    /// Sign-in attempts per account and per address (progressive delays).
    pub login_throttle: Arc<dyn Throttle>,
    /// Argon2id on the blocking pool.
    pub passwords: PasswordHasher,
    /// Access-token signing and verification.
    pub tokens: TokenSigner,
    /// Renders `/metrics`; `None` when metrics are disabled.
    pub metrics: Option<PrometheusHandle>,
    /// Readiness and the stop signal.
    pub shutdown: Shutdown,
    /// The shared Redis, when configured (readiness reports on it).
    pub redis: Option<RedisClient>,
    /// Where e-mail goes (used by jobs only).
    pub mailer: crate::mail::Mailer,
    /// Uploads and exports.
    pub storage: outgrow_platform::storage::ObjectStorage,
    /// Upload and export rows.
    pub media: crate::db::media::MediaStore,
    /// Signs time-limited links; derived from the JWT signing key, so every instance agrees.
    pub link_keys: crate::auth::keys::LinkKeys,
    /// The order and event shards, and the map routing users to them.
    pub shards: crate::db::shards::Shards,
    /// Products and stock.
    pub catalog: crate::store::catalog::Catalog,
    /// Orders across the shards.
    pub orders: crate::store::orders::Orders,
    /// The event log (group commit).
    pub events: crate::store::events::EventSink,
    /// Product views, counted in memory and written behind.
    pub views: Arc<crate::store::views::ViewCounter>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("db", &self.db.describe())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds the state: opens the database (migrating when `auto_migrate` is on), loads the
    /// keys and chooses every backend.
    pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<AppState> {
        // The recorder first, before anything can count: an increment made before it is
        // installed (a background task that connects fast, e.g. the invalidation listener's
        // first subscription) goes to the no-op recorder and is lost for the process's life.
        let metrics = if settings.metrics_enabled {
            Some(outgrow_platform::telemetry::init_metrics().context("starting metrics")?)
        } else {
            None
        };
        let redis = RedisClient::from_settings(&settings)?;
        let markers: Arc<dyn WriteMarkers> = match &redis {
            Some(redis) => Arc::new(RedisMarkers::new(redis.clone(), settings.read_your_writes_window)),
            None => Arc::new(LocalMarkers::new(settings.read_your_writes_window)),
        };
        let db = Database::connect(&settings, markers).await?;
        if settings.auto_migrate {
            let applied = db.migrate().await?;
            if applied > 0 {
                tracing::info!(applied, "applied database migrations");
            }
        }
        let shards = crate::db::shards::Shards::new(&db, &settings)?;
        if settings.auto_migrate {
            let applied = shards.migrate().await?;
            if applied > 0 {
                tracing::info!(applied, "applied migrations to the shards");
            }
        }
        // Until the stored map is read, writes routed by it wait (503); the refresher keeps
        // trying, so an instance can start before its database is reachable.
        if let Err(error) = shards.load_map().await {
            tracing::warn!(
                error = format!("{error:#}"),
                "could not read the shard map yet; order and event writes wait for it"
            );
        }
        shutdown.spawn(
            "shard map refresher",
            shards
                .clone()
                .run_refresher(settings.shard_map_refresh, shutdown.signal()),
        );
        if let Database::Postgres(pg) = &db {
            shutdown.spawn(
                "replica prober",
                pg.clone()
                    .run_replica_prober(settings.replica_probe_interval, shutdown.signal()),
            );
        }
        let keys = keys::load_or_generate(settings.jwt_keys.as_ref(), &settings.data_dir)?;
        let tokens = TokenSigner::new(&keys, settings.access_token_ttl)?;
        let passwords = PasswordHasher::new(settings.password_hash_concurrency).await?;
        let policies = Policies {
            default: settings.rate_limit_default.policy("default"),
            auth: settings.rate_limit_auth.policy("auth"),
            export: settings.rate_limit_export.policy("export"),
            order: settings.rate_limit_order.policy("order"),
            login_account: ThrottlePolicy {
                name: "account",
                free_attempts: settings.login_free_attempts_per_account,
                base: settings.login_delay_base,
                max: settings.login_delay_max,
                forget_after: settings.login_attempts_forget_after,
            },
            login_address: ThrottlePolicy {
                name: "address",
                free_attempts: settings.login_free_attempts_per_address,
                base: settings.login_delay_base,
                max: settings.login_delay_max,
                forget_after: settings.login_attempts_forget_after,
            },
        };
        let login_throttle: Arc<dyn Throttle> = match &redis {
            Some(redis) => Arc::new(RedisThrottle::new(redis.clone())),
            None => Arc::new(LocalThrottle::new()),
        };
        let all_policies = [policies.default, policies.auth, policies.export, policies.order];
        let rate_limiter: Arc<dyn RateLimiter> = match &redis {
            Some(redis) => Arc::new(RedisRateLimiter::new(
                redis.clone(),
                &all_policies,
                settings.rate_limit_on_redis_failure,
            )),
            None => Arc::new(LocalRateLimiter::new(&all_policies)),
        };
        // The limiter requests are checked against sheds its own idle clients (with Redis: its
        // fallback's, which grow while Redis is down).
        shutdown.spawn(
            "rate limiter clean-up",
            ratelimit::run_clean_up(rate_limiter.clone(), RATE_LIMITER_CLEAN_UP, shutdown.signal()),
        );
        let cache = match &redis {
            Some(redis) => Cache::tiered(settings.cache_capacity, redis.clone(), settings.cache_local_ttl),
            None => Cache::in_process(settings.cache_capacity),
        };
        shutdown.spawn(
            "cache invalidation listener",
            cache.clone().run_invalidation_listener(shutdown.signal()),
        );
        let store: Arc<dyn SessionStore> = match &redis {
            Some(redis) => Arc::new(RedisSessions::new(redis.clone())),
            None => db.sessions(),
        };
        let sessions: Arc<dyn SessionStore> =
            Arc::new(CachedSessions::new(store, &cache, settings.session_cache_ttl));
        if let Some(handle) = &metrics {
            shutdown.spawn(
                "metrics upkeep",
                outgrow_platform::telemetry::run_metrics_upkeep(handle.clone(), shutdown.signal()),
            );
        }
        let mailer = crate::mail::Mailer::from_settings(&settings)?;
        let storage = outgrow_platform::storage::ObjectStorage::from_settings(&settings)?;
        let link_keys = crate::auth::keys::LinkKeys::derive(&keys)?;
        let catalog = crate::store::catalog::Catalog::new(&db);
        let orders = crate::store::orders::Orders::new(
            db.primary_pool(),
            shards.clone(),
            settings.order_reconcile_after,
        );
        let events = crate::store::events::EventSink::start(
            shards.clone(),
            settings.events_queue_capacity,
            settings.events_batch_max,
        );
        let views = Arc::new(crate::store::views::ViewCounter::new(db.primary_pool()));
        shutdown.spawn(
            "view count flusher",
            views
                .clone()
                .run_flusher(settings.view_count_flush_interval, shutdown.signal()),
        );
        let app = App {
            views,
            shards,
            catalog,
            orders,
            events,
            mailer,
            storage,
            media: db.media(),
            link_keys,
            users: db.users(),
            sessions,
            cache,
            user_cache: CachePolicy::with_ttl(settings.cache_user_ttl),
            rate_limiter,
            rate_limit_backend: if redis.is_some() { "redis" } else { "local" },
            policies,
            login_throttle,
            passwords,
            tokens,
            metrics,
            shutdown,
            redis,
            db,
            settings,
        };
        Ok(AppState(Arc::new(app)))
    }

    /// The end of a shutdown: the background tasks are stopped and awaited (at most
    /// [`BACKGROUND_TASKS_DEADLINE`]), queued events and counted views are written, then every
    /// pool closes — so no task still uses a pool when it closes.
    pub async fn close(&self) {
        self.shutdown.wait_for_tasks(BACKGROUND_TASKS_DEADLINE).await;
        self.events.close_and_flush().await;
        match self.views.flush().await {
            Ok(0) => {}
            Ok(views) => tracing::info!(views, "product views written at shutdown"),
            Err(error) => tracing::warn!(%error, "product views counted since the last flush are lost"),
        }
        self.shards.close().await;
        self.db.close().await;
        tracing::info!("database pools closed");
    }

    /// One line for the start-up log: which backend serves each concern.
    pub fn describe_backends(&self) -> String {
        format!(
            "database={} shards=[{}] redis={} cache={} rate_limiter={} sessions={} mail={} objects={} errors={}",
            self.db.describe(),
            self.shards.describe(),
            self.redis.as_ref().map_or("none", RedisClient::mode),
            self.cache.backend_name(),
            self.rate_limiter.backend_name(),
            self.sessions.backend_name(),
            self.mailer.describe(),
            self.storage.describe(),
            if outgrow_platform::telemetry::error_tracking::enabled() {
                "sentry"
            } else {
                "off"
            }
        )
    }
}
