//! Access tokens (HS256 JWT, short-lived, carry the session id) and refresh tokens (random, stored hashed,
//! rotated on every use; reusing a spent one revokes its whole family = the session). Refresh tokens and
//! session state live in Redis when it is configured, in the database otherwise.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{RefreshUse, Store};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    /// Session (refresh family) id: revoking it invalidates the access tokens it issued.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl Jwt {
    pub fn new(key_b64: &str, ttl_secs: u64) -> anyhow::Result<Self> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .map_err(|_| anyhow::anyhow!("secrets.jwt_key: not base64"))?;
        anyhow::ensure!(key.len() >= 32, "secrets.jwt_key: must be at least 32 bytes");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            ttl_secs: ttl_secs as i64,
        })
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims { sub: user_id, sid: session_id, iat: now, exp: now + self.ttl_secs };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 encoding of a plain struct cannot fail")
    }

    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok().map(|d| d.claims)
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }
}

/// A fresh random token (256 bits, base64url) and the SHA-256 that is stored instead of it.
pub fn random_token() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Sessions and refresh tokens.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn create_session(&self, user_id: Uuid) -> anyhow::Result<Uuid>;
    /// The session exists, is not revoked, and is `user_id`'s (a token naming another user's session is refused).
    async fn session_active(&self, session_id: Uuid, user_id: Uuid) -> anyhow::Result<bool>;
    async fn revoke_session(&self, session_id: Uuid) -> anyhow::Result<()>;
    async fn insert_refresh(
        &self,
        hash: &[u8],
        session_id: Uuid,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> anyhow::Result<()>;
    async fn use_refresh(&self, hash: &[u8]) -> anyhow::Result<RefreshUse>;
}

/// Embedded mode: the `sessions` and `refresh_tokens` tables.
pub struct DbTokens(pub Arc<dyn Store>);

#[async_trait]
impl TokenStore for DbTokens {
    async fn create_session(&self, user_id: Uuid) -> anyhow::Result<Uuid> {
        Ok(self.0.create_session(user_id).await?.id)
    }
    async fn session_active(&self, session_id: Uuid, user_id: Uuid) -> anyhow::Result<bool> {
        Ok(self.0.session(session_id).await?.is_some_and(|s| s.revoked_at.is_none() && s.user_id == user_id))
    }
    async fn revoke_session(&self, session_id: Uuid) -> anyhow::Result<()> {
        Ok(self.0.revoke_session(session_id).await?)
    }
    async fn insert_refresh(
        &self,
        hash: &[u8],
        session_id: Uuid,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> anyhow::Result<()> {
        Ok(self.0.insert_refresh(hash, session_id, user_id, expires_at).await?)
    }
    async fn use_refresh(&self, hash: &[u8]) -> anyhow::Result<RefreshUse> {
        Ok(self.0.use_refresh(hash).await?)
    }
}

/// Production: keys `<prefix>sess:<id>` (`active`|`revoked`) and `<prefix>rt:<hash>` (a hash with family, user
/// and used flag), each expiring with the refresh lifetime.
pub struct RedisTokens {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    ttl_secs: u64,
}

impl RedisTokens {
    pub async fn connect(url: &str, prefix: &str, refresh_ttl_days: u64) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        Ok(Self { conn, prefix: prefix.to_owned(), ttl_secs: refresh_ttl_days * 86_400 })
    }
    fn sess_key(&self, id: Uuid) -> String {
        format!("{}sess:{id}", self.prefix)
    }
    /// Records a session's state (`active` | `revoked`) for the refresh lifetime.
    async fn set_session(&self, id: Uuid, state: &str) -> anyhow::Result<()> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(self.sess_key(id))
            .arg(state)
            .arg("EX")
            .arg(self.ttl_secs)
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }
    fn rt_key(&self, hash: &[u8]) -> String {
        format!("{}rt:{}", self.prefix, hex::encode(hash))
    }
}

/// Marks a refresh token used and reports what it was, atomically: 0 unknown, 1 valid (now used), 2 reused.
const USE_REFRESH: &str = r#"
local fam = redis.call('HGET', KEYS[1], 'family')
if not fam then return {0} end
local user = redis.call('HGET', KEYS[1], 'user')
if redis.call('HGET', KEYS[1], 'used') == '1' then return {2, fam, user} end
redis.call('HSET', KEYS[1], 'used', '1')
return {1, fam, user}
"#;

#[async_trait]
impl TokenStore for RedisTokens {
    async fn create_session(&self, user_id: Uuid) -> anyhow::Result<Uuid> {
        let id = Uuid::new_v4();
        self.set_session(id, &format!("active:{user_id}")).await?;
        Ok(id)
    }
    async fn session_active(&self, session_id: Uuid, user_id: Uuid) -> anyhow::Result<bool> {
        let mut c = self.conn.clone();
        let v: Option<String> = redis::cmd("GET").arg(self.sess_key(session_id)).query_async(&mut c).await?;
        Ok(v.as_deref() == Some(format!("active:{user_id}").as_str()))
    }
    async fn revoke_session(&self, session_id: Uuid) -> anyhow::Result<()> {
        self.set_session(session_id, "revoked").await
    }
    async fn insert_refresh(
        &self,
        hash: &[u8],
        session_id: Uuid,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let key = self.rt_key(hash);
        let ttl = (expires_at - OffsetDateTime::now_utc()).whole_seconds().max(1);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("family")
            .arg(session_id.to_string())
            .arg("user")
            .arg(user_id.to_string())
            .arg("used")
            .arg("0")
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(ttl)
            .ignore()
            .query_async::<()>(&mut c)
            .await?;
        Ok(())
    }
    async fn use_refresh(&self, hash: &[u8]) -> anyhow::Result<RefreshUse> {
        let mut c = self.conn.clone();
        let r: Vec<String> = redis::Script::new(USE_REFRESH).key(self.rt_key(hash)).invoke_async(&mut c).await?;
        let ids = |r: &[String]| -> anyhow::Result<(Uuid, Uuid)> { Ok((r[1].parse()?, r[2].parse()?)) };
        Ok(match r.first().map(String::as_str) {
            Some("1") => {
                let (family_id, user_id) = ids(&r)?;
                RefreshUse::Valid { family_id, user_id }
            }
            Some("2") => {
                let (family_id, user_id) = ids(&r)?;
                RefreshUse::Reused { family_id, user_id }
            }
            _ => RefreshUse::Invalid,
        })
    }
}
