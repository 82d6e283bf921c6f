//! The cluster directory: which nodes are up, and which node is each live broadcast's **home** (the one that
//! runs its program and publishes to its destinations).
//!
//! Each node keeps an entry of its own (addresses and load) under a lease it renews every
//! [`HEARTBEAT`]; a node that stops renewing drops out after [`NODE_TTL`]. A broadcast's home is a lease too,
//! held under a **fence**: a token that grows on every take-over. The node that holds a home renews it
//! every [`HOME_RENEW`]; one that fails to (frozen, cut off from Redis) finds on its next try that the lease
//! is gone and stops its outputs at once. The token guards what the lease alone cannot: the database takes a
//! recording row only from the newest token it has seen for that broadcast
//! ([`crate::store::Store::claim_home`]), so a node waking with a stale token writes nothing.
//!
//! With Redis configured the directory lives there (keys `<prefix>cluster:…`, scripts that check and change
//! a lease in one step); in embedded mode it is this process's memory, with the same rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// How often a node renews its own entry, and how long the entry outlives its last renewal.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
pub const NODE_TTL: Duration = Duration::from_secs(6);
/// How long a home lease outlives its last renewal, and how often its holder renews it.
pub const HOME_TTL: Duration = Duration::from_secs(5);
pub const HOME_RENEW: Duration = Duration::from_secs(1);

/// A node as the directory lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub id: String,
    /// Where its HTTP API and WebSocket answer: `cluster.advertise_url`, or `public_url`.
    pub http: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    pub version: String,
    pub load: Load,
    /// The broadcasts whose program runs here.
    pub programs: Vec<Uuid>,
    /// Where its media relay listens (UDP), when `cluster.secret` is set: other nodes dial it for the rooms they
    /// share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
}

/// What a node carries now.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    /// CPU used over the last heartbeat, in cores.
    pub cpu_cores: f64,
    pub participants: u64,
    pub programs: u64,
}

/// The right to be a broadcast's home: `node` holds it under `token`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub broadcast: Uuid,
    pub node: String,
    pub token: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a node entry in the directory is not readable: {0}")]
    Entry(#[from] serde_json::Error),
}

/// Where the directory lives.
pub enum Directory {
    Local(LocalDirectory),
    Redis(RedisDirectory),
}

impl Directory {
    /// Writes (or renews) this node's entry for [`NODE_TTL`]; false if there was none to renew (the first
    /// time, or the directory forgot it: Redis restarted without its data, or this node stalled past it).
    pub async fn register(&self, node: &NodeInfo) -> Result<bool, ClusterError> {
        match self {
            Directory::Local(d) => Ok(d.register(node, Instant::now())),
            Directory::Redis(d) => d.register(node).await,
        }
    }

    /// Whether `node` has a current entry.
    pub async fn knows(&self, node: &str) -> Result<bool, ClusterError> {
        match self {
            Directory::Local(d) => Ok(d.nodes(Instant::now()).iter().any(|n| n.id == node)),
            Directory::Redis(d) => {
                let mut conn = d.conn.clone();
                Ok(redis::cmd("EXISTS").arg(d.node_key(node)).query_async::<i64>(&mut conn).await? == 1)
            }
        }
    }

