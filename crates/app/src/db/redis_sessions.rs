//! Sessions and refresh tokens in Redis, expiring with the session (scaled mode).
//!
//! Keys, all prefixed, and tagged so that one session's keys share one Redis Cluster hash slot
//! (the rotation script touches three of them):
//! - `session:{<sid>}` — hash: `user_id`, `role`, `expires_at` (ms), `revoked`, `cookie_hash`;
//! - `session:{<sid>}:refresh:<sha256>` — `current` or `rotated`;
//! - `user-sessions:{<user id>}` — set of the user's session ids, for logout-all.
//!
//! Refresh tokens and cookies name their session (`<sid>.<secret>`), so no lookup by hash alone
//! is ever needed.

use chrono::{DateTime, TimeZone, Utc};
use outgrow_domain::{Role, UserId};
use outgrow_platform::redis_client::RedisClient;
use redis::Script;
use uuid::Uuid;

use crate::repo::{NewSession, RefreshExchange, Rotation, Session, SessionCookie, SessionStore, StoreError};

/// Exchanges a refresh token atomically. KEYS: session, presented token, replacement token.
/// ARGV: now (ms). Returns {"rotated", user_id, role, expires_at} | {"reused"} | {"invalid"}.
const ROTATE: &str = r#"
local state = redis.call('GET', KEYS[2])
if not state then return {'invalid'} end
local s = redis.call('HMGET', KEYS[1], 'user_id', 'role', 'expires_at', 'revoked')
if not s[1] then return {'invalid'} end
if s[4] == '1' or tonumber(s[3]) <= tonumber(ARGV[1]) then return {'invalid'} end
if state ~= 'current' then
  redis.call('HSET', KEYS[1], 'revoked', '1')
  return {'reused'}
end
redis.call('SET', KEYS[2], 'rotated', 'KEEPTTL')
redis.call('SET', KEYS[3], 'current', 'PXAT', s[3])
return {'rotated', s[1], s[2], s[3]}
"#;

/// Marks a session revoked if it still exists (never re-creates an expired one).
const REVOKE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HSET', KEYS[1], 'revoked', '1')
end
return -1
"#;

/// [`SessionStore`] on Redis.
pub struct RedisSessions {
    redis: RedisClient,
    rotate: Script,
    revoke: Script,
}

impl RedisSessions {
    pub fn new(redis: RedisClient) -> Self {
        Self {
            redis,
            rotate: Script::new(ROTATE),
            revoke: Script::new(REVOKE),
        }
    }

    fn session_key(&self, sid: Uuid) -> String {
        self.redis.key(&format!("session:{{{sid}}}"))
    }

    fn refresh_key(&self, sid: Uuid, hash: &[u8; 32]) -> String {
        self.redis
            .key(&format!("session:{{{sid}}}:refresh:{}", hex::encode(hash)))
    }

    fn user_key(&self, user: UserId) -> String {
        self.redis.key(&format!("user-sessions:{{{user}}}"))
    }

    async fn fields(&self, sid: Uuid) -> Result<Option<SessionFields>, StoreError> {
        let key = self.session_key(sid);
        let values: Vec<Option<String>> = self
            .redis
            .run("session_get", |mut connection| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg(&["user_id", "role", "expires_at", "revoked", "cookie_hash"])
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let [
            Some(user_id),
            Some(role),
            Some(expires_at),
            Some(revoked),
            cookie_hash,
        ] = <[Option<String>; 5]>::try_from(values).map_err(|_| StoreError::Corrupt("HMGET arity".into()))?
        else {
            return Ok(None);
        };
        let session = session(sid, &user_id, &role, &expires_at)?;
        Ok(Some(SessionFields {
            session,
            revoked: revoked == "1",
            cookie_hash,
        }))
    }
}

struct SessionFields {
    session: Session,
    revoked: bool,
    cookie_hash: Option<String>,
}

fn session(sid: Uuid, user_id: &str, role: &str, expires_at_ms: &str) -> Result<Session, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("session {sid}: bad {what}"));
    let user_id = Uuid::try_parse(user_id).map_err(|_| corrupt("user_id"))?;
    let role = Role::parse(role).map_err(|_| corrupt("role"))?;
    let millis: i64 = expires_at_ms.parse().map_err(|_| corrupt("expires_at"))?;
    let expires_at = Utc
        .timestamp_millis_opt(millis)
        .single()
        .ok_or_else(|| corrupt("expires_at"))?;
    Ok(Session {
        id: sid,
        user_id: UserId(user_id),
        role,
        expires_at,
    })
}

fn live(fields: Option<SessionFields>, now: DateTime<Utc>) -> Option<SessionFields> {
    fields.filter(|fields| !fields.revoked && fields.session.expires_at > now)
}

