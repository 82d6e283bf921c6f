//! Everything a request handler may reach, built once at start-up.

use std::net::IpAddr;
use std::sync::Arc;

use crate::bus::{Bus, InProcessBus, RedisBus};

use crate::auth::tokens::{DbTokens, Jwt, RedisTokens, TokenStore};
use crate::config::Config;
use crate::crypto::StreamKeyCipher;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    /// The effective configuration (secrets filled in).
    pub cfg: Arc<Config>,
    pub store: Arc<dyn Store>,
    /// Sessions and refresh tokens: Redis when configured, else the store.
    pub tokens: Arc<dyn TokenStore>,
    /// Room and session events; the WebSocket layer subscribes per room.
    pub bus: Arc<dyn Bus>,
    pub jwt: Arc<Jwt>,
    pub cipher: Arc<StreamKeyCipher>,
    pub limits: Arc<RateLimits>,
    pub metrics: Arc<Metrics>,
    /// `scheme://host[:port]` of `public_url`, for the Origin check.
    pub public_origin: Arc<str>,
    /// Sessions recently confirmed active, so most requests skip the session lookup.
    pub active_sessions: Arc<ActiveSessions>,
    /// Layouts, overlays and destination adapters (WebAssembly), started on first use or by `serve`.
    pub plugins: Arc<crate::plugins::Plugins>,
    /// This node's signaling hub (media node, rooms, programs), started on the first `/ws` or program request.
    pub hub: Arc<tokio::sync::OnceCell<Arc<crate::signaling::Hub>>>,
}

/// How long a confirmed-active session is trusted without asking the token store again. Revocations evict at
/// once on every node through the bus; this bound only covers a missed bus message.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Bus topic that carries every revocation, so each node can evict its cache entry.
pub const REVOCATIONS_TOPIC: &str = "sessions:revoked";

#[derive(Default)]
pub struct ActiveSessions {
    confirmed: parking_lot::Mutex<std::collections::HashMap<uuid::Uuid, std::time::Instant>>,
}

impl ActiveSessions {
    pub fn is_fresh(&self, id: uuid::Uuid) -> bool {
        self.confirmed.lock().get(&id).is_some_and(|at| at.elapsed() < SESSION_RECHECK)
    }
    pub fn confirm(&self, id: uuid::Uuid) {
        let mut map = self.confirmed.lock();
        // Bounded: stale entries go whenever the map grows large.
        if map.len() > 100_000 {
            map.retain(|_, at| at.elapsed() < SESSION_RECHECK);
        }
        map.insert(id, std::time::Instant::now());
    }
    pub fn evict(&self, id: uuid::Uuid) {
        self.confirmed.lock().remove(&id);
    }
}

impl AppState {
    /// Connects the store (running migrations), Redis if configured, and builds the keys. `cfg` must have its
    /// secrets filled (`Config::ensure_secrets`).
    pub async fn new(cfg: Config) -> anyhow::Result<Self> {
        let store = crate::store::connect(&cfg.database_url(), cfg.database.max_connections).await?;
        Self::with_store(cfg, store).await
    }

    pub async fn with_store(cfg: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let (tokens, bus): (Arc<dyn TokenStore>, Arc<dyn Bus>) = match &cfg.redis.url {
            Some(url) => (
                Arc::new(RedisTokens::connect(url, &cfg.redis.prefix, cfg.auth.refresh_ttl_days).await?),
                Arc::new(RedisBus::connect(url, &cfg.redis.prefix).await?),
            ),
            None => (Arc::new(DbTokens(store.clone())), Arc::new(InProcessBus::new())),
        };
        let jwt = Jwt::new(
            cfg.secrets.jwt_key.as_deref().ok_or_else(|| anyhow::anyhow!("secrets.jwt_key missing"))?,
            cfg.auth.access_ttl_secs,
        )?;
        let active = cfg.secrets.stream_key_active.clone().unwrap_or_default();
        let cipher = StreamKeyCipher::new(&cfg.secrets.stream_key_keys, &active)?;
        let metrics = Metrics::new();
        metrics.active_broadcasts.set(store.count_live_broadcasts().await?);
        let public_origin = origin_of(&cfg.public_url)
            .ok_or_else(|| anyhow::anyhow!("public_url: must be an absolute http(s) URL, got {:?}", cfg.public_url))?;
        let active_sessions = Arc::new(ActiveSessions::default());
        let plugins = Arc::new(crate::plugins::Plugins::new(&cfg)?);
        // Revocations from any node evict the cached session here.
        let mut revoked = bus.subscribe(REVOCATIONS_TOPIC);
        let cache = Arc::downgrade(&active_sessions);
        tokio::spawn(async move {
            loop {
                match revoked.recv().await {
                    Ok(ev) => {
                        let Some(cache) = cache.upgrade() else { break };
                        if let Some(id) = ev.data.get("sessionId").and_then(|v| v.as_str()).and_then(|v| v.parse().ok())
                        {
                            cache.evict(id);
                        }
                    }
                    // Missed some: forget everything rather than trust a possibly revoked session.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => match cache.upgrade() {
                        Some(cache) => cache.confirmed.lock().clear(),
                        None => break,
                    },
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Ok(Self {
            active_sessions,
            plugins,
            hub: Arc::default(),
            limits: Arc::new(RateLimits::new(&cfg)),
            cfg: Arc::new(cfg),
            store,
            tokens,
            bus,
            jwt: Arc::new(jwt),
            cipher: Arc::new(cipher),
            metrics: Arc::new(metrics),
            public_origin: public_origin.into(),
        })
    }

    /// Cookies get `Secure` when the public URL is HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.public_origin.starts_with("https://")
    }
}

/// `scheme://host[:port]` of an absolute URL.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

type KeyedLimiter = governor::DefaultKeyedRateLimiter<String>;

/// Per-minute limits on costly endpoints, keyed by client address and by account.
pub struct RateLimits {
    auth: KeyedLimiter,
    upload: KeyedLimiter,
}

/// Which limit a request counts against.
#[derive(Clone, Copy)]
pub enum Limit {
    Auth,
    Upload,
}

impl RateLimits {
    fn new(cfg: &Config) -> Self {
        let quota = |n: u32| {
            governor::Quota::per_minute(std::num::NonZeroU32::new(n.max(1)).expect("max(1) makes it non-zero"))
        };
        Self {
            auth: governor::RateLimiter::keyed(quota(cfg.limits.auth_per_minute)),
            upload: governor::RateLimiter::keyed(quota(cfg.limits.upload_per_minute)),
        }
    }

    /// Counts one request against the client address and (if known) the account; 429 if either is over.
    pub fn check(&self, which: Limit, ip: Option<IpAddr>, account: Option<&str>) -> Result<(), ApiError> {
        let limiter = match which {
            Limit::Auth => &self.auth,
            Limit::Upload => &self.upload,
        };
        let keys = [ip.map(|ip| format!("ip:{ip}")), account.map(|a| format!("acct:{}", a.to_lowercase()))];
        for key in keys.into_iter().flatten() {
            if let Err(not_until) = limiter.check_key(&key) {
                let wait =
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                return Err(ApiError::RateLimited { retry_after_secs: wait.as_secs().max(1) });
            }
        }
        Ok(())
    }
}