    /// The nodes whose entry is current, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        match self {
            Directory::Local(d) => Ok(d.nodes(Instant::now())),
            Directory::Redis(d) => d.nodes().await,
        }
    }

    /// Takes `broadcast`'s home for `node` if nobody holds it (a new token), or renews it if `node` already
    /// does (its token). `None`: another node holds it, named in the error's place by [`Directory::home`].
    /// Tokens given are above `floor`, the newest the database has seen for the broadcast.
    pub async fn take_home(&self, broadcast: Uuid, node: &str, floor: i64) -> Result<Option<Fence>, ClusterError> {
        match self {
            Directory::Local(d) => Ok(d.take_home(broadcast, node, floor, Instant::now())),
            Directory::Redis(d) => d.take_home(broadcast, node, floor).await,
        }
    }

    /// Renews a home lease; false if it is no longer this fence's (expired, or taken over). `on_time`: the
    /// holder's last renewal is less than a lease ago, so a lease the directory lost (Redis restarted) is
    /// written back rather than given up.
    pub async fn renew(&self, fence: &Fence, on_time: bool) -> Result<bool, ClusterError> {
        match self {
            Directory::Local(d) => Ok(d.renew(fence, Instant::now())),
            Directory::Redis(d) => d.renew(fence, on_time).await,
        }
    }

    /// Gives a home up (the show ended here); nothing if it is no longer this fence's.
    pub async fn release(&self, fence: &Fence) -> Result<(), ClusterError> {
        match self {
            Directory::Local(d) => {
                d.release(fence);
                Ok(())
            }
            Directory::Redis(d) => d.release(fence).await,
        }
    }

    /// Who holds `broadcast`'s home now, and under which token.
    pub async fn home(&self, broadcast: Uuid) -> Result<Option<(String, i64)>, ClusterError> {
        match self {
            Directory::Local(d) => Ok(d.home(broadcast, Instant::now())),
            Directory::Redis(d) => d.home(broadcast).await,
        }
    }
}

/// The directory in this process (embedded mode, one node): the same leases and tokens as in Redis.
#[derive(Default)]
pub struct LocalDirectory {
    inner: parking_lot::Mutex<Local>,
}

#[derive(Default)]
struct Local {
    nodes: HashMap<String, (NodeInfo, Instant)>,
    /// Broadcast → (holder, token, lease end).
    homes: HashMap<Uuid, (String, i64, Instant)>,
    /// The last token given out per broadcast (kept after the lease ends, as Redis keeps its counter).
    tokens: HashMap<Uuid, i64>,
}

impl LocalDirectory {
    fn register(&self, node: &NodeInfo, now: Instant) -> bool {
        let old = self.inner.lock().nodes.insert(node.id.clone(), (node.clone(), now + NODE_TTL));
        old.is_some_and(|(_, until)| until > now)
    }

    fn nodes(&self, now: Instant) -> Vec<NodeInfo> {
        let mut inner = self.inner.lock();
        inner.nodes.retain(|_, (_, until)| *until > now);
        let mut nodes: Vec<NodeInfo> = inner.nodes.values().map(|(n, _)| n.clone()).collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes
    }

    fn take_home(&self, broadcast: Uuid, node: &str, floor: i64, now: Instant) -> Option<Fence> {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        match inner.homes.get_mut(&broadcast) {
            Some((holder, token, until)) if *until > now => {
                if holder != node {
                    return None;
                }
                *until = now + HOME_TTL;
                Some(Fence { broadcast, node: node.to_owned(), token: *token })
            }
            _ => {
                let token = inner.tokens.entry(broadcast).or_default();
                *token = (*token + 1).max(floor + 1);
                inner.homes.insert(broadcast, (node.to_owned(), *token, now + HOME_TTL));
                Some(Fence { broadcast, node: node.to_owned(), token: *token })
            }
        }
    }

    fn renew(&self, fence: &Fence, now: Instant) -> bool {
        let mut inner = self.inner.lock();
        match inner.homes.get_mut(&fence.broadcast) {
            Some((holder, token, until)) if *until > now && *holder == fence.node && *token == fence.token => {
                *until = now + HOME_TTL;
                true
            }
            _ => false,
        }
    }

    fn release(&self, fence: &Fence) {
        let mut inner = self.inner.lock();
        if inner.homes.get(&fence.broadcast).is_some_and(|(h, t, _)| *h == fence.node && *t == fence.token) {
            inner.homes.remove(&fence.broadcast);
        }
    }