#[async_trait::async_trait]
impl SessionStore for RedisSessions {
    async fn create(&self, new: NewSession) -> Result<(), StoreError> {
        let sid = new.session.id;
        let expires_ms = new.session.expires_at.timestamp_millis();
        // The user's index first: if the session write then fails, a dangling id in the set
        // is harmless; the reverse would leave a session that logout-all cannot find.
        let user_key = self.user_key(new.session.user_id);
        let member = sid.to_string();
        self.redis
            .run("session_index", |mut connection| async move {
                redis::pipe()
                    .sadd(&user_key, &member)
                    .cmd("PEXPIREAT")
                    .arg(&user_key)
                    .arg(expires_ms)
                    .arg("NX")
                    .cmd("PEXPIREAT")
                    .arg(&user_key)
                    .arg(expires_ms)
                    .arg("GT")
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await?;
        let session_key = self.session_key(sid);
        let refresh_key = self.refresh_key(sid, &new.refresh_hash);
        let mut fields = vec![
            ("user_id", new.session.user_id.to_string()),
            ("role", new.session.role.as_str().to_owned()),
            ("expires_at", expires_ms.to_string()),
            ("revoked", "0".to_owned()),
        ];
        if let Some(hash) = new.cookie_hash {
            fields.push(("cookie_hash", hex::encode(hash)));
        }
        self.redis
            .run("session_create", |mut connection| async move {
                redis::pipe()
                    .atomic()
                    .hset_multiple(&session_key, &fields)
                    .cmd("PEXPIREAT")
                    .arg(&session_key)
                    .arg(expires_ms)
                    .cmd("SET")
                    .arg(&refresh_key)
                    .arg("current")
                    .arg("PXAT")
                    .arg(expires_ms)
                    .query_async::<()>(&mut connection)
                    .await
            })
            .await?;
        Ok(())
    }

    async fn rotate(&self, exchange: RefreshExchange, now: DateTime<Utc>) -> Result<Rotation, StoreError> {
        let keys = [
            self.session_key(exchange.session_id),
            self.refresh_key(exchange.session_id, &exchange.presented),
            self.refresh_key(exchange.session_id, &exchange.replacement),
        ];
        let script = &self.rotate;
        let reply: Vec<String> = self
            .redis
            .run("session_rotate", |connection| async move {
                script
                    .key(&keys[0])
                    .key(&keys[1])
                    .key(&keys[2])
                    .arg(now.timestamp_millis())
                    .invoke_async(&mut connection.at_key(&keys[0]))
                    .await
            })
            .await?;
        match reply.as_slice() {
            [outcome, user_id, role, expires_at] if outcome == "rotated" => Ok(Rotation::Rotated(session(
                exchange.session_id,
                user_id,
                role,
                expires_at,
            )?)),
            [outcome] if outcome == "reused" => Ok(Rotation::Reused(exchange.session_id)),
            _ => Ok(Rotation::Invalid),
        }
    }

    async fn active(&self, id: Uuid, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        Ok(live(self.fields(id).await?, now).map(|fields| fields.session))
    }

    async fn by_cookie(
        &self,
        cookie: SessionCookie,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let expected = hex::encode(cookie.secret_hash);
        Ok(live(self.fields(cookie.session_id).await?, now)
            .filter(|fields| fields.cookie_hash.as_deref() == Some(expected.as_str()))
            .map(|fields| fields.session))
    }

    async fn revoke(&self, id: Uuid, _now: DateTime<Utc>) -> Result<(), StoreError> {
        let key = self.session_key(id);
        let script = &self.revoke;
        self.redis
            .run("session_revoke", |connection| async move {
                script
                    .key(&key)
                    .invoke_async::<i64>(&mut connection.at_key(&key))
                    .await
            })
            .await?;
        Ok(())
    }

    async fn revoke_all(
        &self,
        user_id: UserId,
        keep: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let user_key = self.user_key(user_id);
        let members: Vec<String> = self
            .redis
            .run("session_list", |mut connection| async move {
                redis::cmd("SMEMBERS")
                    .arg(&user_key)
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        let mut ended = Vec::new();
        for member in members {
            let Ok(sid) = Uuid::try_parse(&member) else {
                continue;
            };
            if Some(sid) == keep {
                continue;
            }
            match live(self.fields(sid).await?, now) {
                Some(_) => {
                    self.revoke(sid, now).await?;
                    ended.push(sid);
                }
                None => {
                    // Expired or revoked: drop it from the index.
                    let user_key = self.user_key(user_id);
                    let _ = self
                        .redis
                        .run("session_unindex", |mut connection| async move {
                            redis::cmd("SREM")
                                .arg(&user_key)
                                .arg(&member)
                                .query_async::<i64>(&mut connection)
                                .await
                        })
                        .await;
                }
            }
        }
        Ok(ended)
    }

    async fn delete_expired(&self, _before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Every key carries the session's expiry: Redis deletes them itself.
        Ok(0)
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outgrow_platform::redis_client::same_slot;
    use std::time::Duration;

    #[tokio::test]
    async fn the_keys_of_one_script_or_transaction_share_a_cluster_slot() {
        let redis = RedisClient::new("redis://127.0.0.1:1", "outgrow:", Duration::from_millis(50))
            .expect("lazy client");
        let sessions = RedisSessions::new(redis);
        let sid = Uuid::now_v7();
        // The rotation script and the creation transaction touch these together.
        let session = sessions.session_key(sid);
        let presented = sessions.refresh_key(sid, &[1; 32]);
        let replacement = sessions.refresh_key(sid, &[2; 32]);
        assert!(same_slot(&[&session, &presented, &replacement]));
        // Another session's keys may live anywhere: nothing spans two sessions.
        assert!(sessions.user_key(UserId(Uuid::now_v7())).contains('{'));
    }
}
