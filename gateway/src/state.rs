//! Everything a request handler may reach, built once at start-up.

use std::net::IpAddr;
use std::sync::Arc;

use crate::bus::{Bus, InProcessBus, RedisBus};
use crate::cluster::{Cluster, Directory, LocalDirectory, RedisDirectory};

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
    /// The RTMP ingest: its address once started (`ingest::start`), who publishes, the relay broadcasts.
    pub ingest: Arc<crate::ingest::Ingest>,
    /// The WHIP publishers in this node's rooms.
    pub whip: Arc<crate::signaling::whip::WhipSessions>,
    /// This node in the cluster directory (nodes, and each live broadcast's home under a fenced lease).
    pub cluster: Arc<crate::cluster::Cluster>,
}

/// How long a confirmed-active session is trusted without asking the token store again. Revocations evict at
/// once on every node through the bus; this bound only covers a missed bus message.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Bus topic that carries every revocation, so each node can evict its cache entry.
pub const REVOCATIONS_TOPIC: &str = "sessions:revoked";

#[derive(Default)]
pub struct ActiveSessions {
    /// Session id → (its user, when confirmed).
    confirmed: parking_lot::Mutex<std::collections::HashMap<uuid::Uuid, (uuid::Uuid, std::time::Instant)>>,
}

impl ActiveSessions {
    /// Session `id` was confirmed as `user`'s moments ago.
    pub fn is_fresh(&self, id: uuid::Uuid, user: uuid::Uuid) -> bool {
        self.confirmed.lock().get(&id).is_some_and(|(u, at)| *u == user && at.elapsed() < SESSION_RECHECK)
    }
    pub fn confirm(&self, id: uuid::Uuid, user: uuid::Uuid) {
        let mut map = self.confirmed.lock();
        // Bounded: stale entries go whenever the map grows large.
        if map.len() > 100_000 {
            map.retain(|_, (_, at)| at.elapsed() < SESSION_RECHECK);
        }
        map.insert(id, (user, std::time::Instant::now()));
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
        let (tokens, bus, directory): (Arc<dyn TokenStore>, Arc<dyn Bus>, Directory) = match &cfg.redis.url {
            Some(url) => (
                Arc::new(RedisTokens::connect(url, &cfg.redis.prefix, cfg.auth.refresh_ttl_days).await?),
                Arc::new(RedisBus::connect(url, &cfg.redis.prefix).await?),
                Directory::Redis(RedisDirectory::connect(url, &cfg.redis.prefix).await?),
            ),
            None => (
                Arc::new(DbTokens(store.clone())),
                Arc::new(InProcessBus::new()),
                Directory::Local(LocalDirectory::default()),
            ),
        };
        let node = cfg.cluster.node_id.clone().unwrap_or_else(crate::cluster::default_node_id);
        let http = cfg.cluster.advertise_url.clone().unwrap_or_else(|| cfg.public_url.clone());
        let cluster = Arc::new(Cluster::new(node, directory, http));
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
        let state = Self {
            active_sessions,
            plugins,
            hub: Arc::default(),
            ingest: Arc::default(),
            whip: Arc::default(),
            limits: Arc::new(RateLimits::new(&cfg)),
            cfg: Arc::new(cfg),
            store,
            tokens,
            bus,
            jwt: Arc::new(jwt),
            cipher: Arc::new(cipher),
            metrics: Arc::new(metrics),
            public_origin: public_origin.into(),
            cluster,
        };
        crate::cluster::heartbeat(&state);
        Ok(state)
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
    destination_test: KeyedLimiter,
    /// Destination tests running now, bounded node-wide (each holds a thread and a connection for seconds).
    pub destination_tests: Arc<tokio::sync::Semaphore>,
    /// Failed sign-ins, the other half of the login limits.
    pub login_failures: LoginFailures,
}

/// Failed sign-ins in the last minute. An address that keeps failing on an account is refused (429) for that
/// account only, and an account failing from many addresses (a spread-out guessing attack) is answered
/// slowly, so guessing stays expensive while the owner, signing in with the right password from an address
/// that has not been failing, always gets in: nobody can lock an account by knowing its email.
pub struct LoginFailures {
    /// Failures allowed per (account, address) and per account in [`LOGIN_WINDOW`].
    per_pair: u32,
    per_account: u32,
    recent: parking_lot::Mutex<std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
}

/// How long a failed sign-in counts.
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// How long an attempt on an account under a spread-out attack waits before the password is checked.
pub const LOGIN_SLOW_PATH: std::time::Duration = std::time::Duration::from_secs(1);
/// Tracked keys beyond which stale entries are swept (memory stays bounded under a spray of accounts).
const LOGIN_TRACKED: usize = 10_000;

/// What a sign-in attempt may do, judged before its password is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginGate {
    Go,
    /// The account is under attack from many addresses: check the password after [`LOGIN_SLOW_PATH`].
    Slow,
    /// This address has failed too often on this account.
    Refuse {
        retry_after_secs: u64,
    },
}