    fn home(&self, broadcast: Uuid, now: Instant) -> Option<(String, i64)> {
        let inner = self.inner.lock();
        inner.homes.get(&broadcast).filter(|(_, _, until)| *until > now).map(|(h, t, _)| (h.clone(), *t))
    }
}

/// The directory in Redis, shared by every node of a deployment.
pub struct RedisDirectory {
    prefix: String,
    conn: redis::aio::ConnectionManager,
}

/// Writes a node's entry for its lease and records when it expires in the index of nodes. KEYS: entry, index.
/// ARGV: entry, ttl ms, node id. Returns the entry it replaced, or nil.
const REGISTER_NODE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'GET')
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
return old
";

/// The entries of the nodes whose lease is current; drops the index's expired members first. KEYS: index.
/// ARGV: the entries' key prefix.
const LIST_NODES: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local entry = redis.call('GET', ARGV[1] .. id)
  if entry then
    table.insert(out, entry)
  end
end
return out
";

/// Takes a home: renews it for its holder, else (free or expired) gives the caller the next token, above
/// `floor` (the newest token the database has seen, in case Redis lost its counter).
/// KEYS: home, token counter. ARGV: node, ttl ms, floor. Returns the token, or nil when another node holds it.
const TAKE_HOME: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  local node, token = string.match(held, '^(.*) (%d+)$')
  if node == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
if token <= tonumber(ARGV[3]) then
  token = tonumber(ARGV[3]) + 1
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
";

/// Renews a home if it is still the caller's; when nobody holds it and `restore` is 1 (Redis lost it while the
/// holder kept renewing on time, as after a restart), writes it back. KEYS: home. ARGV: `node token`, ttl ms,
/// restore. Returns 1 or 0.
const RENEW_HOME: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not held and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Deletes a home if it is still the caller's. KEYS: home. ARGV: `node token`.
const RELEASE_HOME: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

impl RedisDirectory {
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisDirectory, ClusterError> {
        let conn = redis::aio::ConnectionManager::new(redis::Client::open(url)?).await?;
        Ok(RedisDirectory { prefix: prefix.to_owned(), conn })
    }

    fn node_key(&self, id: &str) -> String {
        format!("{}cluster:node:{id}", self.prefix)
    }

    fn home_key(&self, broadcast: Uuid) -> String {
        format!("{}cluster:home:{broadcast}", self.prefix)
    }

    fn token_key(&self, broadcast: Uuid) -> String {
        format!("{}cluster:token:{broadcast}", self.prefix)
    }

    /// The sorted set of node ids, each scored by when its entry expires (Redis's clock, in ms): the directory
    /// reads its members instead of scanning the keyspace.
    fn index_key(&self) -> String {
        format!("{}cluster:nodes", self.prefix)
    }

    async fn register(&self, node: &NodeInfo) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let entry = serde_json::to_string(node)?;
        let old: Option<String> = redis::Script::new(REGISTER_NODE)
            .key(self.node_key(&node.id))
            .key(self.index_key())
            .arg(entry)
            .arg(NODE_TTL.as_millis() as u64)
            .arg(&node.id)
            .invoke_async(&mut conn)
            .await?;
        Ok(old.is_some())
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut conn = self.conn.clone();
        let entries: Vec<String> =
            redis::Script::new(LIST_NODES).key(self.index_key()).arg(self.node_key("")).invoke_async(&mut conn).await?;
        let mut nodes = entries.into_iter().map(|e| serde_json::from_str(&e)).collect::<Result<Vec<NodeInfo>, _>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    async fn take_home(&self, broadcast: Uuid, node: &str, floor: i64) -> Result<Option<Fence>, ClusterError> {
        let mut conn = self.conn.clone();
        let token: Option<i64> = redis::Script::new(TAKE_HOME)
            .key(self.home_key(broadcast))
            .key(self.token_key(broadcast))
            .arg(node)
            .arg(HOME_TTL.as_millis() as u64)
            .arg(floor)
            .invoke_async(&mut conn)
            .await?;
        Ok(token.map(|token| Fence { broadcast, node: node.to_owned(), token }))
    }

