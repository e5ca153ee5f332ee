//! The baseline of Outgrow's hot-path benchmark: the least a server must do to answer an
//! authenticated, cache-served `GET /api/v1/users/{id}` from a shared Redis, written as plainly
//! as axum allows — no middleware, no logs, no metrics, no fallbacks:
//!
//! 1. verify the bearer JWT (HS256, `exp` required, the same keys as Outgrow: tokens that
//!    Outgrow issued are valid here);
//! 2. one Redis round trip for the rate limit (`INCR` + `EXPIRE NX` of a per-user, per-minute
//!    counter, pipelined);
//! 3. one Redis round trip for the cached user (`GET`), returned as it is stored.
//!
//! `GET /health` answers `ok`: the floor of any handler. `PUT /cache/{id}` stores a user's
//! JSON so the benchmark script can warm this cache with what Outgrow returned.
//!
//! Configuration: `BASELINE_LISTEN` (default `127.0.0.1:8090`), `BASELINE_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), `BASELINE_JWT_KEYS` (`kid:secret,…`, as `OUTGROW_JWT_KEYS`),
//! `BASELINE_RATE_LIMIT` (requests per user per minute, default 1,000,000,000).

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use anyhow::Context;
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redis::aio::ConnectionManager;
use serde::Deserialize;

/// What the baseline reads from a token.
#[derive(Deserialize)]
struct Claims {
    sub: uuid::Uuid,
}

struct Baseline {
    redis: ConnectionManager,
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    limit: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let listen = env("BASELINE_LISTEN", "127.0.0.1:8090");
    let client = redis::Client::open(env("BASELINE_REDIS_URL", "redis://127.0.0.1:6379"))?;
    let redis = ConnectionManager::new(client)
        .await
        .context("connecting to Redis")?;
    let mut keys = HashMap::new();
    for pair in env("BASELINE_JWT_KEYS", "")
        .split(',')
        .filter(|pair| !pair.is_empty())
    {
        let (kid, secret) = pair.split_once(':').context("BASELINE_JWT_KEYS: kid:secret")?;
        keys.insert(kid.to_owned(), DecodingKey::from_secret(secret.as_bytes())?);
    }
    anyhow::ensure!(!keys.is_empty(), "set BASELINE_JWT_KEYS");
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let state = Arc::new(Baseline {
        redis,
        keys,
        validation,
        limit: env("BASELINE_RATE_LIMIT", "1000000000").parse()?,
    });
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/api/v1/users/{id}", get(get_user))
        .route("/cache/{id}", put(put_user))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn get_user(
    State(state): State<Arc<Baseline>>,
    Path(id): Path<uuid::Uuid>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Some(key) = header.kid.as_ref().and_then(|kid| state.keys.get(kid)) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let Ok(token) = jsonwebtoken::decode::<Claims>(token, key, &state.validation) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    if token.claims.sub != id {
        return StatusCode::FORBIDDEN.into_response();
    }
    let minute = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 60);
    let mut redis = state.redis.clone();
    let counted: redis::RedisResult<(u64, ())> = redis::pipe()
        .incr(format!("baseline:rl:{id}:{minute}"), 1)
        .cmd("EXPIRE")
        .arg(format!("baseline:rl:{id}:{minute}"))
        .arg(60)
        .arg("NX")
        .query_async(&mut redis)
        .await;
    match counted {
        Ok((count, ())) if count > state.limit => return StatusCode::TOO_MANY_REQUESTS.into_response(),
        Ok(_) => {}
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    let cached: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
        .arg(format!("baseline:user:{id}"))
        .query_async(&mut redis)
        .await;
    match cached {
        Ok(Some(json)) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn put_user(State(state): State<Arc<Baseline>>, Path(id): Path<uuid::Uuid>, body: Bytes) -> Response {
    let mut redis = state.redis.clone();
    match redis::cmd("SET")
        .arg(format!("baseline:user:{id}"))
        .arg(body.as_ref())
        .query_async::<()>(&mut redis)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