impl LoginFailures {
    fn new(per_minute: u32) -> Self {
        LoginFailures {
            per_pair: per_minute.max(1),
            per_account: per_minute.max(1).saturating_mul(5),
            recent: Default::default(),
        }
    }

    fn keys(account: &str, ip: Option<IpAddr>) -> (String, String) {
        let ip = ip.map_or("-".to_owned(), |ip| ip.to_string());
        (format!("pair:{account}|{ip}"), format!("acct:{account}"))
    }

    /// Judges an attempt on `account` from `ip`, before the password is checked.
    pub fn gate(&self, account: &str, ip: Option<IpAddr>) -> LoginGate {
        let now = std::time::Instant::now();
        let (pair, acct) = Self::keys(account, ip);
        let mut recent = self.recent.lock();
        let mut live = |key: &str| {
            let q = recent.get_mut(key)?;
            while q.front().is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW) {
                q.pop_front();
            }
            Some((q.len() as u32, q.front().copied()))
        };
        if let Some((n, Some(oldest))) = live(&pair)
            && n >= self.per_pair
        {
            let wait = LOGIN_WINDOW.saturating_sub(now.duration_since(oldest));
            return LoginGate::Refuse { retry_after_secs: wait.as_secs().max(1) };
        }
        match live(&acct) {
            Some((n, _)) if n >= self.per_account => LoginGate::Slow,
            _ => LoginGate::Go,
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, ip: Option<IpAddr>) {
        let now = std::time::Instant::now();
        let (pair, acct) = Self::keys(account, ip);
        let mut recent = self.recent.lock();
        if recent.len() > LOGIN_TRACKED {
            recent.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= LOGIN_WINDOW));
        }
        for key in [pair, acct] {
            let q = recent.entry(key).or_default();
            q.push_back(now);
            // Never more than the window can count.
            if q.len() > 1000 {
                q.pop_front();
            }
        }
    }

    /// A successful sign-in clears its address's failures on the account.
    pub fn succeeded(&self, account: &str, ip: Option<IpAddr>) {
        self.recent.lock().remove(&Self::keys(account, ip).0);
    }
}

/// Which limit a request counts against.
#[derive(Clone, Copy)]
pub enum Limit {
    Auth,
    Upload,
    DestinationTest,
}

/// Which account quota an action needs room in.
#[derive(Clone, Copy, Debug)]
pub enum Quota {
    /// One more broadcast.
    Broadcast,
    /// One more broadcast on air (recordings kept must also be under their quota).
    GoLive,
    /// An upload of this many bytes.
    Upload(u64),
}

impl AppState {
    /// Refuses (429, naming the `[limits]` key) what would take `user` past a quota.
    pub async fn check_quota(&self, user: uuid::Uuid, quota: Quota) -> Result<(), ApiError> {
        let l = &self.cfg.limits;
        let u = self.store.usage(user).await?;
        let over = |limit: &'static str, message: String| Err(ApiError::QuotaExceeded { limit, message });
        match quota {
            Quota::Broadcast if u.broadcasts as u64 >= u64::from(l.broadcasts_per_account) => over(
                "broadcasts_per_account",
                format!("this account keeps {} broadcasts, the most it may; delete one first", u.broadcasts),
            ),
            Quota::GoLive if u.live as u64 >= u64::from(l.live_per_account) => over(
                "live_per_account",
                format!("this account has {} broadcasts on air, the most it may at once", u.live),
            ),
            Quota::GoLive if u.recording_bytes as u64 >= l.recording_bytes_per_account => over(
                "recording_bytes_per_account",
                format!("this account's recordings take {} bytes, its quota; delete some first", u.recording_bytes),
            ),
            Quota::Upload(size) if u.upload_bytes as u64 + size > l.upload_bytes_per_account => over(
                "upload_bytes_per_account",
                format!("this upload would take the account's uploads past {} bytes", l.upload_bytes_per_account),
            ),
            _ => Ok(()),
        }
    }
}

impl RateLimits {
    fn new(cfg: &Config) -> Self {
        let quota = |n: u32| {
            governor::Quota::per_minute(std::num::NonZeroU32::new(n.max(1)).expect("max(1) makes it non-zero"))
        };
        Self {
            auth: governor::RateLimiter::keyed(quota(cfg.limits.auth_per_minute)),
            upload: governor::RateLimiter::keyed(quota(cfg.limits.upload_per_minute)),
            destination_test: governor::RateLimiter::keyed(quota(cfg.limits.destination_tests_per_minute)),
            destination_tests: Arc::new(tokio::sync::Semaphore::new(
                cfg.limits.destination_tests_at_once.max(1) as usize
            )),
            login_failures: LoginFailures::new(cfg.limits.auth_per_minute),
        }
    }

    /// Counts one request against the client address and (if known) the account; 429 if either is over.
    pub fn check(&self, which: Limit, ip: Option<IpAddr>, account: Option<&str>) -> Result<(), ApiError> {
        let limiter = match which {
            Limit::Auth => &self.auth,
            Limit::Upload => &self.upload,
            Limit::DestinationTest => &self.destination_test,
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