    async fn renew(&self, fence: &Fence, on_time: bool) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = redis::Script::new(RENEW_HOME)
            .key(self.home_key(fence.broadcast))
            .arg(format!("{} {}", fence.node, fence.token))
            .arg(HOME_TTL.as_millis() as u64)
            .arg(if on_time { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    async fn release(&self, fence: &Fence) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        redis::Script::new(RELEASE_HOME)
            .key(self.home_key(fence.broadcast))
            .arg(format!("{} {}", fence.node, fence.token))
            .invoke_async::<i64>(&mut conn)
            .await?;
        Ok(())
    }

    async fn home(&self, broadcast: Uuid) -> Result<Option<(String, i64)>, ClusterError> {
        let mut conn = self.conn.clone();
        let held: Option<String> = redis::cmd("GET").arg(self.home_key(broadcast)).query_async(&mut conn).await?;
        Ok(held.and_then(|h| {
            let (node, token) = h.rsplit_once(' ')?;
            Some((node.to_owned(), token.parse().ok()?))
        }))
    }
}

/// This node in the cluster: its id, the directory, and what it reports of itself.
pub struct Cluster {
    pub node: String,
    pub directory: Directory,
    started_at: String,
    http: String,
    /// Until when this node takes no show over: the directory forgot this node's entry, so it may have
    /// forgotten every home too (Redis restarted) and their holders need a lease to write them back.
    quiet_until: parking_lot::Mutex<Option<Instant>>,
    /// This node's entry was written at least once.
    registered: std::sync::atomic::AtomicBool,
}

impl Cluster {
    pub fn new(node: String, directory: Directory, http: String) -> Cluster {
        let started_at =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        Cluster { node, directory, started_at, http, quiet_until: Default::default(), registered: Default::default() }
    }

    /// The ids of the nodes whose directory entry is current.
    pub async fn live_node_ids(&self) -> Result<std::collections::HashSet<String>, ClusterError> {
        Ok(self.directory.nodes().await?.into_iter().map(|n| n.id).collect())
    }

    /// Writes this node's entry; when the directory had forgotten it (not the first time), takes no show over
    /// for a lease, so the holders of homes it forgot with it write them back first.
    pub async fn register(&self, entry: &NodeInfo) -> Result<(), ClusterError> {
        let renewed = self.directory.register(entry).await?;
        let before = self.registered.swap(true, std::sync::atomic::Ordering::Relaxed);
        if !renewed && before {
            self.pause_take_overs();
        }
        Ok(())
    }

    /// The directory forgot this node, and so perhaps every home (Redis restarted without its data): no
    /// take-overs for a lease, so their holders write them back first.
    fn pause_take_overs(&self) {
        tracing::warn!("cluster: the directory had forgotten this node (Redis restarted?): no take-overs for a lease");
        *self.quiet_until.lock() = Some(Instant::now() + HOME_TTL);
    }

    /// Whether this node may take over shows whose home lapsed now: not while the directory does not know
    /// this node although it registered before (it forgot everything; see [`Cluster::register`]), nor for a
    /// lease after.
    pub async fn may_take_over(&self) -> Result<bool, ClusterError> {
        if self.registered.load(std::sync::atomic::Ordering::Relaxed) && !self.directory.knows(&self.node).await? {
            self.pause_take_overs();
        }
        Ok(self.quiet_until.lock().is_none_or(|until| Instant::now() >= until))
    }

    /// This node's entry as it would be written now.
    pub fn entry(&self, load: Load, programs: Vec<Uuid>, relay: Option<SocketAddr>) -> NodeInfo {
        NodeInfo {
            id: self.node.clone(),
            http: self.http.clone(),
            started_at: self.started_at.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            load,
            programs,
            relay: relay.map(|a| a.to_string()),
        }
    }

    /// Takes `broadcast`'s home for this node, with a token above `floor`. `Err(holder)` when another node
    /// holds it.
    pub async fn take_home(&self, broadcast: Uuid, floor: i64) -> Result<Result<Fence, String>, ClusterError> {
        match self.directory.take_home(broadcast, &self.node, floor).await? {
            Some(fence) => Ok(Ok(fence)),
            None => {
                let holder = self.directory.home(broadcast).await?.map(|(n, _)| n).unwrap_or_default();
                Ok(Err(holder))
            }
        }
    }
}

/// Writes this node's entry now and every [`HEARTBEAT`], with its load; ends when the state is dropped.
pub fn heartbeat(state: &crate::AppState) -> tokio::task::JoinHandle<()> {
    let cluster = Arc::downgrade(&state.cluster);
    let hub = Arc::downgrade(&state.hub);
    let metrics = Arc::downgrade(&state.metrics);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut cpu = (Instant::now(), process_cpu_seconds());
        loop {
            tick.tick().await;
            let Some(cluster) = cluster.upgrade() else { return };
            let running = hub.upgrade().and_then(|h| h.get().cloned());
            let relay = running.as_ref().and_then(|h| h.relay.clone());
            let (participants, programs) =
                running.map(|h| (h.participant_count() as u64, h.programs.running())).unwrap_or_default();
            let now = (Instant::now(), process_cpu_seconds());
            let wall = now.0.duration_since(cpu.0).as_secs_f64();
            let cpu_cores = if wall > 0.0 { ((now.1 - cpu.1) / wall * 100.0).round() / 100.0 } else { 0.0 };
            cpu = now;
            let load = Load { cpu_cores, participants, programs: programs.len() as u64 };
            let nodes = cluster.directory.nodes().await;
            if let Some(m) = metrics.upgrade() {
                for (what, v) in [
                    ("cpu_cores", cpu_cores),
                    ("participants", participants as f64),
                    ("programs", programs.len() as f64),
                ] {
                    m.node_load.with_label_values(&[cluster.node.as_str(), what]).set(v);
                }
                if let Ok(nodes) = &nodes {
                    m.cluster_nodes.set(nodes.len() as i64);
                }
            }
            if let Err(e) = cluster.register(&cluster.entry(load, programs, relay.as_ref().map(|r| r.1))).await {
                tracing::warn!("cluster: could not renew this node's entry: {e}");
            }
            // The relay keeps a connection to every other node that has one.
            if let (Some((relay, _)), Ok(nodes)) = (&relay, &nodes) {
                let peers: Vec<_> = nodes
                    .iter()
                    .filter(|n| n.id != cluster.node)
                    .filter_map(|n| Some((n.id.clone(), n.relay.as_deref()?.parse().ok()?)))
                    .collect();
                relay.set_peers(&peers);
            }
        }
    })
}

/// CPU time this process has used, in seconds (`/proc/self/stat`; user and system time in the kernel's
/// fixed 100 Hz user ticks).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are the stat file's 14th and 15th fields, the 12th and 13th after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A node id for this process when the configuration names none: the host's name and a random suffix, so two
/// processes on one machine differ.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "node".to_owned() } else { host };
    format!("{host}-{}", &Uuid::new_v4().simple().to_string()[..8])
}

/// Keeps a home lease: renews it every `every` ([`HOME_RENEW`]) until aborted; calls `lost` once and ends
/// when the lease is no longer this fence's (a renewal refused, or none succeeded for [`HOME_TTL`]).
pub fn keep_home(
    cluster: Arc<Cluster>,
    fence: Fence,
    every: Duration,
    lost: impl FnOnce() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_renewed = Instant::now();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let lapsed = last_renewed.elapsed() >= HOME_TTL;
            match cluster.directory.renew(&fence, !lapsed).await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(broadcast = %fence.broadcast, token = fence.token, "home lease lost: stopping this node's outputs");
                    lost();
                    return;
                }
                Err(e) if lapsed => {
                    tracing::warn!(broadcast = %fence.broadcast, error = %e, "home lease not renewed in time: stopping this node's outputs");
                    lost();
                    return;
                }
                Err(e) => {
                    tracing::warn!(broadcast = %fence.broadcast, error = %e, "home lease renewal failed; trying again")
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            http: format!("http://{id}"),
            started_at: String::new(),
            version: String::new(),
            load: Load::default(),
            programs: vec![],
            relay: None,
        }
    }

    #[test]
    fn a_node_drops_out_of_the_directory_when_it_stops_renewing() {
        let d = LocalDirectory::default();
        let t0 = Instant::now();
        assert!(!d.register(&node("a"), t0), "new");
        d.register(&node("b"), t0);
        assert!(d.register(&node("a"), t0 + HEARTBEAT), "renewed");
        let ids = |at| d.nodes(at).into_iter().map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(ids(t0 + NODE_TTL - Duration::from_millis(1)), ["a", "b"]);
        assert_eq!(ids(t0 + NODE_TTL), ["a"], "b missed its heartbeats");
        assert!(!d.register(&node("b"), t0 + NODE_TTL), "b's entry had lapsed: written anew");
    }

    #[test]
    fn one_home_per_broadcast_and_every_take_over_has_a_larger_token() {
        let d = LocalDirectory::default();
        let b = Uuid::new_v4();
        let t0 = Instant::now();
        let first = d.take_home(b, "a", 0, t0).expect("free");
        assert_eq!(first.token, 1);
        assert_eq!(d.take_home(b, "b", 0, t0 + Duration::from_secs(1)), None, "a holds it");
        assert_eq!(d.take_home(b, "a", 0, t0 + Duration::from_secs(1)), Some(first.clone()), "its holder renews it");
        assert!(d.renew(&first, t0 + Duration::from_secs(2)));
        assert_eq!(d.home(b, t0 + Duration::from_secs(2)), Some(("a".into(), 1)));

        // a stops renewing (frozen): once the lease has run out, b takes over with a new token.
        let later = t0 + Duration::from_secs(2) + HOME_TTL;
        let second = d.take_home(b, "b", 0, later).expect("expired");
        assert_eq!(second.token, 2);
        assert!(!d.renew(&first, later), "a's lease is gone when it wakes");
        d.release(&first);
        assert_eq!(d.home(b, later), Some(("b".into(), 2)), "a stale release changes nothing");
        d.release(&second);
        assert_eq!(d.home(b, later), None);
        assert_eq!(d.take_home(b, "a", 0, later).map(|f| f.token), Some(3), "tokens never go back");
        d.release(&Fence { broadcast: b, node: "a".into(), token: 3 });
        assert_eq!(d.take_home(b, "a", 7, later).map(|f| f.token), Some(8), "above what the database has seen");
    }

    #[tokio::test]
    async fn a_holder_whose_home_was_taken_over_is_told_at_its_next_renewal() {
        let cluster = Arc::new(Cluster::new("a".into(), Directory::Local(LocalDirectory::default()), String::new()));
        let b = Uuid::new_v4();
        let fence = cluster.take_home(b, 0).await.unwrap().expect("free");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let keeper = keep_home(cluster.clone(), fence.clone(), Duration::from_millis(5), move || _ = tx.send(()));
        // Another node took it over (as after a freeze): the keeper's next renewal fails and it says so.
        let Directory::Local(local) = &cluster.directory else { unreachable!() };
        local.inner.lock().homes.insert(b, ("b".into(), fence.token + 1, Instant::now() + HOME_TTL));
        tokio::time::timeout(Duration::from_secs(10), rx).await.expect("told in time").expect("told");
        tokio::time::timeout(Duration::from_secs(10), keeper).await.expect("ends").expect("no panic");
        assert_eq!(cluster.directory.home(b).await.unwrap(), Some(("b".into(), fence.token + 1)), "b's, untouched");
    }
}
